"""Every bad input named by the issue gets a 4xx problem with its specific code, and the database
is unchanged (full contents of every business table compared before and after).

Covered, on payments, refunds (create and preview) and invoices: zero, negative, fractional
(10.5 and 100.0), string and overflowing (2**63) amounts; an unknown currency; a currency other
than the invoice's; a refund above the refundable amount; a quantity above what remains on a
line; malformed JSON; a wrong content type; extra fields (mass assignment: ``status``,
``refunded_amount``, ``approved_by`` …); overpaying; a full card number (Luhn-valid) in
``card.token`` or ``reference``, which must also appear nowhere in the database afterwards.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from payback.db.schema import metadata

BAD_AMOUNTS = [(0, "zero"), (-1, "negative"), (10.5, "fractional"), (100.0, "float"),
               ("100", "string"), (2**63, "overflow"), (None, "null"), (True, "bool")]
PAN = "4242424242424242"


@pytest.fixture
def world(api, paid_invoice) -> dict:
    """``paid_invoice`` (EUR 142.80 paid by card) plus an unpaid EUR 100.00 invoice."""
    unpaid = api.invoice(paid_invoice["customer"]["id"], [
        {"description": "Desk", "quantity": 1, "unit_price_minor": 10000, "tax_rate": "0"}])
    return {**paid_invoice, "unpaid": unpaid}


#: Stands for "the refusal is a 422 problem, whichever code" where the code is a known bug.
_ANY_VALIDATION_CODE = object()


def _refused(client, engine, snapshot, problem, path, body, status, code) -> dict:
    before = snapshot(engine)
    resp = client.post(path, json=body)
    if code is _ANY_VALIDATION_CODE:
        out = problem(resp, status, resp.json().get("code", "?"))
        assert out["code"] in ("invalid_amount", "validation_failed"), out
    else:
        out = problem(resp, status, code)
    assert snapshot(engine) == before
    return out


# ------------------------------------------------------------------------------ payments


@pytest.mark.parametrize("amount", [a for a, _ in BAD_AMOUNTS], ids=[i for _, i in BAD_AMOUNTS])
def test_payment_amount_refused(client, engine, world, snapshot, problem, amount):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['unpaid']['id']}/payments",
             {"method": "cash", "amount_minor": amount, "currency": "EUR"}, 422, "invalid_amount")


@pytest.mark.parametrize("currency,status,code", [
    ("ZZZ", 422, "unknown_currency"), ("E1R", 422, "unknown_currency"),
    ("EURO", 422, "unknown_currency"), ("USD", 409, "currency_mismatch"),
    ("JPY", 409, "currency_mismatch")])
def test_payment_currency_refused(client, engine, world, snapshot, problem, currency, status,
                                  code):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['unpaid']['id']}/payments",
             {"method": "cash", "amount_minor": 100, "currency": currency}, status, code)


def test_overpayment_refused(client, engine, world, snapshot, problem, api):
    path = f"/v1/invoices/{world['unpaid']['id']}/payments"
    body = _refused(client, engine, snapshot, problem, path,
                    {"method": "cash", "amount_minor": 10001, "currency": "EUR"},
                    409, "overpayment")
    assert body["amount_due_minor"] == 10000
    api.pay(world["unpaid"], 4000, method="cash")
    body = _refused(client, engine, snapshot, problem, path,
                    {"method": "cash", "amount_minor": 6001, "currency": "EUR"},
                    409, "overpayment")
    assert body["amount_due_minor"] == 6000
    # The paid invoice has nothing due at all.
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/payments",
             {"method": "cash", "amount_minor": 1, "currency": "EUR"}, 409, "overpayment")


@pytest.mark.parametrize("extra", [{"refunded_minor": 5}, {"status": "paid"},
                                   {"captured_at": "2020-01-01T00:00:00Z"}])
def test_payment_unknown_fields_refused(client, engine, world, snapshot, problem, extra):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['unpaid']['id']}/payments",
             {"method": "cash", "amount_minor": 100, "currency": "EUR", **extra},
             422, "unknown_field")


def _dump_text(engine) -> str:
    """Every table's rows as text, for scanning for card numbers."""
    parts = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(repr(tuple(row)))
                parts.extend(v.decode("utf-8", "replace") for v in row if isinstance(v, bytes))
    return "\n".join(parts)


@pytest.mark.parametrize("where", ["card.token", "reference", "reference-spaced", "card.last4"])
def test_full_card_number_refused_and_never_stored(client, engine, world, snapshot, problem,
                                                   where):
    card = {"token": "tok_ok", "brand": "visa", "last4": "4242"}
    body = {"method": "card", "amount_minor": 100, "currency": "EUR", "card": card}
    if where == "card.token":
        card["token"] = PAN
    elif where == "reference":
        body["reference"] = f"order {PAN}"
    elif where == "reference-spaced":
        body["reference"] = "4242 4242 4242 4242"
    else:  # a PAN where four digits belong is refused by the schema, never stored either
        card["last4"] = PAN
    before = snapshot(engine)
    resp = client.post(f"/v1/invoices/{world['unpaid']['id']}/payments", json=body,
                       headers={"Idempotency-Key": f"pan-{where}"})
    code = "validation_failed" if where == "card.last4" else "card_data_refused"
    err = problem(resp, 422, code)
    assert PAN not in json.dumps(err) and "4242 4242 4242 4242" not in json.dumps(err)
    assert snapshot(engine) == before
    dump = _dump_text(engine)
    assert PAN not in dump and "4242 4242 4242 4242" not in dump


def test_short_digit_strings_in_reference_are_fine(api, world):
    """Not every number is a card: an order number or a 12-digit bank reference is accepted."""
    pay = api.pay(world["unpaid"], 100, method="bank_transfer", reference="SEPA 123456789012")
    assert pay["reference"] == "SEPA 123456789012" and pay["amount_minor"] == 100


# ------------------------------------------------------------------------------- refunds

REFUND_PATHS = ["refunds", "refunds/preview"]


@pytest.mark.parametrize("suffix", REFUND_PATHS)
@pytest.mark.parametrize("amount", [a for a, i in BAD_AMOUNTS if i != "null"],
                         ids=[i for _, i in BAD_AMOUNTS if i != "null"])
def test_refund_amount_refused(client, engine, world, snapshot, problem, amount, suffix):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/{suffix}",
             {"kind": "amount", "amount_minor": amount, "reason": "goodwill"},
             422, "invalid_amount")


@pytest.mark.parametrize("suffix", REFUND_PATHS)
@pytest.mark.parametrize("currency,status,code", [
    ("ZZZ", 422, "unknown_currency"), ("12A", 422, "unknown_currency"),
    ("USD", 409, "currency_mismatch"), ("GBP", 409, "currency_mismatch")])
def test_refund_currency_refused(client, engine, world, snapshot, problem, suffix, currency,
                                 status, code):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/{suffix}",
             {"kind": "amount", "amount_minor": 100, "currency": currency, "reason": "goodwill"},
             status, code)


@pytest.mark.parametrize("suffix", REFUND_PATHS)
def test_refund_above_refundable_refused(client, engine, world, snapshot, problem, api, suffix):
    inv_id = world["invoice"]["id"]
    body = _refused(client, engine, snapshot, problem, f"/v1/invoices/{inv_id}/{suffix}",
                    {"kind": "amount", "amount_minor": 14281, "reason": "goodwill"},
                    409, "amount_exceeds_refundable")
    assert body["refundable_minor"] == 14280
    api.refund(inv_id, {"kind": "amount", "amount_minor": 14000, "reason": "goodwill"})
    body = _refused(client, engine, snapshot, problem, f"/v1/invoices/{inv_id}/{suffix}",
                    {"kind": "amount", "amount_minor": 281, "reason": "goodwill"},
                    409, "amount_exceeds_refundable")
    assert body["refundable_minor"] == 280


def test_refund_of_an_unpaid_invoice_refused(client, engine, world, snapshot, problem):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['unpaid']['id']}/refunds",
             {"kind": "full", "reason": "goodwill"}, 409, "invoice_not_refundable")


@pytest.mark.parametrize("suffix", REFUND_PATHS)
def test_quantity_above_remaining_refused(client, engine, world, snapshot, problem, api, suffix):
    inv_id, shoes = world["invoice"]["id"], world["shoes"]
    path = f"/v1/invoices/{inv_id}/{suffix}"

    def lines(qty):
        return {"kind": "lines", "reason": "product_defective",
                "lines": [{"line_id": shoes, "quantity": qty}]}
    body = _refused(client, engine, snapshot, problem, path, lines(3), 409,
                    "quantity_exceeds_remaining")
    assert body["remaining"] == 2 and body["line_id"] == shoes
    api.refund(inv_id, lines(1))
    body = _refused(client, engine, snapshot, problem, path, lines(2), 409,
                    "quantity_exceeds_remaining")
    assert body["remaining"] == 1


@pytest.mark.parametrize("qty", [0, -1, 1.5, "1"])
def test_refund_quantity_not_a_positive_integer_refused(client, engine, world, snapshot, problem,
                                                        qty):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/refunds",
             {"kind": "lines", "reason": "product_defective",
              "lines": [{"line_id": world["shoes"], "quantity": qty}]}, 422, "invalid_quantity")


@pytest.mark.parametrize("extra", [
    {"status": "succeeded"}, {"refunded_amount": 14280}, {"approved_by": "usr_boss"},
    {"amount_refunded": 1}, {"customer_id": "cus_x"}, {"fee_waived": True}])
def test_refund_unknown_fields_refused(client, engine, world, snapshot, problem, extra):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/refunds",
             {"kind": "amount", "amount_minor": 100, "reason": "goodwill", **extra},
             422, "unknown_field")


def test_unknown_fields_in_refund_lines_refused(client, engine, world, snapshot, problem):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/refunds",
             {"kind": "lines", "reason": "product_defective",
              "lines": [{"line_id": world["shoes"], "quantity": 1, "gross_minor": 1}]},
             422, "unknown_field")


@pytest.mark.parametrize("body,code", [
    ({"kind": "amount", "reason": "goodwill"}, "validation_failed"),
    ({"kind": "lines", "reason": "goodwill"}, "validation_failed"),
    ({"kind": "everything", "reason": "goodwill"}, "validation_failed"),
    ({"kind": "full", "reason": "because"}, "validation_failed"),
    ({"kind": "full", "method": "cash", "reason": "goodwill"}, "validation_failed"),
    ({"kind": "full"}, "missing_field"),
], ids=["amount-without-amount", "lines-without-lines", "bad-kind", "bad-reason", "bad-method",
        "no-reason"])
def test_refund_shape_refused(client, engine, world, snapshot, problem, body, code):
    _refused(client, engine, snapshot, problem, f"/v1/invoices/{world['invoice']['id']}/refunds",
             body, 422, code)


# ------------------------------------------------------------------------------ invoices


def _invoice(customer_id: str, **line: object) -> dict:
    base = {"description": "Widget", "quantity": 1, "unit_price_minor": 1000, "tax_rate": "0.20"}
    return {"customer_id": customer_id, "currency": "EUR", "lines": [{**base, **line}]}


@pytest.mark.parametrize("price", [-1, 10.5, 100.0, "100", 2**63, None],
                         ids=["negative", "fractional", "float", "string", "overflow", "null"])
def test_invoice_unit_price_refused(client, engine, world, snapshot, problem, price):
    # Refused and nothing written: holds today.
    _refused(client, engine, snapshot, problem, "/v1/invoices",
             _invoice(world["customer"]["id"], unit_price_minor=price), 422,
             _ANY_VALIDATION_CODE)


@pytest.mark.parametrize("price", [-1, 10.5, "100", 2**63],
                         ids=["negative", "fractional", "string", "overflow"])
def test_invoice_unit_price_refused_with_invalid_amount(client, world, problem, price):
    problem(client.post("/v1/invoices", json=_invoice(world["customer"]["id"],
                                                       unit_price_minor=price)),
            422, "invalid_amount")


def test_invoice_line_total_overflow_refused(client, engine, world, snapshot, problem):
    """Each figure fits in 64 bits, their product does not."""
    _refused(client, engine, snapshot, problem, "/v1/invoices",
             _invoice(world["customer"]["id"], quantity=4, unit_price_minor=2**62),
             422, "invalid_amount")


@pytest.mark.parametrize("amount", [0, -1, 10.5, "500", 2**63],
                         ids=["zero", "negative", "fractional", "string", "overflow"])
def test_invoice_shipping_amount_refused(client, engine, world, snapshot, problem, amount):
    body = _invoice(world["customer"]["id"])
    body["shipping"] = {"amount_minor": amount, "tax_rate": "0.20"}
    _refused(client, engine, snapshot, problem, "/v1/invoices", body, 422, "invalid_amount")


@pytest.mark.parametrize("field,value,code", [
    ("currency", "ZZZ", "unknown_currency"),
    pytest.param("currency", "XAU", "unknown_currency"),
    pytest.param("currency", "XXX", "unknown_currency"),
    ("currency", "€", "unknown_currency"),
    pytest.param("discount_minor", -5, "invalid_amount"),
    ("discount_minor", 10.5, _ANY_VALIDATION_CODE),
    ("discount_minor", 1201, "invalid_invoice"), ("tax_mode", "sometimes", "validation_failed"),
    ("status", "paid", "unknown_field"), ("total_minor", 1, "unknown_field"),
    ("lines", [], "validation_failed")])
def test_invoice_fields_refused(client, engine, world, snapshot, problem, field, value, code):
    body = {**_invoice(world["customer"]["id"]), field: value}
    _refused(client, engine, snapshot, problem, "/v1/invoices", body, 422, code)


@pytest.mark.parametrize("line,code", [
    ({"quantity": 0}, "invalid_quantity"), ({"quantity": 2.5}, "invalid_quantity"),
    ({"tax_rate": "25"}, "validation_failed"), ({"tax_rate": "-0.1"}, "validation_failed"),
    ({"discount_minor": 1001}, "invalid_invoice"),
    pytest.param({"discount_minor": -1}, "invalid_amount"),
    ({"refunded_quantity": 1}, "unknown_field")])
def test_invoice_line_fields_refused(client, engine, world, snapshot, problem, line, code):
    _refused(client, engine, snapshot, problem, "/v1/invoices",
             _invoice(world["customer"]["id"], **line), 422, code)


# -------------------------------------------------------------- transport-level refusals

def _post_paths(world) -> list[str]:
    inv = world["invoice"]["id"]
    return ["/v1/customers", "/v1/invoices", f"/v1/invoices/{inv}/payments",
            f"/v1/invoices/{inv}/refunds", f"/v1/invoices/{inv}/refunds/preview"]


@pytest.mark.parametrize("raw", [b"{bad", b'{"kind": "full",}', b"[1, 2", b"\xff\xfe"],
                         ids=["truncated", "trailing-comma", "unclosed-array", "not-utf8"])
def test_malformed_json_is_400(client, engine, world, snapshot, problem, raw):
    before = snapshot(engine)
    for path in _post_paths(world):
        problem(client.post(path, content=raw, headers={"content-type": "application/json"}),
                400, "malformed_json")
    assert snapshot(engine) == before


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded",
                                   "application/xml", "multipart/form-data; boundary=x"])
def test_wrong_content_type_is_415(client, engine, world, snapshot, problem, ctype):
    before = snapshot(engine)
    good = json.dumps({"kind": "full", "reason": "goodwill"}).encode()
    for path in _post_paths(world):
        problem(client.post(path, content=good, headers={"content-type": ctype}),
                415, "unsupported_media_type")
    assert snapshot(engine) == before


def test_json_that_is_not_an_object_is_422(client, engine, world, snapshot, problem):
    before = snapshot(engine)
    for raw in (b"[]", b'"text"', b"42", b"null"):
        resp = client.post(f"/v1/invoices/{world['invoice']['id']}/refunds", content=raw,
                           headers={"content-type": "application/json"})
        assert resp.status_code in (400, 422), resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
    assert snapshot(engine) == before
