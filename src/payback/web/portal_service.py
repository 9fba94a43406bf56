"""The customer portal's use cases: what a customer with a refund link sees and may do.

Every figure and decision comes from the refunds service (``preview_refund``, ``create_refund``,
``list_refunds``, ``get_refund``), the refund policy (through those) and
``refunds.expectations.expected_arrival``; this module only gathers them for one invoice and puts
them into plain words (``portal_words``). The caller owns the transaction, as everywhere.

Invariants:
- a link shows one invoice: a refund of any other invoice is reported exactly like a missing
  one (``NotFound``), so a link cannot be used to probe other ids;
- the customer acts as ``Actor(kind="customer", id="customer:<id>")`` of the invoice's seller,
  so the policy, the refund events and the audit trail all see who asked;
- every write (a refund request, a withdrawal) appends an audit record in its own transaction,
  as the last statement; a refused write is audited in a transaction of its own;
- the withdrawal function is offered only where the seller's policy carries a statutory
  change-of-mind right (its ``statutory_floor``) and the policy, asked about a full refund for a
  change of mind right now, does not deny it. The withdrawal itself is that full refund, to the
  original payment method (CRD Art 13(1)), with reason ``requested_by_customer`` (the policy's
  change-of-mind claim) and the note ``WITHDRAWAL_NOTE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from payback import db
from payback.access.tables import sellers
from payback.actor import Actor
from payback.audit import service as audit
from payback.clock import Clock
from payback.customers.service import get_customer
from payback.errors import DomainError, InvalidQuantity, NotFound, QuantityExceedsRemaining
from payback.invoicing.service import get_invoice
from payback.payments.tables import payments
from payback.policies.service import active_policy
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.expectations import expected_arrival
from payback.refunds.service import RefundDenied
from payback.web import portal_words as words
from payback.web.portal_forms import QTY_PREFIX, FormInvalid

WITHDRAWAL_NOTE = "Withdrawal from contract, submitted by the customer with the refund link."
WITHDRAWAL = RefundRequest(kind="full", method="original_payment",
                           reason="requested_by_customer", note=WITHDRAWAL_NOTE)
#: The few words that differ where the statutory right is called cancellation (UK CCRs).
WITHDRAWAL_LABELS = {
    "EU": {"button": "Withdraw from contract", "confirm": "Confirm withdrawal",
           "noun": "withdrawal"},
    "other": {"button": "Cancel contract", "confirm": "Confirm cancellation",
              "noun": "cancellation"},
}
REFUND_LIMIT = 500


class WithdrawalUnavailable(DomainError):
    code, status, title = ("withdrawal_unavailable", 422,
                           "Withdrawal is not available for this purchase")


@dataclass(frozen=True)
class Portal:
    """One invoice as its customer sees it, loaded once per request."""

    invoice: dict
    customer: dict
    seller_name: str
    locale: str
    timezone: str
    jurisdiction: str | None
    withdrawal_right: bool
    payments: dict[str, dict]

    @property
    def invoice_id(self) -> str:
        return self.invoice["id"]

    def actor(self, origin: str, request_id: str | None = None) -> Actor:
        return Actor(id=f"customer:{self.customer['id']}", kind="customer", role=None,
                     seller_id=self.invoice["seller_id"], origin=origin, request_id=request_id)


def load(conn: Connection, invoice_id: str) -> Portal:
    try:
        inv = get_invoice(conn, invoice_id)
    except NotFound:
        raise NotFound("there is no invoice for this link; please ask the shop for a new "
                       "one") from None
    policy = active_policy(conn, inv["seller_id"])
    floor = policy.statutory_floor if policy else None
    right = bool(floor and floor.change_of_mind_required and floor.change_of_mind_required.value)
    seller = conn.execute(select(sellers.c.name).where(sellers.c.id == inv["seller_id"])).scalar()
    rows = conn.execute(select(payments.c.id, payments.c.method, payments.c.card_brand,
                               payments.c.card_last4).where(payments.c.invoice_id == invoice_id))
    customer = get_customer(conn, inv["customer_id"])
    return Portal(invoice=inv, customer=customer, seller_name=seller or "the shop",
                  locale=words.safe_locale(customer["locale"]),
                  timezone=policy.timezone if policy else "UTC",
                  jurisdiction=policy.jurisdiction if policy else None, withdrawal_right=right,
                  payments={r.id: dict(r._mapping) for r in rows})


# --- reading --------------------------------------------------------------------------------------

def page(conn: Connection, p: Portal, actor: Actor, now: datetime) -> dict:
    """Everything the invoice page shows."""
    inv, loc = p.invoice, p.locale
    lines = [{"id": ln["id"], "description": ln["description"], "quantity": ln["quantity"],
              "remaining": ln["refundable_quantity"],
              "remaining_amount": words.money(ln["refundable_gross_minor"], inv["currency"], loc)}
             for ln in inv["lines"]]
    return {"invoice": invoice_summary(p), "lines": lines,
            "refunds": [refund_summary(conn, p, r) for r in refunds.list_refunds(
                conn, after=None, limit=REFUND_LIMIT, invoice_id=p.invoice_id)],
            "overview": overview(conn, p, actor, now),
            "withdrawal": _offer_or_none(conn, p, actor, now),
            "can_request": inv["amount_refundable_minor"] > 0
            and any(ln["remaining"] > 0 for ln in lines)}


def invoice_summary(p: Portal) -> dict:
    inv, loc = p.invoice, p.locale
    return {"number": inv["number"], "issued": words.day(inv["issued_at"], loc, p.timezone),
            "total": words.money(inv["total_minor"], inv["currency"], loc),
            "paid": words.money(inv["amount_paid_minor"], inv["currency"], loc),
            "refunded": words.money(inv["amount_refunded_minor"], inv["currency"], loc),
            "void": inv["voided_at"] is not None, "seller": p.seller_name}


def overview(conn: Connection, p: Portal, actor: Actor, now: datetime) -> dict | None:
    """What the policy allows, from a preview of a full return for a change of mind (to the
    original payment, or to store credit where the policy accepts only that)."""
    try:
        pv = refunds.preview_refund(conn, p.invoice_id, _full("original_payment"), actor=actor,
                                    now=now)
        if pv["decision"]["outcome"] == "deny" and any(
                e["rule"] == "method" for e in pv["decision"]["explanations"]):
            pv = refunds.preview_refund(conn, p.invoice_id, _full("store_credit"), actor=actor,
                                        now=now)
    except DomainError as err:
        return {"allowed": False, "sentences": [err.detail[:1].upper() + err.detail[1:] + "."],
                "policy": []}
    if pv["decision"]["outcome"] == "deny":
        return {"allowed": False, "sentences": [], "policy": words.policy_texts(pv["decision"])}
    return {"allowed": True, "policy": words.policy_texts(pv["decision"]),
            "sentences": words.overview_sentences(pv, p.payments, p.locale, p.timezone)}


def _full(method: str) -> RefundRequest:
    return RefundRequest(kind="full", method=method, reason="requested_by_customer",
                         consent_to_other_method=method == "store_credit")


def refund_summary(conn: Connection, p: Portal, refund: dict) -> dict:
    """One refund of the invoice: amount, where it goes, status and when to expect it."""
    loc, cur = p.locale, refund["currency"]
    tenders = refunds.load_tenders(conn, refund["id"])
    paid_to = [t for t in tenders if t["destination"] == "original_payment"]
    main = max(paid_to, key=lambda t: t["amount_minor"], default=None)
    exp = expected_arrival(refund, main["payment_method"] if main else None)
    bonus = refund["bonus_minor"] if refund["method"] == "store_credit" else 0
    return {"id": refund["id"], "requested": words.day(refund["created_at"], loc, p.timezone),
            "amount": words.money(refund["amount_minor"], cur, loc),
            "bonus": words.money(bonus, cur, loc) if bonus else None,
            "store_credit_total": words.money(refund["amount_minor"] + bonus, cur, loc),
            "method": words.method_words(refund["method"], tenders, p.payments, cur, loc),
            "status": refund["status"], "status_words": words.STATUS_WORDS[refund["status"]],
            "expected": words.expectation_words(exp, refund["status"], loc),
            "reason": words.REASON_WORDS.get(refund["reason"], refund["reason"]),
            "is_withdrawal": refund["note"] == WITHDRAWAL_NOTE}


def refund_page(conn: Connection, p: Portal, refund_id: str) -> dict:
    """One refund with its items and note; a refund of another invoice is 'not found'."""
    # One answer for a missing id and another invoice's refund: the link cannot probe ids.
    try:
        r = refunds.get_refund(conn, refund_id, seller_id=p.invoice["seller_id"])
    except NotFound:
        r = None
    if r is None or r["invoice_id"] != p.invoice_id:
        raise NotFound("there is no such refund on this invoice")
    names = {ln["id"]: ln["description"] for ln in p.invoice["lines"]}
    out = refund_summary(conn, p, r)
    out.update(
        items=[{"description": names.get(ln["invoice_line_id"], "Item"),
                "quantity": ln["quantity"],
                "amount": words.money(ln["gross_minor"], r["currency"], p.locale)}
               for ln in r["lines"] if ln["quantity"] or ln["gross_minor"]],
        # Only the customer's own words: staff notes and system notes stay internal.
        note=r["note"] if r["requested_by"] == f"customer:{p.customer['id']}"
        and not out["is_withdrawal"] else None,
        at_iso=r["created_at"].isoformat(), at_utc=words.utc_moment(r["created_at"]),
        at_local=words.moment(r["created_at"], p.locale, p.timezone),
        policy=words.policy_texts(r["decision"] or {}))
    return out


# --- previews -------------------------------------------------------------------------------------

def preview(conn: Connection, p: Portal, req: RefundRequest, actor: Actor,
            now: datetime) -> dict:
    """What a request would give, in plain words; a denial raises ``RefundDenied`` with the
    policy's explanations; a quantity the invoice no longer has raises ``FormInvalid``."""
    try:
        pv = refunds.preview_refund(conn, p.invoice_id, req, actor=actor, now=now)
    except (QuantityExceedsRemaining, InvalidQuantity, NotFound) as err:
        raise _form_error(p, err) from err
    _refuse_if_denied(pv["decision"])
    names = {ln["id"]: ln["description"] for ln in p.invoice["lines"]}
    return {"sentences": words.outcome_sentences(pv, p.payments, p.locale, p.timezone),
            "policy": words.policy_texts(pv["decision"]),
            "items": [{"description": names[ln["invoice_line_id"]], "quantity": ln["quantity"],
                       "amount": words.money(ln["gross_minor"], pv["currency"], p.locale)}
                      for ln in pv["lines"]],
            "reason": words.REASON_WORDS.get(req.reason, req.reason), "note": req.note,
            "needs_approval": pv["decision"]["outcome"] == "needs_approval"}


def _refuse_if_denied(decision: dict) -> None:
    if decision["outcome"] == "deny":
        raise RefundDenied(" ".join(words.policy_texts(decision)) or "not allowed",
                           decision=decision)


def _form_error(p: Portal, err: DomainError) -> FormInvalid:
    line_id = err.extra.get("line_id")
    names = {ln["id"]: ln["description"] for ln in p.invoice["lines"]}
    if isinstance(err, QuantityExceedsRemaining) and line_id in names:
        left = err.extra.get("remaining", 0)
        return FormInvalid({f"{QTY_PREFIX}{line_id}":
                            f"You can return at most {left} of “{names[line_id]}”."})
    return FormInvalid({"items": "One of the items cannot be returned; reload the page."})


def withdrawal_offer(conn: Connection, p: Portal, actor: Actor, now: datetime) -> dict:
    """The withdrawal function's offer, or ``WithdrawalUnavailable`` saying why not."""
    if not p.withdrawal_right:
        raise WithdrawalUnavailable("the shop's refund policy gives no statutory right to "
                                    "withdraw from this purchase; you can still ask for a "
                                    "refund below")
    try:
        pv = refunds.preview_refund(conn, p.invoice_id, WITHDRAWAL, actor=actor, now=now)
    except DomainError as err:
        raise WithdrawalUnavailable(err.detail) from err
    if pv["decision"]["outcome"] == "deny":
        raise WithdrawalUnavailable(" ".join(words.policy_texts(pv["decision"])),
                                    decision=pv["decision"])
    window = (pv["decision"].get("deadlines") or {}).get("window_ends_at")
    return {"labels": WITHDRAWAL_LABELS["EU" if p.jurisdiction == "EU" else "other"],
            "sentences": words.outcome_sentences(pv, p.payments, p.locale, p.timezone),
            "until": words.day(window, p.locale, p.timezone) if window else None,
            "policy": words.policy_texts(pv["decision"])}


def _offer_or_none(conn: Connection, p: Portal, actor: Actor, now: datetime) -> dict | None:
    try:
        return withdrawal_offer(conn, p, actor, now)
    except WithdrawalUnavailable:
        return None


# --- writes ---------------------------------------------------------------------------------------

def request_refund(conn: Connection, clock: Clock, p: Portal, req: RefundRequest,
                   actor: Actor) -> dict:
    """Create the customer's refund (the policy decides: straight through or to approval)."""
    refund = refunds.create_refund(conn, clock, p.invoice_id, req, actor=actor,
                                   seller_id=p.invoice["seller_id"])
    _audit(conn, actor, "refund.request", refund, _request_summary(req), clock.now())
    return refund


def withdraw(conn: Connection, clock: Clock, p: Portal, actor: Actor) -> dict:
    """Withdraw from the contract: a full refund of what remains, to the original payment."""
    withdrawal_offer(conn, p, actor, clock.now())
    refund = refunds.create_refund(conn, clock, p.invoice_id, WITHDRAWAL, actor=actor,
                                   seller_id=p.invoice["seller_id"])
    _audit(conn, actor, "contract.withdraw", refund, {"invoice_id": p.invoice_id},
           clock.now())
    return refund


def _request_summary(req: RefundRequest) -> dict:
    return {"kind": req.kind, "method": req.method, "reason": req.reason, "note": req.note,
            "consent_to_other_method": req.consent_to_other_method,
            "lines": [{"line_id": lr.line_id, "quantity": lr.quantity} for lr in req.lines]}


def _audit(conn: Connection, actor: Actor, action: str, refund: dict, request: dict,
           now: datetime) -> None:
    after = {k: refund[k] for k in ("id", "status", "amount_minor", "currency", "invoice_id",
                                     "method")}
    audit.record(conn, at=now, actor_id=actor.id, actor_kind="customer", actor_role=None,
                 seller_id=actor.seller_id, action=action, object_type="refund",
                 object_id=refund["id"], outcome="allowed",
                 summary={"via": "portal", "request": request, "after": after},
                 origin=actor.origin, request_id=actor.request_id)


def record_refusal(engine: Engine, *, actor: Actor, action: str, err: DomainError,
                   now: datetime, invoice_id: str | None = None, known: bool = True) -> None:
    """A refused portal request (bad link, bad form, policy denial…), in its own transaction.
    ``known``: the link was valid, so the actor is the invoice's customer. The link token itself
    is never recorded: it is the customer's key."""
    with db.write(engine) as conn:
        audit.record(conn, at=now, actor_id=actor.id, actor_kind="customer", actor_role=None,
                     seller_id=actor.seller_id if known else None, action=action,
                     object_type="invoice" if invoice_id else None, object_id=invoice_id,
                     outcome="refused", summary={"via": "portal", "code": err.code,
                                                 "detail": err.detail[:500]},
                     origin=actor.origin, request_id=actor.request_id)
