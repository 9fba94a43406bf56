"""Refund use cases: preview (writes nothing), create, get, list, and the overdue list.

``create_refund`` is one transaction: lock the invoice row (PostgreSQL ``FOR UPDATE``; SQLite's
``BEGIN IMMEDIATE`` already serialises writers), load what remains refundable, run the same
calculator as the preview, ask the policy for its decision, then write the refund, its lines,
tenders and first lifecycle event, and reserve the amount on the guard counters (whose CHECK
constraints refuse any over-refund the code might miss). A refund the policy allows is approved
and settled at once (``advance``); one that needs approval waits in ``pending_approval`` with its
amount reserved; one the policy denies is refused and nothing is written.

Every status change goes through ``transition``, which checks the state machine
(``lifecycle.py``) and appends a refund event (actor, time, comment) and an outbox event.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, select, update

from payback.actor import SYSTEM, Actor
from payback.clock import Clock
from payback.credit_notes import service as credit_notes
from payback.errors import Conflict, CurrencyMismatch, DomainError, NotFound
from payback.ids import new_id
from payback.invoicing.service import load_lines, lock_invoice
from payback.invoicing.tables import invoice_lines, invoices
from payback.money import normalise_currency
from payback.ledger.service import post_many
from payback.outbox.service import emit_many, outbox_row
from payback.payments.tables import payments
from payback.refunds import domain, lifecycle, settlement
from payback.refunds.policy import Decision, decide
from payback.refunds.tables import refund_events, refund_lines, refund_tenders, refunds


class RefundDenied(DomainError):
    code, status, title = "refund_denied_by_policy", 422, "The refund policy does not allow this"


_insert_refund = insert(refunds)
_insert_lines = insert(refund_lines)
_insert_tenders = insert(refund_tenders)
_insert_event = insert(refund_events)
_reserve_lines = (update(invoice_lines).where(invoice_lines.c.id == bindparam("b_id"))
                  .values(refunded_quantity=invoice_lines.c.refunded_quantity + bindparam("b_qty"),
                          refunded_gross_minor=invoice_lines.c.refunded_gross_minor
                          + bindparam("b_gross"),
                          refunded_tax_minor=invoice_lines.c.refunded_tax_minor
                          + bindparam("b_tax")))
_reserve_payments = (update(payments).where(payments.c.id == bindparam("b_id"))
                     .values(refunded_minor=payments.c.refunded_minor + bindparam("b_amount")))
_select_tenders = (select(payments.c.id, payments.c.method, payments.c.amount_minor,
                          payments.c.refunded_minor, payments.c.gateway, payments.c.reference)
                   .where(payments.c.invoice_id == bindparam("invoice_id"))
                   .order_by(payments.c.captured_at, payments.c.id))


def _state(conn: Connection, inv: dict, currency: str | None):
    if inv["voided_at"] is not None:
        raise Conflict(f"invoice {inv['number']} is void")
    if currency is not None and normalise_currency(currency) != inv["currency"]:
        raise CurrencyMismatch(f"invoice {inv['number']} is in {inv['currency']}, not {currency}")
    lines = [domain.LineState(
        id=ln["id"], kind=ln["kind"], description=ln["description"], quantity=ln["quantity"],
        gross_minor=ln["gross_minor"], tax_minor=ln["tax_minor"],
        discount_minor=ln["line_discount_minor"] + ln["invoice_discount_minor"],
        refunded_quantity=ln["refunded_quantity"],
        refunded_gross_minor=ln["refunded_gross_minor"],
        refunded_tax_minor=ln["refunded_tax_minor"]) for ln in load_lines(conn, inv["id"])]
    rows = conn.execute(_select_tenders, {"invoice_id": inv["id"]}).all()
    tenders = [domain.TenderState(r.id, r.method, r.amount_minor, r.refunded_minor) for r in rows]
    routes = {r.id: {"gateway": r.gateway, "reference": r.reference} for r in rows}
    return lines, tenders, routes


def _evaluate(conn: Connection, inv: dict, req: domain.RefundRequest, currency: str | None,
              actor: Actor, now: datetime
              ) -> tuple[domain.RefundCalculation, Decision, dict[str, dict]]:
    """The calculator and the policy together: what the preview shows and create writes (and,
    per payment, the gateway that can refund it)."""
    lines, tenders, routes = _state(conn, inv, currency)
    calc = domain.calculate(inv["currency"], lines, tenders, req)
    decision = decide(conn, inv=inv, calc=calc, req=req, actor=actor, now=now)
    return domain.apply_fee(calc, decision.fee_minor, tenders), decision, routes


def preview_refund(conn: Connection, invoice_id: str, req: domain.RefundRequest,
                   currency: str | None = None, *, actor: Actor = SYSTEM,
                   seller_id: str | None = None, now: datetime | None = None) -> dict:
    """The numbers and the policy decision a refund would have right now. Writes nothing."""
    q = select(invoices).where(invoices.c.id == invoice_id)
    if seller_id:
        q = q.where(invoices.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found")
    inv = dict(row._mapping)
    calc, decision, _routes = _evaluate(conn, inv, req, currency, actor, now or _now())
    return _calculation_view(inv, req, calc, decision)


def _now() -> datetime:
    from payback.clock import SystemClock
    return SystemClock().now()


def create_refund(conn: Connection, clock: Clock, invoice_id: str, req: domain.RefundRequest,
                  currency: str | None = None, *, actor: Actor = SYSTEM,
                  seller_id: str | None = None) -> dict:
    domain.validate_request(req)
    inv = lock_invoice(conn, invoice_id, seller_id)
    now = clock.now()
    calc, decision, routes = _evaluate(conn, inv, req, currency, actor, now)
    if decision.outcome == "deny":
        raise RefundDenied(_denial_text(decision), decision=decision.to_json())
    refund, lines, tenders = _rows(new_id("refund"), inv, req, calc, decision, actor, now)
    for t in tenders:
        t.update(routes[t["payment_id"]])
    trail = Trail(refund, inv, now)
    trail.move("requested", actor, req.note)
    if decision.outcome == "needs_approval":
        trail.move("pending_approval", actor, _denial_text(decision))
    else:
        approve_and_settle_moves(trail, actor, tenders, comment="approved by policy")
    # The refund row is written once, in its final status; its history is in the trail.
    _insert(conn, refund, lines, tenders)
    entries = [] if decision.outcome == "needs_approval" else \
        money_moves(conn, refund, tenders, inv, trail)
    trail.flush(conn, entries)
    return {**refund, "lines": lines, "tenders": _tender_views(tenders), "events": trail.events}


def record_decided_refund(conn: Connection, now: datetime, invoice_id: str,
                          req: domain.RefundRequest, *, actor: Actor, decision: Decision,
                          payment_id: str | None = None, destination: str | None = None,
                          settle: bool) -> dict:
    """Write a refund whose decision was taken elsewhere, without asking the policy: a refund
    made at the gateway (its dashboard), or the fallback of a refund the gateway failed.

    It is approved at once (by ``actor``) and moves to ``processing`` with its approval entry;
    ``settle`` pays it out now (store credit, manual payout). ``payment_id`` limits the tenders
    to one payment; ``destination`` overrides where the tenders' money goes."""
    inv = lock_invoice(conn, invoice_id)
    lines, tenders, routes = _state(conn, inv, None)
    if payment_id is not None:
        tenders = [t for t in tenders if t.payment_id == payment_id]
    calc = domain.apply_fee(domain.calculate(inv["currency"], lines, tenders, req),
                            decision.fee_minor, tenders)
    refund, line_rows, tender_rows = _rows(new_id("refund"), inv, req, calc, decision, actor, now)
    for t in tender_rows:
        t.update(routes[t["payment_id"]])
        if destination is not None:
            t["destination"] = destination
    trail = Trail(refund, inv, now)
    trail.move("requested", actor, req.note)
    trail.move("approved", actor, _denial_text(decision), approved_by=actor.id)
    trail.move("processing", SYSTEM)
    if settle:
        trail.move("succeeded", SYSTEM, settled_at=now)
    _insert(conn, refund, line_rows, tender_rows)
    entries = settlement.approval_entry(refund, inv)
    if settle:
        entries += settle_now(conn, refund, tender_rows, inv, trail)
    trail.flush(conn, entries)
    return refund


class Trail:
    """The status changes of one refund within one transaction: each is checked against the
    state machine and becomes a refund event and an outbox event; ``flush`` writes them all,
    and the journal entries, with one statement per table."""

    def __init__(self, refund: dict, inv: dict, now: datetime) -> None:
        self.refund, self.inv, self.now = refund, inv, now
        self.events: list[dict] = []
        self.outbox: list[dict] = []

    def move(self, target: str, actor: Actor, comment: str | None = None, **changes) -> None:
        current = None if target == "requested" else self.refund["status"]
        if current is not None:
            lifecycle.check(current, target)
        self.refund.update(status=target, **changes)
        self.events.append({"refund_id": self.refund["id"], "from_status": current,
                            "to_status": target, "actor_id": actor.id, "actor_role": actor.role,
                            "comment": comment, "at": self.now})
        topic = "refund.created" if target == "requested" else f"refund.{target}"
        self.outbox.append(outbox_row(topic, self.refund["id"], _event(self.refund), self.now,
                                      self.inv["seller_id"]))

    def flush(self, conn: Connection, entries: list) -> None:
        conn.execute(_insert_event, self.events)
        emit_many(conn, self.outbox)
        post_many(conn, entries, self.now, self.inv["seller_id"])


def transition(conn: Connection, refund: dict, target: str, actor: Actor, now: datetime, *,
               inv: dict, comment: str | None = None, **changes) -> None:
    """Move a stored refund to ``target`` and record it (one status change)."""
    trail = Trail(refund, inv, now)
    trail.move(target, actor, comment, **changes)
    save_status(conn, refund)
    trail.flush(conn, [])


def save_status(conn: Connection, refund: dict) -> None:
    conn.execute(update(refunds).where(refunds.c.id == refund["id"]).values(
        status=refund["status"], approved_by=refund["approved_by"],
        settled_at=refund["settled_at"]))


def approve_and_settle_moves(trail: Trail, actor: Actor, tenders: list[dict], *,
                             comment: str | None = None) -> None:
    """requested or pending_approval → approved → processing, then → succeeded at once unless
    part of the money goes back through a payment gateway: such a refund stays ``processing``
    until the gateway confirms (``payback.gateways.flow``). ``money_moves`` does the money."""
    trail.move("approved", actor, comment, approved_by=actor.id)
    trail.move("processing", SYSTEM)
    if not settlement.gateway_tenders(trail.refund, tenders):
        trail.move("succeeded", SYSTEM, settled_at=trail.now)


def money_moves(conn: Connection, refund: dict, tenders: list[dict], inv: dict,
                trail: Trail) -> list:
    """Return the journal entries of approval and, when the refund succeeded now, of settlement
    (crediting wallets and issuing the credit note). A refund waiting for its gateway gets its
    gateway intents instead, committed with it, before any gateway is called."""
    entries = settlement.approval_entry(refund, inv)
    if refund["status"] == "processing":
        from payback.gateways.flow import open_intents
        open_intents(conn, refund, settlement.gateway_tenders(refund, tenders), inv, trail)
        return entries
    return entries + settle_now(conn, refund, tenders, inv, trail)


def settle_now(conn: Connection, refund: dict, tenders: list[dict], inv: dict,
               trail: Trail) -> list:
    """Pay the refund out (wallet credits, journal entry) and issue its credit note."""
    entries = settlement.settle(conn, refund, tenders, inv, trail.now, trail.outbox)
    credit_notes.issue_for_refund(conn, refund, tenders, inv, trail.now, trail.outbox)
    return entries


def _denial_text(decision: Decision) -> str:
    return " ".join(e["text"] for e in decision.explanations) or decision.outcome


def _rows(refund_id: str, inv: dict, req: domain.RefundRequest, calc: domain.RefundCalculation,
          decision: Decision, actor: Actor, now: datetime) -> tuple[dict, list, list]:
    bonus = decision.bonus_minor if req.method == "store_credit" else 0
    refund = {
        "id": refund_id, "invoice_id": inv["id"], "customer_id": inv["customer_id"],
        "seller_id": inv["seller_id"], "status": "requested", "kind": req.kind,
        "method": req.method, "reason": req.reason, "note": req.note,
        "currency": inv["currency"], "amount_minor": calc.amount_minor,
        "net_minor": calc.net_minor, "tax_minor": calc.tax_minor, "fee_minor": calc.fee_minor,
        "bonus_minor": bonus, "requested_by": actor.id, "approved_by": None,
        "policy_id": decision.policy_id, "policy_version": decision.policy_version,
        "decision": decision.to_json(), "due_at": decision.due_at, "created_at": now,
        "settled_at": None}
    lines = [{"id": new_id("refund_line"), "refund_id": refund_id, "invoice_line_id": rl.line_id,
              "quantity": rl.quantity, "gross_minor": rl.gross_minor, "net_minor": rl.net_minor,
              "tax_minor": rl.tax_minor, "discount_minor": rl.discount_minor}
             for rl in calc.lines]
    tenders = [{"refund_id": refund_id, "payment_id": t.payment_id,
                "payment_method": t.payment_method, "destination": t.destination,
                "amount_minor": t.amount_minor} for t in calc.tenders]
    return refund, lines, tenders


def _insert(conn: Connection, refund: dict, lines: list, tenders: list) -> None:
    """Write the refund, its lines and tenders, and reserve the amount on the guard counters."""
    conn.execute(_insert_refund, refund)
    conn.execute(_insert_lines, lines)
    conn.execute(_insert_tenders, [{k: v for k, v in t.items() if k != "payment_method"}
                                   for t in tenders])
    conn.execute(_reserve_lines, [{"b_id": ln["invoice_line_id"], "b_qty": ln["quantity"],
                                   "b_gross": ln["gross_minor"], "b_tax": ln["tax_minor"]}
                                  for ln in lines])
    conn.execute(_reserve_payments, [{"b_id": t["payment_id"], "b_amount": t["amount_minor"]}
                                     for t in tenders])


def _event(refund: dict) -> dict:
    event = {"id": refund["id"], "invoice_id": refund["invoice_id"],
             "amount_minor": refund["amount_minor"], "currency": refund["currency"],
             "method": refund["method"], "status": refund["status"]}
    # A failed refund says why and what the customer can be offered instead.
    for extra in ("failure_reason", "fallback"):
        if refund.get(extra) is not None:
            event[extra] = refund[extra]
    return event


def _tender_views(tenders: list[dict]) -> list[dict]:
    return [{k: t[k] for k in ("payment_id", "destination", "amount_minor")} for t in tenders]


def _calculation_view(inv: dict, req: domain.RefundRequest, calc: domain.RefundCalculation,
                      decision: Decision) -> dict:
    return {
        "invoice_id": inv["id"], "currency": calc.currency, "kind": calc.kind,
        "method": calc.method, "reason": req.reason, "amount_minor": calc.amount_minor,
        "net_minor": calc.net_minor, "tax_minor": calc.tax_minor, "fee_minor": calc.fee_minor,
        "refundable_before_minor": calc.refundable_before_minor,
        "refundable_after_minor": calc.refundable_after_minor,
        "lines": [{"invoice_line_id": rl.line_id, "quantity": rl.quantity,
                   "gross_minor": rl.gross_minor, "net_minor": rl.net_minor,
                   "tax_minor": rl.tax_minor, "discount_minor": rl.discount_minor}
                  for rl in calc.lines],
        "tenders": [{"payment_id": t.payment_id, "payment_method": t.payment_method,
                     "destination": t.destination, "amount_minor": t.amount_minor}
                    for t in calc.tenders],
        "decision": decision.to_json(),
    }


def _by_id(refund_id: str, seller_id: str | None):
    q = select(refunds).where(refunds.c.id == refund_id)
    return q.where(refunds.c.seller_id == seller_id) if seller_id else q


def load_for_update(conn: Connection, refund_id: str, seller_id: str | None) -> tuple[dict, dict]:
    """Lock the refund's invoice (the fixed lock order), then read the refund."""
    row = conn.execute(_by_id(refund_id, seller_id)).first()
    if row is None:
        raise NotFound(f"refund {refund_id} not found")
    inv = lock_invoice(conn, row.invoice_id)
    refund = dict(conn.execute(_by_id(refund_id, None)).one()._mapping)
    return refund, inv


def load_tenders(conn: Connection, refund_id: str) -> list[dict]:
    q = (select(refund_tenders.c.payment_id, payments.c.method.label("payment_method"),
                refund_tenders.c.destination, refund_tenders.c.amount_minor, payments.c.gateway,
                payments.c.reference)
         .join(payments, payments.c.id == refund_tenders.c.payment_id)
         .where(refund_tenders.c.refund_id == refund_id).order_by(refund_tenders.c.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def get_refund(conn: Connection, refund_id: str, seller_id: str | None = None) -> dict:
    row = conn.execute(_by_id(refund_id, seller_id)).first()
    if row is None:
        raise NotFound(f"refund {refund_id} not found")
    out = dict(row._mapping)
    out["lines"] = [dict(r._mapping) for r in conn.execute(
        select(refund_lines).where(refund_lines.c.refund_id == refund_id)
        .order_by(refund_lines.c.id))]
    out["tenders"] = _tender_views(load_tenders(conn, refund_id))
    out["events"] = [dict(r._mapping) for r in conn.execute(
        select(refund_events).where(refund_events.c.refund_id == refund_id)
        .order_by(refund_events.c.id))]
    return out


def list_refunds(conn: Connection, *, after: str | None, limit: int,
                 invoice_id: str | None = None, status: str | None = None,
                 seller_id: str | None = None) -> list[dict]:
    q = select(refunds).order_by(refunds.c.id).limit(limit)
    if after:
        q = q.where(refunds.c.id > after)
    if invoice_id:
        q = q.where(refunds.c.invoice_id == invoice_id)
    if status:
        q = q.where(refunds.c.status == status)
    if seller_id:
        q = q.where(refunds.c.seller_id == seller_id)
    return [dict(r._mapping) for r in conn.execute(q)]


def list_overdue(conn: Connection, now: datetime, *, due_within_days: int = 0,
                 seller_id: str | None = None, limit: int = 200) -> list[dict]:
    """Refunds not yet finished whose due date has passed, or falls within ``due_within_days``:
    what finance must chase. Each row says whether it is late or due soon."""
    horizon = now + timedelta(days=due_within_days)
    open_states = tuple(lifecycle.ACTIVE - {"succeeded"})
    q = (select(refunds).where(refunds.c.status.in_(open_states), refunds.c.due_at.is_not(None),
                               refunds.c.due_at <= horizon)
         .order_by(refunds.c.due_at, refunds.c.id).limit(limit))
    if seller_id:
        q = q.where(refunds.c.seller_id == seller_id)
    out = []
    for r in conn.execute(q):
        row = dict(r._mapping)
        row["overdue"] = row["due_at"] < now
        out.append(row)
    return out
