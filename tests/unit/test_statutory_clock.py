"""The statutory clock (reliability test 16): table-driven cases with hand-written expected dates.

Covers EU/UK withdrawal periods by contract type (goods from the last delivery, subscriptions from
the first, services and digital content from conclusion), missing (+12 months) and late withdrawal
information, the member-state 30-day option, the weekend rule, the withhold gate, the trader's
refund deadline, UK CRA 30-day rejection and the 6-month deduction boundary, US MITOR 7 working
days vs one billing cycle, Australia's missing change-of-mind right, time zones, month ends and DST.
Every expected instant is the end of the local day (23:59:59.999999) expressed in UTC.
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from payback.policies import CustomerHistory, PurchaseFacts, RefundAsk, evaluate, load_preset
from payback.policies import statutory as s

BER, LON, NYC, SYD, TYO = ("Europe/Berlin", "Europe/London", "America/New_York",
                           "Australia/Sydney", "Asia/Tokyo")


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0, sec: int = 0, us: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, sec, us, tzinfo=timezone.utc)


def eod(y: int, m: int, d: int, h: int) -> datetime:
    """End of a local day, written as the UTC hour it falls on (e.g. 22 for CET, 21 for CEST)."""
    return utc(y, m, d, h, 59, 59, 999999)


CONCLUDED = utc(2026, 2, 27, 10)


def wd(ctype: str, deliveries=(), tz: str = BER, **kw):
    return s.withdrawal_deadline(ctype, concluded_at=kw.pop("concluded_at", CONCLUDED),
                                 deliveries=tuple(deliveries), tz=tz,
                                 info_given_at=kw.pop("info", CONCLUDED), **kw)


CASES = [
    # --- EU goods: physical possession of the last item (CRD Art 9(2)(b)); 3 Mar 2026 is a Tuesday
    ("eu goods one parcel", lambda: wd("goods", [utc(2026, 3, 3, 9)]), eod(2026, 3, 17, 22)),
    ("eu goods last of two parcels", lambda: wd("goods", [utc(2026, 3, 1, 9), utc(2026, 3, 5, 9)]),
     eod(2026, 3, 19, 22)),
    ("eu goods parcels out of order", lambda: wd("goods", [utc(2026, 3, 5, 9), utc(2026, 3, 1, 9)]),
     eod(2026, 3, 19, 22)),
    ("eu goods three lots", lambda: wd("goods", [utc(2026, 3, 2), utc(2026, 3, 4), utc(2026, 3, 3)]),
     eod(2026, 3, 18, 22)),
    ("eu goods not yet delivered", lambda: wd("goods", []), None),
    # --- subscriptions: the first item
    ("eu subscription first item", lambda: wd("subscription_goods",
                                             [utc(2026, 3, 5, 9), utc(2026, 4, 5, 9)]),
     eod(2026, 3, 19, 22)),
    ("eu subscription not yet delivered", lambda: wd("subscription_goods", []), None),
    # --- services and digital content: conclusion of the contract (deliveries are irrelevant)
    ("eu services from conclusion", lambda: wd("services", [utc(2026, 3, 20)],
                                             concluded_at=utc(2026, 3, 2, 8),
                                             info=utc(2026, 3, 2, 8)), eod(2026, 3, 16, 22)),
    ("eu digital content from conclusion", lambda: wd("digital_content",
                                                    concluded_at=utc(2026, 3, 10, 12),
                                                    info=utc(2026, 3, 10, 12)),
     eod(2026, 3, 24, 22)),
    # --- weekend rule (Reg 1182/71 Art 3(4)): Saturday/Sunday end moves to Monday
    ("eu last day saturday rolls to monday", lambda: wd("goods", [utc(2026, 3, 7, 9)],
                                                       weekend_rollover=True),
     eod(2026, 3, 23, 22)),
    ("eu last day sunday rolls to monday", lambda: wd("goods", [utc(2026, 3, 1, 9)],
                                                     weekend_rollover=True),
     eod(2026, 3, 16, 22)),
    ("uk no weekend rule: saturday stays", lambda: wd("goods", [utc(2026, 3, 7, 9)], tz=LON),
     eod(2026, 3, 21, 23)),
    # --- DST in Europe/Berlin (CEST from 29 March 2026, CET again from 25 October 2026)
    ("dst spring: ends on the switch day", lambda: wd("goods", [utc(2026, 3, 15, 9)]),
     eod(2026, 3, 29, 21)),
    ("dst spring: weekend roll into summer time", lambda: wd("goods", [utc(2026, 3, 15, 9)],
                                                            weekend_rollover=True),
     eod(2026, 3, 30, 21)),
    ("dst spring: day before the switch", lambda: wd("goods", [utc(2026, 3, 14, 9)]),
     eod(2026, 3, 28, 22)),
    ("dst autumn: ends on the switch day", lambda: wd("goods", [utc(2026, 10, 11, 9)]),
     eod(2026, 10, 25, 22)),
    ("dst autumn: ends after the switch", lambda: wd("goods", [utc(2026, 10, 12, 9)]),
     eod(2026, 10, 26, 22)),
    ("dst autumn: ends before the switch", lambda: wd("goods", [utc(2026, 10, 10, 9)]),
     eod(2026, 10, 24, 21)),
    # --- time zones: the same delivery instant counted in different zones
    ("tz berlin: 23:30 utc is the next day", lambda: wd("goods", [utc(2026, 3, 3, 23, 30)]),
     eod(2026, 3, 18, 22)),
    ("tz london: 23:30 utc is the same day", lambda: wd("goods", [utc(2026, 3, 3, 23, 30)],
                                                       tz=LON), eod(2026, 3, 17, 23)),
    ("tz new york: counted across the US DST switch",
     lambda: wd("goods", [utc(2026, 3, 3, 23, 30)], tz=NYC), eod(2026, 3, 18, 3)),
    ("tz tokyo customer, policy zone tokyo", lambda: wd("goods", [utc(2026, 3, 3, 16)], tz=TYO),
     eod(2026, 3, 18, 14)),
    ("tz tokyo customer, policy zone berlin", lambda: wd("goods", [utc(2026, 3, 3, 16)]),
     eod(2026, 3, 17, 22)),
    # --- withdrawal information missing (Art 10(1)): 12 months after the initial period
    ("missing info: +12 months", lambda: wd("goods", [utc(2026, 3, 3, 9)], info=None),
     eod(2027, 3, 17, 22)),
    ("missing info: month end 31 jan", lambda: wd("services", concluded_at=utc(2026, 1, 17, 9),
                                                  info=None, tz="UTC"), eod(2027, 1, 31, 23)),
    ("missing info: leap day clamps to 28 feb", lambda: wd("services",
                                                          concluded_at=utc(2028, 2, 15, 9),
                                                          info=None, tz="UTC"),
     eod(2029, 2, 28, 23)),
    ("missing info with weekend rule", lambda: wd("services", concluded_at=utc(2026, 1, 17, 9),
                                                  info=None, tz="UTC", weekend_rollover=True),
     eod(2027, 2, 2, 23)),
    # --- information given late (Art 10(2)): 14 days after receipt, within 12 months
    ("late info: 14 days after receipt", lambda: wd("goods", [utc(2026, 3, 3, 9)],
                                                    info=utc(2026, 6, 10, 9)),
     eod(2026, 6, 24, 21)),
    ("late info soon after delivery: never before the ordinary end",
     lambda: wd("goods", [utc(2026, 3, 3, 9)], info=utc(2026, 3, 5, 9)), eod(2026, 3, 19, 22)),
    ("late info before delivery: ordinary period", lambda: wd("goods", [utc(2026, 3, 3, 9)],
                                                             info=utc(2026, 3, 1, 9)),
     eod(2026, 3, 17, 22)),
    ("late info at 12 months less a day", lambda: wd("goods", [utc(2026, 3, 3, 9)],
                                                     info=utc(2027, 3, 2, 9)),
     eod(2027, 3, 16, 22)),
    ("info after 12 months: extension applies", lambda: wd("goods", [utc(2026, 3, 3, 9)],
                                                          info=utc(2027, 3, 10, 9)),
     eod(2027, 3, 17, 22)),
    ("info given at conclusion: ordinary", lambda: wd("goods", [utc(2026, 3, 3, 9)],
                                                     info=CONCLUDED), eod(2026, 3, 17, 22)),
    ("no statutory regime: info irrelevant", lambda: wd("goods", [utc(2026, 3, 3, 9)], info=None,
                                                       missing_info_extension_months=0),
     eod(2026, 3, 17, 22)),
    # --- member-state 30-day option (Art 9(1a))
    ("member state 30 days", lambda: wd("goods", [utc(2026, 3, 3, 9)], days=30),
     eod(2026, 4, 2, 21)),
    # --- the trader's refund deadline (Art 13(1)): 14 days from the notice
    ("refund 14 days from notice", lambda: s.refund_deadline(utc(2026, 3, 17, 20), BER),
     eod(2026, 3, 31, 21)),
    ("refund notice after local midnight", lambda: s.refund_deadline(utc(2026, 3, 17, 23, 30),
                                                                     BER), eod(2026, 4, 1, 21)),
    ("refund notice in uk winter", lambda: s.refund_deadline(utc(2026, 1, 20, 9), LON),
     eod(2026, 2, 3, 23)),
    # --- withhold gate (Art 13(3)): goods back or proof of dispatch, whichever is earlier
    ("withhold: dispatch proof earlier", lambda: s.withhold_until(utc(2026, 3, 25, 10),
                                                                  utc(2026, 3, 20, 8)),
     utc(2026, 3, 20, 8)),
    ("withhold: goods back earlier", lambda: s.withhold_until(utc(2026, 3, 19, 10),
                                                              utc(2026, 3, 20, 8)),
     utc(2026, 3, 19, 10)),
    ("withhold: only goods back", lambda: s.withhold_until(utc(2026, 3, 25, 10), None),
     utc(2026, 3, 25, 10)),
    ("withhold: only dispatch proof", lambda: s.withhold_until(None, utc(2026, 3, 20, 8)),
     utc(2026, 3, 20, 8)),
    ("withhold: nothing yet", lambda: s.withhold_until(None, None), None),
    # --- UK CRA 30-day short-term right to reject (ss 20, 22)
    ("cra 30 days in winter", lambda: s.cra_short_term_rejection_deadline(utc(2026, 1, 10, 12)),
     eod(2026, 2, 9, 23)),
    ("cra 30 days across BST start", lambda: s.cra_short_term_rejection_deadline(
        utc(2026, 3, 1, 12)), eod(2026, 3, 31, 22)),
    ("cra 30 days over february", lambda: s.cra_short_term_rejection_deadline(
        utc(2026, 1, 31, 12)), eod(2026, 3, 2, 23)),
    # --- UK CRA 6-month deduction boundary (s 24(10)); delivered 15 January 2026
    ("deduction: one day before the boundary", lambda: s.deduction_for_use_allowed(
        utc(2026, 1, 15, 10), utc(2026, 7, 14, 12)), False),
    ("deduction: on the last protected day", lambda: s.deduction_for_use_allowed(
        utc(2026, 1, 15, 10), utc(2026, 7, 15, 21)), False),
    ("deduction: one day after", lambda: s.deduction_for_use_allowed(
        utc(2026, 1, 15, 10), utc(2026, 7, 16, 9)), True),
    ("deduction: london midnight decides", lambda: s.deduction_for_use_allowed(
        utc(2026, 1, 15, 10), utc(2026, 7, 15, 23, 30)), True),
    ("deduction: month end 31 aug protected to 28 feb", lambda: s.deduction_for_use_allowed(
        utc(2026, 8, 31, 10), utc(2027, 2, 28, 12)), False),
    ("deduction: month end 31 aug allowed 1 mar", lambda: s.deduction_for_use_allowed(
        utc(2026, 8, 31, 10), utc(2027, 3, 1, 12)), True),
    # --- US MITOR: 7 working days (Mon-Fri, no holiday calendar) vs one billing cycle
    ("mitor friday over two weekends", lambda: s.mitor_refund_deadline(utc(2026, 3, 6, 19), NYC),
     eod(2026, 3, 18, 3)),
    ("mitor wednesday over one weekend", lambda: s.mitor_refund_deadline(utc(2026, 3, 4, 15),
                                                                         NYC),
     eod(2026, 3, 14, 3)),
    ("mitor vesting on a saturday", lambda: s.mitor_refund_deadline(utc(2026, 3, 7, 15), NYC),
     eod(2026, 3, 18, 3)),
    ("mitor late evening is still the local day", lambda: s.mitor_refund_deadline(
        utc(2026, 2, 27, 2), NYC), eod(2026, 3, 10, 3)),  # Thu 26 Feb 21:00 EST -> Mon 9 Mar
    ("mitor seller credit: one billing cycle at month end",
     lambda: s.mitor_refund_deadline(utc(2026, 1, 31, 15), NYC, seller_credit=True),
     eod(2026, 3, 1, 4)),
    ("mitor seller credit across DST", lambda: s.mitor_refund_deadline(
        utc(2026, 3, 15, 15), NYC, seller_credit=True), eod(2026, 4, 16, 3)),
    # --- EU 2-year conformity (Dir 2019/771 Art 10)
    ("conformity 24 months from a leap day", lambda: s.conformity_deadline(
        utc(2028, 2, 29, 10), BER), eod(2030, 2, 28, 22)),
    # --- calendar helpers: month ends, working days, end of day across DST
    ("add_months 31 jan + 1", lambda: s.add_months(date(2026, 1, 31), 1), date(2026, 2, 28)),
    ("add_months 31 jan + 1 leap year", lambda: s.add_months(date(2028, 1, 31), 1),
     date(2028, 2, 29)),
    ("add_months 31 mar - 1", lambda: s.add_months(date(2026, 3, 31), -1), date(2026, 2, 28)),
    ("add_months over the year end", lambda: s.add_months(date(2026, 11, 30), 3),
     date(2027, 2, 28)),
    ("add_months 31 jan + 12", lambda: s.add_months(date(2026, 1, 31), 12), date(2027, 1, 31)),
    ("working day after a friday", lambda: s.add_working_days(date(2026, 3, 6), 1),
     date(2026, 3, 9)),
    ("zero working days", lambda: s.add_working_days(date(2026, 3, 7), 0), date(2026, 3, 7)),
    ("end of day berlin before spring switch", lambda: s.end_of_day(date(2026, 3, 28), BER),
     eod(2026, 3, 28, 22)),
    ("end of day sydney in daylight time", lambda: s.end_of_day(date(2026, 4, 4), SYD),
     eod(2026, 4, 4, 12)),
    ("end of day sydney after DST ends", lambda: s.end_of_day(date(2026, 4, 5), SYD),
     eod(2026, 4, 5, 13)),
]


@pytest.mark.parametrize("compute, expected", [pytest.param(c, e, id=i) for i, c, e in CASES])
def test_clock(compute, expected) -> None:
    assert compute() == expected


def test_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


def test_deadlines_are_aware_utc() -> None:
    result = wd("goods", [utc(2026, 3, 3, 9)])
    assert result.tzinfo is timezone.utc and result.microsecond == 999999


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        s.refund_deadline(datetime(2026, 3, 3, 9), BER)


def test_unknown_contract_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown contract type"):
        s.withdrawal_start("lease", concluded_at=CONCLUDED)


# --- presets through the evaluation: the dates the Decision carries -----------------------------

def _ask(at: datetime, reason: str = "requested_by_customer", currency: str = "EUR") -> RefundAsk:
    return RefundAsk(requested_at=at, reason=reason, method="original_payment",
                     consent_to_other_method=False, currency=currency, amount_minor=10000,
                     tax_minor=1597, invoice_total_minor=10000, is_full=True)


def _goods(delivered: datetime, tz_info: datetime = CONCLUDED) -> PurchaseFacts:
    return PurchaseFacts("goods", CONCLUDED, (delivered,), withdrawal_info_given_at=tz_info)


_AU_FAULT_FACTS = _goods(utc(2026, 3, 3, 9))

PRESET_CASES = [
    # (id, preset, facts, ask time, outcome, window_ends_at, refund_due_at); "fault" in the id
    # makes the ask a product_defective claim
    ("EU-CRD last day, 23:00 Brussels", "EU-CRD", _goods(utc(2026, 3, 3, 9)),
     utc(2026, 3, 17, 22, 0), "allow", eod(2026, 3, 17, 22), eod(2026, 3, 31, 21)),
    ("EU-CRD one minute late", "EU-CRD", _goods(utc(2026, 3, 3, 9)), utc(2026, 3, 17, 23, 0),
     "deny", eod(2026, 3, 17, 22), None),
    ("EU-CRD missing info, a year later", "EU-CRD", _goods(utc(2026, 3, 3, 9), None),
     utc(2027, 3, 1, 9), "allow", eod(2027, 3, 17, 22), eod(2027, 3, 15, 22)),
    ("UK-CCR cancellation in BST", "UK-CCR", _goods(utc(2026, 4, 1, 9)), utc(2026, 4, 15, 20),
     "allow", eod(2026, 4, 15, 22), None),
    ("AU-ACL no change-of-mind right", "AU-ACL", _goods(utc(2026, 3, 3, 9)),
     utc(2026, 3, 4, 1), "deny", None, None),
    ("AU-ACL fault three years on", "AU-ACL", _AU_FAULT_FACTS, utc(2029, 3, 3, 1),
     "allow", None, eod(2029, 3, 17, 12)),
    ("US-FED 30 days from delivery, MITOR due", "US-FED", _goods(utc(2026, 3, 3, 15)),
     utc(2026, 3, 6, 19), "allow", eod(2026, 4, 3, 3), eod(2026, 3, 18, 3)),
]


@pytest.mark.parametrize("preset, facts, at, outcome, window_end, due",
                         [pytest.param(*row[1:], id=row[0]) for row in PRESET_CASES])
def test_preset_dates(preset, facts, at, outcome, window_end, due) -> None:
    reason = "product_defective" if facts is _AU_FAULT_FACTS else "requested_by_customer"
    currency = {"AU-ACL": "AUD", "US-FED": "USD", "UK-CCR": "GBP"}.get(preset, "EUR")
    decision = evaluate(load_preset(preset), facts, _ask(at, reason, currency), CustomerHistory(),
                        at)
    assert (decision.outcome, decision.window_ends_at, decision.refund_due_at) == \
        (outcome, window_end, due)
