"""Unit tests of payback.ledger.domain: journal entries as immutable values and their validations.

Covers: balanced entries are accepted; unbalanced entries are refused; entries that balance only
across currencies (no FX leg exists in Payback's books) are refused; zero postings are dropped by
``entry`` (and an entry left with no postings is refused); each posting must be one-sided and
positive; the chart of accounts and the normal-side balance of each account type.
"""

from __future__ import annotations

import dataclasses

import pytest

from payback.errors import DomainError
from payback.ledger.domain import (
    BY_CODE,
    CHART,
    GATEWAY_CLEARING,
    RECEIVABLE,
    REFUNDS_PAYABLE,
    REVENUE,
    SALES_RETURNS,
    STORE_CREDIT,
    TAX_PAYABLE,
    Entry,
    Posting,
    UnbalancedEntry,
    credit,
    debit,
    entry,
    signed_balance,
    validate,
)


def test_balanced_invoice_entry_is_accepted() -> None:
    e = entry("invoice.issued", "inv_1", [
        debit(RECEIVABLE, "EUR", 12500), credit(REVENUE, "EUR", 10000),
        credit(TAX_PAYABLE, "EUR", 2500)], memo="Invoice INV-000001")
    assert [(p.account.code, p.debit, p.credit) for p in e.postings] == [
        ("1200", 12500, 0), ("4000", 0, 10000), ("2100", 0, 2500)]
    assert (e.event_type, e.object_id, e.memo) == ("invoice.issued", "inv_1",
                                                   "Invoice INV-000001")


def test_unbalanced_entry_is_refused_with_the_difference() -> None:
    with pytest.raises(UnbalancedEntry,
                       match=r"^refund.approved r_1: EUR debits and credits differ by 1$") as info:
        entry("refund.approved", "r_1", [
            debit(SALES_RETURNS, "EUR", 2000), debit(TAX_PAYABLE, "EUR", 501),
            credit(REFUNDS_PAYABLE, "EUR", 2500)])
    assert info.value.code == "unbalanced_entry" and info.value.status == 500
    assert isinstance(info.value, DomainError)


def test_credit_heavy_entry_reports_a_negative_difference() -> None:
    with pytest.raises(UnbalancedEntry, match="EUR debits and credits differ by -5"):
        entry("x", "o", [debit(RECEIVABLE, "EUR", 95), credit(REVENUE, "EUR", 100)])


def test_entry_balanced_only_across_currencies_is_refused() -> None:
    # Σ debits = Σ credits = 1000 in total, but EUR and USD each do not balance.
    with pytest.raises(UnbalancedEntry) as info:
        entry("payment.captured", "p_1", [debit(GATEWAY_CLEARING, "EUR", 1000),
                                          credit(RECEIVABLE, "USD", 1000)])
    assert "EUR debits and credits differ by 1000" in info.value.detail
    assert "USD debits and credits differ by -1000" in info.value.detail


def test_mixed_currency_entry_balanced_per_currency_is_accepted() -> None:
    e = entry("x", "o", [debit(RECEIVABLE, "EUR", 1000), credit(REVENUE, "EUR", 1000),
                         debit(RECEIVABLE, "JPY", 150), credit(REVENUE, "JPY", 150)])
    assert len(e.postings) == 4


def test_zero_postings_are_dropped() -> None:
    # A refund with no tax has no tax posting.
    e = entry("refund.approved", "r_1", [
        debit(SALES_RETURNS, "EUR", 2500), debit(TAX_PAYABLE, "EUR", 0),
        credit(REFUNDS_PAYABLE, "EUR", 2500)])
    assert [p.account for p in e.postings] == [SALES_RETURNS, REFUNDS_PAYABLE]


def test_entry_of_only_zero_postings_is_refused() -> None:
    with pytest.raises(UnbalancedEntry, match="entry has no postings"):
        entry("x", "o", [debit(RECEIVABLE, "EUR", 0), credit(REVENUE, "EUR", 0)])


def test_posting_with_both_sides_is_refused() -> None:
    with pytest.raises(UnbalancedEntry,
                       match="posting to Accounts receivable must be one-sided and positive"):
        validate(Entry("x", "o", (Posting(RECEIVABLE, "EUR", debit=100, credit=100),)))


def test_negative_posting_is_refused_even_when_it_balances() -> None:
    # Dr 100 and a "debit" of −100 sum to zero, but a negative amount is never a valid posting.
    with pytest.raises(UnbalancedEntry, match="posting to Revenue must be one-sided"):
        entry("x", "o", [debit(RECEIVABLE, "EUR", 100), debit(REVENUE, "EUR", -100)])


def test_validate_reports_every_problem() -> None:
    bad = Entry("x", "o", (Posting(RECEIVABLE, "EUR", debit=-5),
                           Posting(REVENUE, "EUR", credit=10)))
    with pytest.raises(UnbalancedEntry) as info:
        validate(bad)
    assert info.value.detail == ("x o: posting to Accounts receivable must be one-sided and "
                                 "positive; EUR debits and credits differ by -15")


def test_entries_are_immutable() -> None:
    e = entry("x", "o", [debit(RECEIVABLE, "EUR", 1), credit(REVENUE, "EUR", 1)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.memo = "changed"  # type: ignore[misc]
    assert isinstance(e.postings, tuple)


def test_chart_codes_are_unique_and_typed() -> None:
    assert len(BY_CODE) == len(CHART) == 13
    assert BY_CODE["2300"] is STORE_CREDIT
    assert {a.type for a in CHART} <= {"asset", "liability", "income", "expense", "equity"}


@pytest.mark.parametrize(("account_type", "debits", "credits", "balance"), [
    ("asset", 1000, 300, 700),
    ("expense", 50, 0, 50),
    ("liability", 1000, 300, -700),
    ("income", 200, 12500, 12300),
    ("equity", 0, 10, 10),
])
def test_signed_balance_is_on_the_normal_side(account_type: str, debits: int, credits: int,
                                              balance: int) -> None:
    assert signed_balance(account_type, debits, credits) == balance
