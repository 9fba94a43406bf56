"""The chart of accounts and journal entries as immutable values, with their validations.

A journal entry is valid when every posting is one-sided and positive, and debits equal credits
per currency (never across currencies: there is no FX leg in Payback's books). Validations are a
list of pure functions, in the manner of beancount's ``ops/validation.py``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable

from payback.errors import DomainError


class UnbalancedEntry(DomainError):
    code, status, title = "unbalanced_entry", 500, "Journal entry does not balance"


@dataclass(frozen=True, slots=True)
class Account:
    code: str
    name: str
    type: str  # asset | liability | income | expense | equity


CASH = Account("1000", "Cash", "asset")
GATEWAY_CLEARING = Account("1100", "Gateway clearing", "asset")
RECEIVABLE = Account("1200", "Accounts receivable", "asset")
TAX_PAYABLE = Account("2100", "Tax payable", "liability")
REFUNDS_PAYABLE = Account("2200", "Refunds payable", "liability")
STORE_CREDIT = Account("2300", "Store credit liability", "liability")
REVENUE = Account("4000", "Revenue", "income")
SALES_RETURNS = Account("4100", "Sales returns and allowances", "income")
RESTOCKING_FEES = Account("4200", "Restocking fee income", "income")
BREAKAGE = Account("4900", "Breakage income", "income")
CHARGEBACK_LOSSES = Account("6100", "Chargeback losses", "expense")
DISPUTE_FEES = Account("6200", "Dispute fees", "expense")
STORE_CREDIT_INCENTIVES = Account("6300", "Store credit incentives", "expense")

CHART: tuple[Account, ...] = (
    CASH, GATEWAY_CLEARING, RECEIVABLE, TAX_PAYABLE, REFUNDS_PAYABLE, STORE_CREDIT, REVENUE,
    SALES_RETURNS, RESTOCKING_FEES, BREAKAGE, CHARGEBACK_LOSSES, DISPUTE_FEES,
    STORE_CREDIT_INCENTIVES,
)
BY_CODE = {a.code: a for a in CHART}

#: Normal balance side: assets and expenses grow with debits, the rest with credits.
DEBIT_NORMAL = {"asset", "expense"}


@dataclass(frozen=True, slots=True)
class Posting:
    account: Account
    currency: str
    debit: int = 0
    credit: int = 0


@dataclass(frozen=True, slots=True)
class Entry:
    event_type: str
    object_id: str
    postings: tuple[Posting, ...]
    memo: str | None = None


def debit(account: Account, currency: str, amount: int) -> Posting:
    return Posting(account, currency, debit=amount)


def credit(account: Account, currency: str, amount: int) -> Posting:
    return Posting(account, currency, credit=amount)


def entry(event_type: str, object_id: str, postings: Iterable[Posting],
          memo: str | None = None) -> Entry:
    """Build an entry, dropping zero postings (a refund with no tax has no tax posting)."""
    kept = tuple(p for p in postings if p.debit or p.credit)
    built = Entry(event_type, object_id, kept, memo)
    validate(built)
    return built


def _one_sided(e: Entry) -> list[str]:
    return [f"posting to {p.account.name} must be one-sided and positive" for p in e.postings
            if p.debit < 0 or p.credit < 0 or (p.debit and p.credit)]


def _balanced_per_currency(e: Entry) -> list[str]:
    sums: dict[str, int] = defaultdict(int)
    for p in e.postings:
        sums[p.currency] += p.debit - p.credit
    return [f"{cur} debits and credits differ by {diff}" for cur, diff in sums.items() if diff]


def _not_empty(e: Entry) -> list[str]:
    return [] if e.postings else ["entry has no postings"]


VALIDATIONS: tuple[Callable[[Entry], list[str]], ...] = (
    _not_empty, _one_sided, _balanced_per_currency)


def validate(e: Entry) -> None:
    problems = [msg for check in VALIDATIONS for msg in check(e)]
    if problems:
        raise UnbalancedEntry(f"{e.event_type} {e.object_id}: " + "; ".join(problems))


def signed_balance(account_type: str, debits: int, credits: int) -> int:
    """Balance on the account's normal side (positive = normal)."""
    return debits - credits if account_type in DEBIT_NORMAL else credits - debits
