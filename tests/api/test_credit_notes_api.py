"""The HTTP contract of credit notes, documents and the seller's details, on both databases.

Covers: a refund's credit note is listed and read back with its lines and split; credit notes
and invoices download as PDF, HTML (with a script-forbidding CSP) and UBL XML, the XML's
SHA-256 being the stored ``document_sha256`` (``X-Document-SHA256``); an adjustment is issued
(201) and replayed by its Idempotency-Key; a void reverses it; bad input — voiding twice,
voiding a refund's note, crediting more than a line, beyond the amount due, in another currency,
amount and quantity together, an unknown reason, an invalid VAT number — is an RFC 9457 problem
with its code and nothing written; agents may not issue adjustments, approvers may; another
seller's credit note is a 404; ``POST /v1/seller`` sets the details printed on documents.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from payback.db.schema import metadata
from tests.api.conftest import SHOES, SOCKS, take_snapshot

CN_NS = "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"


def everything(engine) -> dict:
    """The business tables plus the credit-note tables and the idempotency keys."""
    snap = take_snapshot(engine, include_idempotency=True)
    with engine.connect() as conn:
        for name in ("credit_notes", "credit_note_lines", "sellers"):
            snap[name] = sorted((tuple(r) for r in conn.execute(select(
                metadata.tables[name]))), key=repr)
    return snap


@pytest.fixture
def unpaid(api) -> dict:
    """Shoes 2 × 50.00 − 10.00 (gross 108.00) and socks 3 × 10.00 (gross 36.00) at 20 %,
    exclusive, not paid: total 144.00."""
    cus = api.customer()
    inv = api.invoice(cus["id"], [SHOES, SOCKS])
    assert inv["total_minor"] == 14400
    return inv


def _adjust(client, inv, lines, **extra):
    return client.post(f"/v1/invoices/{inv['id']}/credit-notes",
                       json={"reason": "billing_error", "lines": lines, **extra})


def test_a_refunds_credit_note_is_listed_read_and_downloaded(client, api, paid_invoice):
    inv = paid_invoice["invoice"]
    refund = api.refund(inv["id"], {"kind": "lines", "reason": "product_defective",
                                    "lines": [{"line_id": paid_invoice["socks"], "quantity": 1}]})
    listed = api.get(f"/v1/credit-notes?invoice_id={inv['id']}")["data"]
    assert [(n["number"], n["kind"], n["refund_id"], n["total_minor"], n["invoice_number"])
            for n in listed] == [("CN-000001", "refund", refund["id"], 1140, inv["number"])]
    note = api.get(f"/v1/credit-notes/{listed[0]['id']}")
    assert (note["net_minor"], note["tax_minor"], note["refunded_minor"],
            note["credited_minor"], note["outside_minor"]) == (950, 190, 1140, 0, 0)
    assert [(ln["invoice_line_id"], ln["quantity"], ln["tax_rate"], ln["gross_minor"])
            for ln in note["lines"]] == [(paid_invoice["socks"], 1, "0.2", 1140)]
    assert note["invoice_issued_at"] == inv["issued_at"] and note["voided_by_id"] is None

    xml = client.get(f"/v1/credit-notes/{note['id']}/xml")
    assert xml.status_code == 200 and xml.headers["content-type"] == "application/xml"
    assert xml.headers["content-disposition"] == 'attachment; filename="CN-000001.xml"'
    digest = hashlib.sha256(xml.content).hexdigest()
    assert digest == note["document_sha256"] == xml.headers["x-document-sha256"]
    root = ET.fromstring(xml.content)
    assert root.find(f"{CBC}CreditNoteTypeCode").text == "381"
    pdf = client.get(f"/v1/credit-notes/{note['id']}/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content[:5] == b"%PDF-"
    html = client.get(f"/v1/credit-notes/{note['id']}/html")
    assert html.headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src" not in html.headers["content-security-policy"]
    assert html.headers["content-security-policy"].startswith("default-src 'none'")
    assert f"Credits invoice {inv['number']}" in html.text and "CN-000001" in html.text


def test_invoice_documents_download(client, paid_invoice):
    inv = paid_invoice["invoice"]
    for fmt, media in (("pdf", "application/pdf"), ("html", "text/html; charset=utf-8"),
                       ("xml", "application/xml")):
        resp = client.get(f"/v1/invoices/{inv['id']}/{fmt}")
        assert (resp.status_code, resp.headers["content-type"]) == (200, media)
        assert resp.headers["content-disposition"] == \
            f'attachment; filename="{inv["number"]}.{fmt}"'
    xml = client.get(f"/v1/invoices/{inv['id']}/xml").content
    assert b"<cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>" in xml
    assert b'<cbc:PayableAmount currencyID="EUR">142.80</cbc:PayableAmount>' in xml


def test_an_adjustment_is_issued_replayed_and_voided(client, unpaid, engine):
    shoes, socks = (ln["id"] for ln in unpaid["lines"])
    body = {"reason": "billing_error", "memo": "price agreed on the phone",
            "lines": [{"invoice_line_id": shoes, "amount_minor": 1000},
                      {"invoice_line_id": socks, "quantity": 1}]}
    first = client.post(f"/v1/invoices/{unpaid['id']}/credit-notes", json=body,
                        headers={"Idempotency-Key": "adj-1"})
    assert first.status_code == 201, first.text
    note = first.json()
    # shoes: tax round(1800 × 1000 / 10800) = 167; socks: one of three units = 12.00
    assert [(ln["quantity"], ln["net_minor"], ln["tax_minor"]) for ln in note["lines"]] == \
        [(0, 833, 167), (1, 1000, 200)]
    assert (note["kind"], note["total_minor"], note["outside_minor"], note["memo"]) == \
        ("adjustment", 2200, 2200, "price agreed on the phone")
    before = everything(engine)
    again = client.post(f"/v1/invoices/{unpaid['id']}/credit-notes", json=body,
                        headers={"Idempotency-Key": "adj-1"})
    assert (again.status_code, again.json()) == (201, note)
    assert everything(engine) == before
    void = client.post(f"/v1/credit-notes/{note['id']}/void", json={"reason": "billing_error"})
    assert void.status_code == 201, void.text
    assert (void.json()["kind"], void.json()["voids_id"], void.json()["number"]) == \
        ("void", note["id"], "CN-000002")
    inv = client.get(f"/v1/invoices/{unpaid['id']}").json()
    assert [ln["refundable_gross_minor"] for ln in inv["lines"]] == [10800, 3600]


@pytest.mark.parametrize("case", ["void_twice", "void_refund_note", "more_than_line",
                                  "beyond_due", "currency", "amount_and_quantity", "reason",
                                  "unknown_line", "no_lines"])
def test_bad_input_is_a_problem_and_writes_nothing(client, api, unpaid, engine, problem, case):
    shoes = unpaid["lines"][0]["id"]
    first = _adjust(client, unpaid, [{"invoice_line_id": shoes, "amount_minor": 500}]).json()
    client.post(f"/v1/credit-notes/{first['id']}/void", json={"reason": "billing_error"})
    paid_part = api.pay(unpaid, 10000)  # 44.00 still due
    api.refund(unpaid["id"], {"kind": "amount", "amount_minor": 100, "reason": "goodwill"})
    refund_note = api.get("/v1/credit-notes?kind=refund")["data"][0]
    assert paid_part["amount_minor"] == 10000
    before = everything(engine)
    calls = {
        "void_twice": (lambda: client.post(f"/v1/credit-notes/{first['id']}/void",
                                           json={"reason": "billing_error"}),
                       409, "credit_note_already_voided"),
        "void_refund_note": (lambda: client.post(f"/v1/credit-notes/{refund_note['id']}/void",
                                                 json={"reason": "billing_error"}),
                             409, "credit_note_not_voidable"),
        "more_than_line": (lambda: _adjust(client, unpaid, [
            {"invoice_line_id": unpaid["lines"][1]["id"], "amount_minor": 3601}]),
            409, "credit_exceeds_remaining"),
        "beyond_due": (lambda: _adjust(client, unpaid, [
            {"invoice_line_id": shoes, "amount_minor": 4401}]), 409, "credit_exceeds_amount_due"),
        "currency": (lambda: _adjust(client, unpaid, [
            {"invoice_line_id": shoes, "amount_minor": 100}], currency="USD"),
            409, "currency_mismatch"),
        "amount_and_quantity": (lambda: _adjust(client, unpaid, [
            {"invoice_line_id": shoes, "amount_minor": 100, "quantity": 1}]),
            422, "validation_failed"),
        "reason": (lambda: client.post(f"/v1/invoices/{unpaid['id']}/credit-notes", json={
            "reason": "because", "lines": [{"invoice_line_id": shoes, "amount_minor": 1}]}),
            422, "validation_failed"),
        "unknown_line": (lambda: _adjust(client, unpaid, [
            {"invoice_line_id": "il_00000000000000000000000000", "amount_minor": 1}]),
            404, "not_found"),
        "no_lines": (lambda: _adjust(client, unpaid, []), 422, "validation_failed"),
    }
    call, status, code = calls[case]
    body = problem(call(), status, code)
    assert body["detail"]
    assert everything(engine) == before


def test_an_invalid_vat_number_is_refused(client, engine, problem):
    before = everything(engine)
    resp = client.post("/v1/customers", json={"name": "Bad VAT GmbH", "country": "DE",
                                              "vat_number": "DE136695977"})
    assert "not a valid VAT number" in problem(resp, 422, "invalid_vat_number")["detail"]
    resp = client.post("/v1/seller", json={"vat_number": "DE000"})
    problem(resp, 422, "invalid_vat_number")
    assert everything(engine) == before
    ok = client.post("/v1/customers", json={"name": "Good GmbH", "country": "DE",
                                            "vat_number": "de 136 695 976",
                                            "address": "Hauptstraße 1\n10115 Berlin"})
    assert ok.status_code == 201
    assert (ok.json()["vat_number"], ok.json()["address"]) == ("DE136695976",
                                                               "Hauptstraße 1\n10115 Berlin")


def test_the_seller_sets_the_details_printed_on_documents(client, api, paid_invoice, key_for,
                                                         client_for, problem):
    resp = client.post("/v1/seller", json={"name": "Acme SARL", "country": "fr",
                                           "vat_number": "FR40303265045",
                                           "address": "1 rue de la Paix\n75002 Paris",
                                           "email": "billing@example.com"})
    assert resp.status_code == 200, resp.text
    assert {k: resp.json()[k] for k in ("name", "country", "vat_number", "email")} == \
        {"name": "Acme SARL", "country": "FR", "vat_number": "FR40303265045",
         "email": "billing@example.com"}
    assert api.get("/v1/seller")["address"] == "1 rue de la Paix\n75002 Paris"
    xml = client.get(f"/v1/invoices/{paid_invoice['invoice']['id']}/xml").content
    assert b"<cbc:CompanyID>FR40303265045</cbc:CompanyID>" in xml
    agent = client_for(key_for("agent")[1])
    problem(agent.post("/v1/seller", json={"name": "Hijack"}), 403, "forbidden")
    assert agent.get("/v1/seller").json()["name"] == "Acme SARL"
    problem(client.post("/v1/seller", json={}), 422, "validation_failed")


def test_only_approvers_and_admins_issue_adjustments(unpaid, key_for, client_for, problem):
    shoes = unpaid["lines"][0]["id"]
    agent, approver, viewer = (client_for(key_for(role)[1])
                               for role in ("agent", "approver", "viewer"))
    lines = [{"invoice_line_id": shoes, "amount_minor": 100}]
    problem(_adjust(agent, unpaid, lines), 403, "forbidden")
    made = _adjust(approver, unpaid, lines)
    assert made.status_code == 201, made.text
    assert viewer.get(f"/v1/credit-notes/{made.json()['id']}/pdf").status_code == 200


def test_another_sellers_credit_note_is_a_404(client, unpaid, engine, key_for, client_for,
                                              problem):
    from datetime import datetime, timezone

    from payback import db
    from payback.access.tables import sellers

    note = _adjust(client, unpaid, [{"invoice_line_id": unpaid["lines"][0]["id"],
                                     "amount_minor": 100}]).json()
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id="sel_b", name="B",
                                             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    other = client_for(key_for("admin", seller_id="sel_b")[1])
    for path in (f"/v1/credit-notes/{note['id']}", f"/v1/credit-notes/{note['id']}/pdf",
                 f"/v1/invoices/{unpaid['id']}/xml"):
        problem(other.get(path), 404, "not_found")
    problem(other.post(f"/v1/credit-notes/{note['id']}/void", json={"reason": "other"}),
            404, "not_found")
    assert other.get("/v1/credit-notes").json()["data"] == []
