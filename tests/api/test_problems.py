"""RFC 9457 problem details: every error answers ``application/problem+json`` with ``type``,
``title``, ``status``, ``code`` and ``detail``; unknown routes, unknown methods and unknown ids
(customer, invoice, payment, refund, invoice line) are 404/405 problems with a stable code, and
none of them writes anything.
"""

from __future__ import annotations

import pytest

UNKNOWN_GETS = [
    "/v1/customers/cus_00000000000000000000000000",
    "/v1/customers/cus_00000000000000000000000000/store-credit",
    "/v1/invoices/inv_00000000000000000000000000",
    "/v1/payments/pay_00000000000000000000000000",
    "/v1/refunds/re_00000000000000000000000000",
]


def test_unknown_route_is_a_404_problem(client, problem):
    body = problem(client.get("/v1/no-such-thing"), 404, "not_found")
    assert body["instance"] == "/v1/no-such-thing"
    problem(client.get("/nowhere"), 404, "not_found")


def test_unknown_method_is_a_405_problem(client, problem):
    problem(client.delete("/v1/invoices"), 405, "method_not_allowed")


@pytest.mark.parametrize("path", UNKNOWN_GETS)
def test_unknown_ids_are_404_not_found(client, path, problem):
    body = problem(client.get(path), 404, "not_found")
    assert body["instance"] == path


def test_wallet_in_a_currency_never_granted_is_404(api, client, problem):
    cus = api.customer()
    problem(client.get(f"/v1/customers/{cus['id']}/store-credit/EUR"), 404, "not_found")


UNKNOWN_POSTS = [
    ("/v1/invoices/inv_00000000000000000000000000/payments",
     {"method": "cash", "amount_minor": 100, "currency": "EUR"}),
    ("/v1/invoices/inv_00000000000000000000000000/refunds",
     {"kind": "full", "reason": "goodwill"}),
    ("/v1/invoices/inv_00000000000000000000000000/refunds/preview",
     {"kind": "full", "reason": "goodwill"}),
    ("/v1/invoices/inv_00000000000000000000000000/void", None),
    ("/v1/invoices", {"customer_id": "cus_00000000000000000000000000", "currency": "EUR",
                      "lines": [{"description": "x", "quantity": 1, "unit_price_minor": 100,
                                 "tax_rate": "0"}]}),
]


@pytest.mark.parametrize("path,body", UNKNOWN_POSTS,
                         ids=["payment", "refund", "preview", "void", "invoice-customer"])
def test_posts_naming_unknown_ids_are_404_and_write_nothing(client, engine, snapshot, problem,
                                                            path, body):
    before = snapshot(engine)
    resp = client.post(path, json=body) if body is not None else client.post(path)
    problem(resp, 404, "not_found")
    assert snapshot(engine) == before


def test_unknown_invoice_line_in_a_refund_is_404(client, engine, paid_invoice, snapshot,
                                                 problem):
    inv_id = paid_invoice["invoice"]["id"]
    before = snapshot(engine)
    body = {"kind": "lines", "reason": "product_defective",
            "lines": [{"line_id": "il_00000000000000000000000000", "quantity": 1}]}
    for path in (f"/v1/invoices/{inv_id}/refunds", f"/v1/invoices/{inv_id}/refunds/preview"):
        problem(client.post(path, json=body), 404, "not_found")
    assert snapshot(engine) == before


def test_a_line_of_another_invoice_is_404(api, client, engine, paid_invoice, snapshot, problem):
    other = api.invoice(paid_invoice["customer"]["id"], [
        {"description": "Hat", "quantity": 1, "unit_price_minor": 2000, "tax_rate": "0.20"}])
    api.pay(other)
    before = snapshot(engine)
    body = {"kind": "lines", "reason": "product_defective",
            "lines": [{"line_id": other["lines"][0]["id"], "quantity": 1}]}
    problem(client.post(f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds", json=body),
            404, "not_found")
    assert snapshot(engine) == before


def test_domain_error_carries_extra_members(client, paid_invoice, problem):
    """Machine-readable extras travel beside the standard members (RFC 9457 extension members)."""
    inv = paid_invoice["invoice"]
    body = problem(client.post(f"/v1/invoices/{inv['id']}/refunds",
                               json={"kind": "amount", "amount_minor": 14281, "reason": "goodwill"}),
                   409, "amount_exceeds_refundable")
    assert body["requested_minor"] == 14281
    assert body["refundable_minor"] == 14280
    assert body["instance"] == f"/v1/invoices/{inv['id']}/refunds"


def test_validation_problem_lists_each_error(client, paid_invoice, problem):
    inv = paid_invoice["invoice"]
    body = problem(client.post(f"/v1/invoices/{inv['id']}/payments",
                               json={"method": "cash", "amount_minor": 1.5, "currency": "EUR",
                                     "surprise": True}),
                   422, "invalid_amount")
    codes = {tuple(e["loc"]): e["code"] for e in body["errors"]}
    assert codes == {("body", "amount_minor"): "invalid_amount",
                     ("body", "surprise"): "unknown_field"}
