"""Credit notes through the real services, on SQLite and PostgreSQL.

Covers: a succeeded refund issues its credit note in the same transaction (lines mirroring the
refund lines, total = refund net + tax, the split refunded / credited / outside: a card refund,
a store-credit refund with a bonus — the bonus is not on the note —, a restocking fee kept, a
split tender); a refund waiting for approval has no note until it is approved; adjustments
(no money moves) credit lines by amount or quantity with the cumulative tax rule, reserve the
lines' guard counters, book Dr sales returns / Dr tax payable / Cr receivable, and never exceed
the amount due; a void reverses an adjustment (mirror entry, counters given back); bad input —
voiding twice, voiding a refund's note, crediting more than a line, beyond the amount due, in
another currency, on a void invoice — is a clear error with nothing written; PostgreSQL refuses
UPDATE of an issued note; another seller's note looks missing.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select, text

from payback import db
from payback.actor import Actor
from payback.approvals import service as approvals
from payback.credit_notes import service as notes
from payback.credit_notes.domain import AdjustmentLine, AdjustmentRequest
from payback.credit_notes.tables import credit_note_lines, credit_notes
from payback.customers.service import create_customer
from payback.documents.service import verify_credit_note
from payback.errors import DomainError
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice, void_invoice
from payback.invoicing.tables import invoice_lines, number_series
from payback.ledger import domain as ledger
from payback.ledger.service import account_balance, trial_balance
from payback.ledger.tables import journal_entries
from payback.outbox.tables import outbox_events
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import LineRequest, RefundRequest
from payback.store_credit.service import get_wallet

CARD = {"token": "tok_visa", "brand": "visa", "last4": "4242"}
ADMIN = Actor("usr_admin", "staff", "admin")
R20 = Decimal("0.20")


def _invoice(engine, clock, lines=None, pay: int | None = None, currency="EUR", **kw) -> dict:
    """Shoes 2 × 50.00 and socks 3 × 10.00 at 20 % exclusive: net 130.00, tax 26.00, total
    156.00 (shoes gross 120.00, socks 36.00). ``pay``: amount paid by card (None: all)."""
    lines = lines or [LineInput("Shoes", 2, 5000, R20), LineInput("Socks", 3, 1000, R20)]
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada", country="DE", locale="de_DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency=currency,
                             tax_mode=kw.get("tax_mode", "exclusive"), lines=lines)
        amount = inv["total_minor"] if pay is None else pay
        if amount:
            record_payment(conn, clock, inv["id"], method="card", amount_minor=amount,
                           currency=currency, card=CARD)
    return inv


def _refund(engine, clock, inv, req, actor=ADMIN) -> dict:
    with db.write(engine) as conn:
        return refunds.create_refund(conn, clock, inv["id"], req, actor=actor)


def _adjust(engine, clock, inv, *lines: AdjustmentLine, currency=None, reason="billing_error"):
    with db.write(engine) as conn:
        return notes.create_adjustment(conn, clock, inv["id"], AdjustmentRequest(
            reason=reason, lines=lines, currency=currency), actor=ADMIN)


def _notes(engine, **kw) -> list[dict]:
    with db.read(engine) as conn:
        return [notes.get_credit_note(conn, n["id"])
                for n in notes.list_credit_notes(conn, after=None, limit=100, **kw)]


def _guard(engine, inv) -> list[tuple]:
    with db.read(engine) as conn:
        return [tuple(r) for r in conn.execute(
            select(invoice_lines.c.refunded_quantity, invoice_lines.c.refunded_gross_minor,
                   invoice_lines.c.refunded_tax_minor)
            .where(invoice_lines.c.invoice_id == inv["id"]).order_by(invoice_lines.c.position))]


def _written(engine) -> dict:
    """Everything a credit note writes, to prove a refusal wrote nothing."""
    with db.read(engine) as conn:
        return {
            "notes": conn.execute(select(func.count()).select_from(credit_notes)).scalar(),
            "lines": conn.execute(select(func.count()).select_from(credit_note_lines)).scalar(),
            "entries": conn.execute(select(func.count()).select_from(journal_entries)).scalar(),
            "events": conn.execute(select(func.count()).select_from(outbox_events)).scalar(),
            "series": sorted(tuple(r) for r in conn.execute(select(number_series))),
            "guards": sorted(tuple(r) for r in conn.execute(select(
                invoice_lines.c.id, invoice_lines.c.refunded_quantity,
                invoice_lines.c.refunded_gross_minor, invoice_lines.c.refunded_tax_minor)))}


def _refused(engine, code: str, call) -> DomainError:
    before = _written(engine)
    with pytest.raises(DomainError) as err:
        call()
    assert err.value.code == code, (err.value.code, err.value.detail)
    assert _written(engine) == before
    return err.value


# ----------------------------------------------------------------- refunds issue notes


def test_a_card_refund_issues_its_credit_note(engine, clock):
    inv = _invoice(engine, clock)
    shoes = inv["lines"][0]["id"]
    r = _refund(engine, clock, inv, RefundRequest("lines", "original_payment",
                                                  "product_defective",
                                                  lines=(LineRequest(shoes, 1),)))
    (note,) = _notes(engine)
    assert (note["number"], note["kind"], note["refund_id"], note["invoice_id"]) == \
        ("CN-000001", "refund", r["id"], inv["id"])
    assert (note["invoice_number"], note["reason"], note["locale"]) == \
        (inv["number"], "product_defective", "de_DE")
    assert (note["net_minor"], note["tax_minor"], note["total_minor"]) == (5000, 1000, 6000)
    assert (note["refunded_minor"], note["credited_minor"], note["outside_minor"]) == \
        (6000, 0, 0)
    assert [(ln["invoice_line_id"], ln["description"], ln["quantity"], ln["tax_rate"],
             ln["net_minor"], ln["tax_minor"], ln["gross_minor"]) for ln in note["lines"]] == \
        [(shoes, "Shoes", 1, "0.2", 5000, 1000, 6000)]
    assert (r["net_minor"], r["tax_minor"]) == (5000, 1000)
    with db.read(engine) as conn:
        assert verify_credit_note(conn, note["id"])
        topics = [t for (t,) in conn.execute(select(outbox_events.c.topic)
                                             .where(outbox_events.c.object_id == note["id"]))]
    assert topics == ["credit_note.issued"]


def test_a_full_refund_in_several_steps_credits_the_invoice_exactly(engine, clock):
    inv = _invoice(engine, clock, lines=[LineInput("Pen", 3, 333, Decimal("0.19")),
                                         LineInput("Ink", 1, 999, Decimal("0.07"))])
    for amount in (101, 257):
        _refund(engine, clock, inv, RefundRequest("amount", "original_payment", "goodwill",
                                                  amount_minor=amount))
    _refund(engine, clock, inv, RefundRequest("full", "original_payment", "goodwill"))
    all_notes = _notes(engine)
    assert [n["number"] for n in all_notes] == ["CN-000001", "CN-000002", "CN-000003"]
    assert [n["total_minor"] for n in all_notes] == [101, 257, inv["total_minor"] - 358]
    for line in inv["lines"]:
        credited = [ln for n in all_notes for ln in n["lines"]
                    if ln["invoice_line_id"] == line["id"]]
        assert sum(ln["gross_minor"] for ln in credited) == line["gross_minor"]
        assert sum(ln["tax_minor"] for ln in credited) == line["tax_minor"]
        assert sum(ln["net_minor"] for ln in credited) == line["net_minor"]


def test_store_credit_refund_credits_the_amount_not_the_bonus(engine, clock):
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", actor=ADMIN, data={
            "extends": "EU-CRD", "id": "bonus", "version": "2026-01-01",
            "store_credit": {"bonus_percent": 10}})
    inv = _invoice(engine, clock)
    r = _refund(engine, clock, inv, RefundRequest("amount", "store_credit", "goodwill",
                                                  amount_minor=10000,
                                                  consent_to_other_method=True))
    assert (r["amount_minor"], r["bonus_minor"]) == (10000, 1000)
    (note,) = _notes(engine)
    assert (note["total_minor"], note["refunded_minor"], note["credited_minor"],
            note["outside_minor"]) == (10000, 0, 10000, 0)
    with db.read(engine) as conn:
        assert get_wallet(conn, inv["customer_id"], "EUR")["balance_minor"] == 11000


def test_a_restocking_fee_kept_is_the_outside_part(engine, clock):
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", actor=ADMIN, data={
            "extends": "US-FED", "id": "fee", "version": "2026-01-01",
            "restocking_fee": {"percent": 10, "disclosed": True}})
    inv = _invoice(engine, clock, currency="USD")
    r = _refund(engine, clock, inv, RefundRequest("lines", "original_payment",
                                                  "requested_by_customer",
                                                  lines=(LineRequest(inv["lines"][0]["id"], 2),)))
    assert r["fee_minor"] > 0
    (note,) = _notes(engine)
    assert note["total_minor"] == r["net_minor"] + r["tax_minor"] == 12000
    assert (note["refunded_minor"], note["credited_minor"], note["outside_minor"]) == \
        (12000 - r["fee_minor"], 0, r["fee_minor"])


def test_a_split_tender_refund_splits_the_note(engine, clock):
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Split")
        seed = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                              tax_mode="exclusive", lines=[LineInput("seed", 1, 4000, Decimal(0))])
        record_payment(conn, clock, seed["id"], method="card", amount_minor=4000,
                       currency="EUR", card=CARD)
        refunds.create_refund(conn, clock, seed["id"],
                              RefundRequest("full", "store_credit", "goodwill"))
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive", lines=[LineInput("Lamp", 1, 10000, R20)])
        record_payment(conn, clock, inv["id"], method="store_credit", amount_minor=4000,
                       currency="EUR")
        record_payment(conn, clock, inv["id"], method="card", amount_minor=8000,
                       currency="EUR", card=CARD)
    _refund(engine, clock, inv, RefundRequest("full", "original_payment", "goodwill"))
    note = _notes(engine, invoice_id=inv["id"])[0]
    assert (note["total_minor"], note["refunded_minor"], note["credited_minor"],
            note["outside_minor"]) == (12000, 8000, 4000, 0)


def test_a_refund_waiting_for_approval_gets_its_note_when_approved(engine, clock):
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id="sel_default", actor=ADMIN, data={
            "extends": "EU-CRD", "id": "approve", "version": "2026-01-01",
            "approvals": {"require_approval_above_minor": {"EUR": 5000}}})
    inv = _invoice(engine, clock)
    agent = Actor("usr_agent", "staff", "agent")
    r = _refund(engine, clock, inv, RefundRequest("full", "original_payment", "goodwill"),
                actor=agent)
    assert r["status"] == "pending_approval" and _notes(engine) == []
    with db.write(engine) as conn:
        approvals.approve_refund(conn, clock, r["id"], actor=Actor("usr_b", "staff", "approver"))
    (note,) = _notes(engine)
    assert (note["refund_id"], note["total_minor"], note["number"]) == (r["id"], 15600,
                                                                        "CN-000001")


# ------------------------------------------------------------------------- adjustments


def test_an_adjustment_credits_lines_and_reduces_the_receivable(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    shoes, socks = (ln["id"] for ln in inv["lines"])
    note = _adjust(engine, clock, inv, AdjustmentLine(shoes, amount_minor=1001),
                   AdjustmentLine(socks, quantity=1))
    # shoes: 10.01 of 120.00 gross, tax round(2000 × 1001 / 12000) = 167; socks: 1 of 3 → 12.00
    assert [(ln["quantity"], ln["net_minor"], ln["tax_minor"], ln["gross_minor"])
            for ln in note["lines"]] == [(0, 834, 167, 1001), (1, 1000, 200, 1200)]
    assert (note["kind"], note["net_minor"], note["tax_minor"], note["total_minor"]) == \
        ("adjustment", 1834, 367, 2201)
    assert (note["refunded_minor"], note["credited_minor"], note["outside_minor"]) == \
        (0, 0, 2201)
    assert _guard(engine, inv) == [(0, 1001, 167), (1, 1200, 200)]
    with db.read(engine) as conn:
        assert account_balance(conn, ledger.RECEIVABLE, "EUR") == 15600 - 2201
        assert account_balance(conn, ledger.SALES_RETURNS, "EUR") == -1834
        assert account_balance(conn, ledger.TAX_PAYABLE, "EUR") == 2600 - 367
        assert all(t["balanced"] for t in trial_balance(conn)["totals"])
        assert notes.amount_due(conn, get_invoice(conn, inv["id"])) == 15600 - 2201


def test_adjustment_then_refund_credit_a_partly_paid_invoice_exactly(engine, clock):
    inv = _invoice(engine, clock, pay=6000)
    shoes, socks = (ln["id"] for ln in inv["lines"])
    _adjust(engine, clock, inv, AdjustmentLine(shoes, amount_minor=9600))  # the amount due
    _refund(engine, clock, inv, RefundRequest("full", "original_payment", "goodwill"))
    with db.read(engine) as conn:
        credited = notes.credited_by_line(conn, inv["id"])
        assert account_balance(conn, ledger.RECEIVABLE, "EUR") == 0
        assert account_balance(conn, ledger.REVENUE, "EUR") + \
            account_balance(conn, ledger.SALES_RETURNS, "EUR") == 0
    for line in inv["lines"]:
        assert credited[line["id"]] == {"gross_minor": line["gross_minor"],
                                        "net_minor": line["net_minor"],
                                        "tax_minor": line["tax_minor"]}
    assert _guard(engine, inv) == [(2, 12000, 2000), (3, 3600, 600)]


def test_a_void_reverses_an_adjustment(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    adj = _adjust(engine, clock, inv, AdjustmentLine(inv["lines"][1]["id"], quantity=2))
    with db.write(engine) as conn:
        void = notes.void_credit_note(conn, clock, adj["id"], reason="billing_error",
                                      memo="issued by mistake", actor=ADMIN)
    assert (void["kind"], void["voids_id"], void["number"], void["total_minor"],
            void["net_minor"], void["tax_minor"]) == ("void", adj["id"], "CN-000002", 2400,
                                                      2000, 400)
    assert [(ln["quantity"], ln["gross_minor"]) for ln in void["lines"]] == [(2, 2400)]
    assert _guard(engine, inv) == [(0, 0, 0), (0, 0, 0)]
    with db.read(engine) as conn:
        assert notes.get_credit_note(conn, adj["id"])["voided_by_id"] == void["id"]
        assert account_balance(conn, ledger.RECEIVABLE, "EUR") == 15600
        assert account_balance(conn, ledger.SALES_RETURNS, "EUR") == 0
        assert account_balance(conn, ledger.TAX_PAYABLE, "EUR") == 2600
        assert verify_credit_note(conn, void["id"])
        assert notes.credited_by_line(conn, inv["id"])[inv["lines"][1]["id"]]["gross_minor"] == 0
    # the lines are creditable again, in full
    again = _adjust(engine, clock, inv, AdjustmentLine(inv["lines"][1]["id"], quantity=3))
    assert again["total_minor"] == 3600


# ---------------------------------------------------------------------------- refusals


def _void(engine, clock, note_id, seller_id=None):
    with db.write(engine) as conn:
        return notes.void_credit_note(conn, clock, note_id, reason="billing_error",
                                      actor=ADMIN, seller_id=seller_id)


def test_voiding_twice_is_refused_and_writes_nothing(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    adj = _adjust(engine, clock, inv, AdjustmentLine(inv["lines"][0]["id"], amount_minor=500))
    void = _void(engine, clock, adj["id"])
    err = _refused(engine, "credit_note_already_voided", lambda: _void(engine, clock, adj["id"]))
    assert err.status == 409 and "CN-000001 is already voided" in err.detail
    _refused(engine, "credit_note_not_voidable", lambda: _void(engine, clock, void["id"]))


def test_voiding_a_refunds_credit_note_is_refused(engine, clock):
    inv = _invoice(engine, clock)
    _refund(engine, clock, inv, RefundRequest("full", "original_payment", "goodwill"))
    (note,) = _notes(engine)
    err = _refused(engine, "credit_note_not_voidable", lambda: _void(engine, clock, note["id"]))
    assert "money has already moved" in err.detail and "adjustment" in err.detail


def test_crediting_more_than_a_line_is_refused(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    shoes, socks = (ln["id"] for ln in inv["lines"])
    err = _refused(engine, "credit_exceeds_remaining", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(shoes, amount_minor=12001)))
    assert err.extra == {"line_id": shoes, "remaining_minor": 12000, "requested_minor": 12001}
    _refused(engine, "quantity_exceeds_remaining", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(socks, quantity=4)))
    # after a refund took part of the line, only the rest remains
    with db.write(engine) as conn:
        record_payment(conn, clock, inv["id"], method="card", amount_minor=6000, currency="EUR",
                       card=CARD)
    _refund(engine, clock, inv, RefundRequest("lines", "original_payment", "goodwill",
                                              lines=(LineRequest(shoes, 1),)))
    _refused(engine, "credit_exceeds_remaining", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(shoes, amount_minor=6001)))
    _refused(engine, "not_found", lambda: _adjust(
        engine, clock, inv, AdjustmentLine("il_00000000000000000000000000", amount_minor=1)))


def test_crediting_beyond_the_amount_due_is_refused(engine, clock):
    inv = _invoice(engine, clock, pay=10000)  # 56.00 still due
    shoes = inv["lines"][0]["id"]
    err = _refused(engine, "credit_exceeds_amount_due", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(shoes, amount_minor=5601)))
    assert err.extra == {"requested_minor": 5601, "due_minor": 5600}
    _adjust(engine, clock, inv, AdjustmentLine(shoes, amount_minor=5600))
    _refused(engine, "credit_exceeds_amount_due", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(shoes, amount_minor=1)))
    paid = _invoice(engine, clock)
    _refused(engine, "credit_exceeds_amount_due", lambda: _adjust(
        engine, clock, paid, AdjustmentLine(paid["lines"][0]["id"], amount_minor=1)))


def test_another_currency_a_void_invoice_and_a_bad_reason_are_refused(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    line = AdjustmentLine(inv["lines"][0]["id"], amount_minor=100)
    err = _refused(engine, "currency_mismatch",
                   lambda: _adjust(engine, clock, inv, line, currency="usd"))
    assert "is in EUR, not USD" in err.detail
    _refused(engine, "validation_failed",
             lambda: _adjust(engine, clock, inv, line, reason="because"))
    _refused(engine, "validation_failed", lambda: _adjust(
        engine, clock, inv, AdjustmentLine(inv["lines"][0]["id"], amount_minor=1, quantity=1)))
    with db.write(engine) as conn:
        void_invoice(conn, clock, inv["id"])
    _refused(engine, "conflict", lambda: _adjust(engine, clock, inv, line))


def test_another_sellers_credit_note_looks_missing(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    adj = _adjust(engine, clock, inv, AdjustmentLine(inv["lines"][0]["id"], amount_minor=100))
    with db.read(engine) as conn:
        with pytest.raises(DomainError) as err:
            notes.get_credit_note(conn, adj["id"], seller_id="sel_other")
    assert err.value.code == "not_found"
    _refused(engine, "not_found", lambda: _void(engine, clock, adj["id"], seller_id="sel_other"))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_refuses_to_change_an_issued_credit_note(engine, clock):
    inv = _invoice(engine, clock, pay=0)
    adj = _adjust(engine, clock, inv, AdjustmentLine(inv["lines"][0]["id"], amount_minor=100))
    for stmt in ("UPDATE credit_notes SET total_minor = 1, net_minor = 1, tax_minor = 0",
                 "DELETE FROM credit_note_lines", "DELETE FROM credit_notes"):
        with pytest.raises(Exception, match="append-only|append_only|not allowed|refuse"):
            with engine.begin() as conn:
                conn.execute(text(stmt))
    with db.read(engine) as conn:
        assert notes.get_credit_note(conn, adj["id"])["total_minor"] == 100
        assert verify_credit_note(conn, adj["id"])
