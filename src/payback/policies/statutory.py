"""The statutory clock: pure date functions for refund periods and deadlines.

Every function takes timezone-aware datetimes and an IANA time-zone name, counts **calendar days
in that zone** and returns deadlines as **aware UTC datetimes at the end of the last day**
(23:59:59.999999 local time). Nothing here reads a clock, a file or a database.

Counting convention (EU Regulation 1182/71 Art 3(1), used by the CRD, and the UK CCRs' "14 days
after the day on which ..."): the day of the starting event is not counted, so goods delivered on
3 March have a 14-day period that ends at the end of 17 March.

Invariants kept here:
- a deadline is never earlier than the end of the day of its starting event;
- month arithmetic clamps to the month end (31 January + 1 month = 28 or 29 February);
- day boundaries follow the zone's wall clock, so DST changes move the UTC instant, not the date;
- working days are Monday to Friday; there is **no public-holiday calendar** (a holiday is
  counted as a working day, which makes a merchant deadline earlier, never later).
"""

from __future__ import annotations

import calendar
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

CONTRACT_TYPES = ("goods", "subscription_goods", "services", "digital_content")
GOODS_TYPES = ("goods", "subscription_goods")
_END_OF_DAY = time(23, 59, 59, 999999)


@lru_cache(maxsize=64)
def zone(tz: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name (cached; raises ``ZoneInfoNotFoundError`` if unknown)."""
    return ZoneInfo(tz)


def _aware(at: datetime, name: str) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return at


def local_date(at: datetime, tz: str) -> date:
    """The calendar date of the instant ``at`` on the wall clock of ``tz``."""
    return _aware(at, "at").astimezone(zone(tz)).date()


def end_of_day(day: date, tz: str) -> datetime:
    """23:59:59.999999 local time on ``day`` in ``tz``, as an aware UTC datetime."""
    return datetime.combine(day, _END_OF_DAY, tzinfo=zone(tz)).astimezone(timezone.utc)


def add_months(day: date, months: int) -> date:
    """``day`` plus ``months`` calendar months, clamped to the last day of the target month."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def is_working_day(day: date) -> bool:
    """Monday to Friday. No holiday calendar (see the module docstring)."""
    return day.weekday() < 5


def add_working_days(day: date, n: int) -> date:
    """The ``n``-th working day after ``day`` (``day`` itself is not counted)."""
    if n < 0:
        raise ValueError("n must be >= 0")
    current = day
    while n:
        current += timedelta(days=1)
        if is_working_day(current):
            n -= 1
    return current


def roll_past_weekend(day: date) -> date:
    """A period whose last day is a Saturday or Sunday ends on the following Monday
    (Regulation 1182/71 Art 3(4); public holidays are not known here)."""
    while not is_working_day(day):
        day += timedelta(days=1)
    return day


def period_end(start: datetime, days: int, tz: str, *, weekend_rollover: bool = False) -> datetime:
    """End of a period of ``days`` calendar days that starts with the event at ``start``."""
    if days < 0:
        raise ValueError("days must be >= 0")
    last = local_date(start, tz) + timedelta(days=days)
    return end_of_day(roll_past_weekend(last) if weekend_rollover else last, tz)


def months_end(start: datetime, months: int, tz: str) -> datetime:
    """End of the day ``months`` calendar months after the local date of ``start``."""
    return end_of_day(add_months(local_date(start, tz), months), tz)


# --- EU CRD Art 9-10 / UK CCRs reg 29-31: the withdrawal (cancellation) period -------------------

def withdrawal_start(contract_type: str, *, concluded_at: datetime,
                     deliveries: tuple[datetime, ...] = ()) -> datetime | None:
    """When the withdrawal period starts (CRD Art 9(2), CCRs reg 29-30).

    Goods: physical possession of the **last** item delivered; subscription goods: the **first**
    item; services and digital content: conclusion of the contract. ``None`` while goods have
    not been delivered (the consumer may still withdraw before the period starts, Art 9(3)).
    """
    if contract_type not in CONTRACT_TYPES:
        raise ValueError(f"unknown contract type {contract_type!r}")
    if contract_type in ("services", "digital_content"):
        return _aware(concluded_at, "concluded_at")
    if not deliveries:
        return None
    for at in deliveries:
        _aware(at, "deliveries")
    return max(deliveries) if contract_type == "goods" else min(deliveries)


def withdrawal_deadline(contract_type: str, *, concluded_at: datetime,
                        deliveries: tuple[datetime, ...] = (), tz: str, days: int = 14,
                        info_given_at: datetime | None = None,
                        missing_info_extension_months: int = 12,
                        weekend_rollover: bool = False) -> datetime | None:
    """Last instant at which the consumer may send a withdrawal notice (Art 11(2): sending in
    time is enough), or ``None`` while the period has not started.

    - information given at or before conclusion: ``days`` after the start;
    - information never given (``info_given_at is None``): the period ends
      ``missing_info_extension_months`` after the end of the initial period (Art 10(1));
    - information given late but within 12 months of the start: ``days`` after the day it was
      received (Art 10(2)), never earlier than the ordinary period;
    - information given later than that: the 12-month extension applies.
    With ``missing_info_extension_months=0`` (no statutory regime) information is irrelevant.
    """
    start = withdrawal_start(contract_type, concluded_at=concluded_at, deliveries=deliveries)
    if start is None:
        return None
    ordinary = period_end(start, days, tz, weekend_rollover=weekend_rollover)
    if missing_info_extension_months == 0 or (
            info_given_at is not None and _aware(info_given_at, "info_given_at") <= concluded_at):
        return ordinary
    initial_last = local_date(ordinary, tz)
    extended_last = add_months(initial_last, missing_info_extension_months)
    if weekend_rollover:
        extended_last = roll_past_weekend(extended_last)
    extended = end_of_day(extended_last, tz)
    if info_given_at is None:
        return extended
    if local_date(info_given_at, tz) <= add_months(local_date(start, tz), 12):
        late = period_end(info_given_at, days, tz, weekend_rollover=weekend_rollover)
        return max(ordinary, late)
    return extended


# --- the trader's refund deadline and the right to withhold ----------------------------------------

def refund_deadline(notice_at: datetime, tz: str, *, days: int = 14,
                    working_days: bool = False) -> datetime:
    """End of the last day on which the trader must have paid: ``days`` calendar days (CRD Art
    13(1), CCRs reg 34, CRA s 20(15)) or working days (MITOR) after the notice."""
    _aware(notice_at, "notice_at")
    if working_days:
        return end_of_day(add_working_days(local_date(notice_at, tz), days), tz)
    return period_end(notice_at, days, tz)


def withhold_until(goods_received_at: datetime | None,
                   dispatch_evidence_at: datetime | None) -> datetime | None:
    """For sales of goods the trader may withhold the refund until it has the goods back **or**
    evidence of dispatch, whichever is **earlier** (CRD Art 13(3)). ``None``: neither yet."""
    known = [_aware(at, "withhold gate") for at in (goods_received_at, dispatch_evidence_at)
             if at is not None]
    return min(known) if known else None


# --- UK Consumer Rights Act 2015 -------------------------------------------------------------------

def cra_short_term_rejection_deadline(delivered_at: datetime, tz: str = "Europe/London", *,
                                      days: int = 30) -> datetime:
    """End of the 30-day short-term right to reject (CRA ss 20, 22), counted from delivery."""
    return period_end(delivered_at, days, tz)


def deduction_for_use_allowed(delivered_at: datetime, at: datetime, tz: str = "Europe/London", *,
                              months: int = 6) -> bool:
    """Whether a deduction for use may be made on a final rejection exercised at ``at``.

    CRA s 24(10): none if the right is exercised within 6 months; the 6 months begin with the
    first day after delivery, so goods delivered on 15 January are protected up to and including
    15 July, and a deduction is first possible on 16 July. (Motor vehicles are excepted by the
    Act; that exception is not modelled.)
    """
    protected_last = add_months(local_date(delivered_at, tz), months)
    return local_date(at, tz) > protected_last


# --- US FTC Mail, Internet, or Telephone Order Merchandise Rule (16 CFR 435.1(b)) -----------------

def mitor_refund_deadline(vested_at: datetime, tz: str, *, seller_credit: bool = False) -> datetime:
    """A "prompt refund" under MITOR: within **7 working days** of the right vesting (cash, check,
    money order, third-party card and other methods), or within **one billing cycle** when the
    seller itself extended the credit (modelled as one calendar month from vesting). Working
    days are Monday-Friday with no federal-holiday calendar, so the deadline errs early."""
    if seller_credit:
        return months_end(vested_at, 1, tz)
    return refund_deadline(vested_at, tz, days=7, working_days=True)


def conformity_deadline(delivered_at: datetime, tz: str, *, months: int = 24) -> datetime:
    """End of the seller's liability for lack of conformity (Dir 2019/771 Art 10(1): 2 years)."""
    return months_end(delivered_at, months, tz)
