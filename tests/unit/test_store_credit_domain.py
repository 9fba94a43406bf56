"""Pure store-credit rules (no database): the order spending draws from lots (earliest expiry
first, no expiry last, then oldest), expired lots never spent, refusal to overspend, what is
due for expiry (``expires_at <= now``), which lots can be revoked, expiry dates from a policy
(none when the policy gives none), staff grant validation, restoring a refunded store-credit
payment into the lots it came from, and the statement's running balance.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from payback.errors import InsufficientStoreCredit, InvalidAmount, ValidationFailed
from payback.store_credit import domain
from payback.store_credit.domain import Draw, Lot

NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def lot(id_: str, remaining: int, *, kind: str = "refund", expires: datetime | None = None,
        created: datetime = NOW - 10 * DAY, amount: int | None = None) -> Lot:
    return Lot(id=id_, kind=kind, amount_minor=amount or remaining, remaining_minor=remaining,
               created_at=created, expires_at=expires)


# --------------------------------------------------------------------------- spend order


def test_spend_order_is_earliest_expiry_first_then_no_expiry_by_age():
    lots = [lot("a_never_old", 100, created=NOW - 30 * DAY),
            lot("b_late", 100, expires=NOW + 90 * DAY),
            lot("c_never_new", 100, created=NOW - DAY),
            lot("d_soon", 100, expires=NOW + 5 * DAY, created=NOW - DAY),
            lot("e_soon_older", 100, expires=NOW + 5 * DAY, created=NOW - 2 * DAY)]
    assert [x.id for x in domain.spend_order(lots)] == [
        "e_soon_older", "d_soon", "b_late", "a_never_old", "c_never_new"]


def test_plan_spend_splits_across_lots_in_order_and_leaves_the_rest():
    lots = [lot("never", 5000), lot("soon", 1200, expires=NOW + DAY, kind="promotional"),
            lot("later", 800, expires=NOW + 30 * DAY, kind="bonus")]
    plan = domain.plan_spend(lots, 2500, NOW)
    assert [(x.id, take) for x, take in plan] == [("soon", 1200), ("later", 800), ("never", 500)]
    assert sum(take for _, take in plan) == 2500


def test_plan_spend_never_touches_an_expired_lot_even_before_the_job_ran():
    lots = [lot("expired", 3000, expires=NOW), lot("ok", 1000)]
    assert [(x.id, t) for x, t in domain.plan_spend(lots, 1000, NOW)] == [("ok", 1000)]
    with pytest.raises(InsufficientStoreCredit) as err:
        domain.plan_spend(lots, 1001, NOW)
    assert err.value.extra["balance_minor"] == 1000


def test_plan_spend_of_the_exact_balance_empties_every_lot_and_one_more_is_refused():
    lots = [lot("a", 700, expires=NOW + DAY), lot("b", 300)]
    assert [(x.id, t) for x, t in domain.plan_spend(lots, 1000, NOW)] == [("a", 700), ("b", 300)]
    with pytest.raises(InsufficientStoreCredit):
        domain.plan_spend(lots, 1001, NOW)
    with pytest.raises(InvalidAmount):
        domain.plan_spend(lots, 0, NOW)


def test_due_for_expiry_is_expires_at_at_or_before_now_with_something_left():
    lots = [lot("exactly_now", 100, expires=NOW), lot("past", 50, expires=NOW - DAY),
            lot("future", 100, expires=NOW + timedelta(seconds=1)), lot("never", 100),
            lot("spent", 0, expires=NOW - DAY, amount=100)]
    assert [x.id for x in domain.due_for_expiry(lots, NOW)] == ["past", "exactly_now"]


# ------------------------------------------------------------------------------ granting


def test_expiry_comes_from_the_policy_and_is_none_when_the_policy_says_none():
    assert domain.expiry_after(NOW, 365) == datetime(2027, 1, 15, 10, 0, tzinfo=timezone.utc)
    assert domain.expiry_after(NOW, None) is None


@pytest.mark.parametrize("kind, amount, expires, memo, message", [
    ("refund", 100, None, "x", "kind must be one of goodwill, promotional"),
    ("bonus", 100, None, "x", "kind must be one of goodwill, promotional"),
    ("goodwill", 100, NOW, "x", "expires_at must be in the future"),
    ("goodwill", 100, datetime(2027, 1, 1), "x", "expires_at must carry a time zone"),
    ("promotional", 100, None, "  ", "memo is required"),
])
def test_staff_grant_refusals(kind, amount, expires, memo, message):
    with pytest.raises(ValidationFailed) as err:
        domain.check_staff_grant(kind, amount, expires, memo, NOW)
    assert message in err.value.detail


def test_staff_grant_amount_must_be_positive_and_a_good_one_passes():
    with pytest.raises(InvalidAmount):
        domain.check_staff_grant("goodwill", 0, None, "sorry", NOW)
    assert domain.check_staff_grant("promotional", 2500, NOW + DAY, "spring", NOW) is None


# ---------------------------------------------------------------------------- revocation


@pytest.mark.parametrize("kind", ["refund", "bonus"])
def test_refund_and_bonus_credit_cannot_be_revoked(kind):
    with pytest.raises(domain.LotNotRevocable) as err:
        domain.check_revocable(lot("x", 500, kind=kind))
    assert (err.value.status, err.value.code) == (409, "store_credit_not_revocable")


def test_revocation_takes_only_what_remains_and_refuses_an_empty_lot():
    assert domain.check_revocable(lot("g", 1250, kind="goodwill", amount=2000)) == 1250
    with pytest.raises(domain.NothingToRevoke) as err:
        domain.check_revocable(lot("p", 0, kind="promotional", amount=2000))
    assert (err.value.status, err.value.code) == (409, "store_credit_nothing_left")


# ---------------------------------------------------------------------------- restoring


def test_restore_puts_back_last_drawn_first_never_more_than_drawn():
    draws = [Draw("soon", 1200), Draw("later", 800), Draw("never", 500)]
    assert domain.plan_restore(draws, 1000) == ([("never", 500), ("later", 500)], 0)
    # A second partial refund finds what the first put back already.
    draws = [Draw("soon", 1200), Draw("later", 800, 500), Draw("never", 500, 500)]
    assert domain.plan_restore(draws, 1500) == ([("later", 300), ("soon", 1200)], 0)


def test_restore_reports_what_no_lot_can_take_back():
    assert domain.plan_restore([Draw("a", 300)], 1000) == ([("a", 300)], 700)
    assert domain.plan_restore([], 450) == ([], 450)


# ----------------------------------------------------------------------------- statement


def test_running_balance_starts_at_the_opening_balance():
    txns = [{"id": "t1", "created_at": NOW, "kind": "refund", "lot_id": "l1", "amount_minor": 5000},
            {"id": "t2", "created_at": NOW, "kind": "spend", "lot_id": "l1", "amount_minor": -1999},
            {"id": "t3", "created_at": NOW, "kind": "expiry", "lot_id": "l2", "amount_minor": -1}]
    lines = domain.running_balance(1000, txns)
    assert [(x.id, x.balance_minor) for x in lines] == [("t1", 6000), ("t2", 4001), ("t3", 4000)]
    assert domain.running_balance(250, []) == []


def test_statement_period_must_not_be_reversed():
    with pytest.raises(ValidationFailed):
        domain.check_period(NOW, NOW)
    assert domain.check_period(NOW, NOW + DAY) is None
    assert domain.check_period(None, NOW) is None
