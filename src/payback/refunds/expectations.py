"""When the customer can expect their money: the one answer the portal, the e-mails and the
console all show, so they never disagree.

- store credit: available as soon as the refund has succeeded;
- a card refund: the gateway has sent it; card networks and issuers then take 5 to 10 business
  days to show it on the statement (what Stripe, Adyen and issuers tell customers);
- a bank transfer or a manual payout: 1 to 3 business days after it is sent;
- before it is paid: the legal or policy deadline (``due_at``) when there is one.

Business days skip Saturdays and Sundays only (no holiday calendar yet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

#: (earliest, latest) business days from payout to arrival, by where the money goes.
ARRIVAL_BUSINESS_DAYS = {"card": (5, 10), "bank_transfer": (1, 3), "manual_payout": (1, 3),
                         "cash": (0, 0), "other": (1, 3), "store_credit": (0, 0)}
OPEN_STATES = frozenset({"requested", "pending_approval", "approved", "processing"})


@dataclass(frozen=True)
class Expectation:
    """``state``: 'arrived' (store credit), 'on_its_way' (paid; arrives between the dates),
    'due_by' (not paid yet; the deadline), 'none' (rejected, canceled, failed, or no date)."""

    state: str
    earliest: date | None = None
    latest: date | None = None


def add_business_days(day: date, n: int) -> date:
    while n > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            n -= 1
    return day


def expected_arrival(refund: dict, payout_method: str | None = None) -> Expectation:
    """``refund``: a refunds row (status, method, settled_at, due_at). ``payout_method``: the
    payment method of its main tender ('card', 'bank_transfer', …), when paid to it."""
    status = refund["status"]
    if status == "succeeded":
        where = "store_credit" if refund["method"] == "store_credit" else (payout_method or "card")
        low, high = ARRIVAL_BUSINESS_DAYS.get(where, (1, 3))
        paid = _day(refund.get("settled_at"))
        if paid is None:
            return Expectation("none")
        if where == "store_credit":
            return Expectation("arrived", paid, paid)
        return Expectation("on_its_way", add_business_days(paid, low),
                           add_business_days(paid, high))
    if status in OPEN_STATES and refund.get("due_at") is not None:
        due = _day(refund["due_at"])
        return Expectation("due_by", due, due)
    return Expectation("none")


def _day(value: datetime | None) -> date | None:
    return value.date() if value is not None else None
