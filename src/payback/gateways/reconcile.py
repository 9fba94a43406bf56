"""Reconciliation: compare a gateway's refunds with Payback's over a period, classify every
difference, repair what is safe, and list the rest for a person.

Matching: a gateway refund belongs to the gateway intent named in its metadata, or with its
gateway refund id, or made with its idempotency key (``flow.find_intent``).

| difference | meaning | repaired when safe |
|---|---|---|
| ``missing_in_payback`` | the gateway has a refund Payback has no intent for (a dashboard refund, or a lost webhook of one) | recorded as a Payback refund attributed to the gateway, when its payment is known |
| ``missing_at_gateway`` | Payback sent (or meant to send) a refund the gateway does not have | an intent never answered is sent again with the same idempotency key |
| ``amount_mismatch`` / ``currency_mismatch`` | both have it, with different amounts or currencies | never: listed |
| ``status_mismatch`` | both have it, statuses differ | when Payback's is not final: the gateway's status is applied (it is the truth about money it moved); when Payback's is final: listed |
| ``partial_failure`` | a refund paid by several gateway tenders, some succeeded and some failed | never: listed |

Each run is stored in ``reconciliation_runs`` with its differences; ``payback reconcile`` prints
it, and the worker runs it on a schedule (``PAYBACK_RECONCILE_INTERVAL_HOURS``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, and_, insert, or_, select

from payback.clock import Clock
from payback.db import read, write
from payback.gateways import flow, registry
from payback.gateways.external import record_external_refund
from payback.gateways.port import GatewayError, GatewayRefund
from payback.gateways.tables import INTENT_TERMINAL, gateway_intents, reconciliation_runs
from payback.ids import new_id
from payback.outbox.service import emit
from payback.refunds.tables import refunds

#: An intent younger than this may simply not have been sent yet: not a difference.
GRACE = timedelta(minutes=15)
_I = gateway_intents.c


@dataclass
class Difference:
    kind: str
    gateway_refund_id: str | None = None
    intent_id: str | None = None
    refund_id: str | None = None
    payback: dict = field(default_factory=dict)
    gateway: dict = field(default_factory=dict)
    repaired: bool = False
    action: str = ""


@dataclass
class Report:
    id: str
    gateway: str
    period_from: datetime
    period_to: datetime
    compared: int = 0
    differences: list[Difference] = field(default_factory=list)

    @property
    def repaired(self) -> int:
        return sum(1 for d in self.differences if d.repaired)

    @property
    def open(self) -> list[Difference]:
        return [d for d in self.differences if not d.repaired]

    def as_dict(self) -> dict:
        return {"id": self.id, "gateway": self.gateway,
                "period_from": self.period_from.isoformat(),
                "period_to": self.period_to.isoformat(), "compared": self.compared,
                "differences": len(self.differences), "repaired": self.repaired,
                "open": len(self.open), "items": [asdict(d) for d in self.differences]}


def reconcile(engine: Engine, clock: Clock, gateway_name: str, period_from: datetime,
              period_to: datetime, *, repair: bool = True) -> Report:
    if period_to <= period_from:
        from payback.errors import ValidationFailed
        raise ValidationFailed("--to must be after --from")
    gateway = registry.get(gateway_name)
    report = Report(new_id("reconciliation"), gateway_name, period_from, period_to)
    started = clock.now()
    at_gateway = gateway.list_refunds(period_from, period_to)
    seen_intents: set[str] = set()
    for gref in at_gateway:
        report.compared += 1
        diff = _compare_one(engine, clock, gateway_name, gref, seen_intents, repair)
        if diff is not None:
            report.differences.append(diff)
    for intent in _intents_in_period(engine, gateway_name, period_from, period_to):
        if intent["id"] in seen_intents:
            continue
        report.compared += 1
        diff = _unmatched_intent(engine, clock, gateway, intent, repair)
        if diff is not None:
            report.differences.append(diff)
    report.differences += _partial_failures(engine, gateway_name, period_from, period_to)
    _store(engine, report, started, clock.now())
    return report


def _compare_one(engine: Engine, clock: Clock, gateway_name: str, gref: GatewayRefund,
                 seen: set[str], repair: bool) -> Difference | None:
    with read(engine) as conn:
        intent = flow.find_intent(conn, gateway_name, gref)
    if intent is None:
        return _missing_in_payback(engine, clock, gateway_name, gref, repair)
    seen.add(intent["id"])
    return _compare_matched(engine, clock, intent, gref, repair)


def _compare_matched(engine: Engine, clock: Clock, intent: dict, gref: GatewayRefund,
                     repair: bool) -> Difference | None:
    diff = Difference("", gref.gateway_refund_id, intent["id"], intent["refund_id"],
                      payback=_intent_view(intent), gateway=_gateway_view(gref))
    if gref.currency != intent["currency"]:
        diff.kind = "currency_mismatch"
        return diff
    if gref.amount_minor != intent["amount_minor"]:
        diff.kind = "amount_mismatch"
        return diff
    if gref.status.value == intent["status"]:
        return None
    diff.kind = "status_mismatch"
    if intent["status"] in INTENT_TERMINAL:
        diff.action = "Payback's status is final; a person must look"
        return diff
    if repair:
        with write(engine) as conn:
            outcome = flow.apply_result(conn, intent["id"], gref, clock.now(),
                                        source="reconciliation")
        diff.repaired = outcome == "applied"
        diff.action = f"applied the gateway's status ({outcome})"
    return diff


def _missing_in_payback(engine: Engine, clock: Clock, gateway_name: str, gref: GatewayRefund,
                        repair: bool) -> Difference:
    diff = Difference("missing_in_payback", gref.gateway_refund_id, gateway=_gateway_view(gref))
    if (gref.metadata or {}).get(flow.METADATA_INTENT_ID):
        diff.action = "names a Payback intent this database does not have"
        return diff
    if not repair:
        return diff
    with write(engine) as conn:
        refund = record_external_refund(conn, gateway_name, gref, clock.now())
    diff.repaired = refund is not None
    diff.refund_id = refund["id"] if refund else None
    diff.action = ("recorded as a refund made at the gateway" if refund else
                   "no Payback payment matches it (or it exceeds what remains refundable)")
    return diff


def _unmatched_intent(engine: Engine, clock: Clock, gateway, intent: dict,
                      repair: bool) -> Difference | None:
    """A Payback intent the gateway did not list for the period."""
    if intent["status"] == "failed" and not intent["gateway_refund_id"]:
        return None  # declined synchronously: the gateway never made a refund
    if intent["gateway_refund_id"]:
        try:
            gref = gateway.fetch_refund(intent["gateway_refund_id"])
        except GatewayError:
            gref = None
        if gref is not None:
            return _compare_matched(engine, clock, intent, gref, repair)
        return Difference("missing_at_gateway", intent["gateway_refund_id"], intent["id"],
                          intent["refund_id"], payback=_intent_view(intent),
                          action="the gateway does not know this refund id")
    if clock.now() - intent["created_at"] < GRACE:
        return None
    diff = Difference("missing_at_gateway", None, intent["id"], intent["refund_id"],
                      payback=_intent_view(intent))
    if repair and intent["status"] in ("requested", "submitted"):
        with write(engine) as conn:
            emit(conn, flow.SUBMIT_TOPIC, intent["id"],
                 {"intent_id": intent["id"], "refund_id": intent["refund_id"],
                  "gateway": intent["gateway"]}, clock.now(), intent["seller_id"])
        diff.repaired = True
        diff.action = "sent again with the same idempotency key"
    return diff


def _intents_in_period(engine: Engine, gateway_name: str, period_from: datetime,
                       period_to: datetime) -> list[dict]:
    # The period's intents, and every intent not final whatever its age: a refund stuck after
    # a long outage must not fall out of the window and be forgotten.
    in_period = and_(_I.created_at >= period_from, _I.created_at < period_to)
    q = (select(gateway_intents).where(_I.gateway == gateway_name,
                                       or_(in_period, _I.status.not_in(INTENT_TERMINAL)))
         .order_by(_I.created_at, _I.id))
    with read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def _partial_failures(engine: Engine, gateway_name: str, period_from: datetime,
                      period_to: datetime) -> list[Difference]:
    """Processing refunds whose intents are all final but not all succeeded."""
    q = (select(gateway_intents.c.refund_id, gateway_intents.c.status)
         .join(refunds, refunds.c.id == gateway_intents.c.refund_id)
         .where(_I.gateway == gateway_name, refunds.c.status == "processing"))
    by_refund: dict[str, set[str]] = {}
    with read(engine) as conn:
        for refund_id, status in conn.execute(q):
            by_refund.setdefault(refund_id, set()).add(status)
    return [Difference("partial_failure", refund_id=refund_id,
                       payback={"intent_statuses": sorted(statuses)},
                       action="part paid, part failed: pay the rest another way")
            for refund_id, statuses in by_refund.items()
            if statuses <= INTENT_TERMINAL and "succeeded" in statuses and len(statuses) > 1]


def _intent_view(intent: dict) -> dict:
    return {"status": intent["status"], "amount_minor": intent["amount_minor"],
            "currency": intent["currency"]}


def _gateway_view(gref: GatewayRefund) -> dict:
    return {"status": gref.status.value, "amount_minor": gref.amount_minor,
            "currency": gref.currency, "payment_reference": gref.payment_reference}


def _store(engine: Engine, report: Report, started: datetime, finished: datetime) -> None:
    with write(engine) as conn:
        conn.execute(insert(reconciliation_runs).values(
            id=report.id, gateway=report.gateway, period_from=report.period_from,
            period_to=report.period_to, started_at=started, finished_at=finished,
            compared=report.compared, repaired=report.repaired,
            differences=[asdict(d) for d in report.differences]))


def last_runs(engine: Engine, limit: int = 20) -> list[dict]:
    q = select(reconciliation_runs).order_by(reconciliation_runs.c.started_at.desc()).limit(limit)
    with read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


__all__ = ["Difference", "Report", "last_runs", "reconcile"]
