"""The journal as an export sees it, and the pure pieces both renderers share.

A ``Journal`` is the seller's journal entries posted in ``[date_from, date_to)`` (UTC posting
time), with the balances of every account just before ``date_from`` (``opening``) and just
before ``date_to`` (``closing``), each as *debits − credits* in minor units per (account code,
currency).

Invariants kept here:
- amounts stay ``int`` minor units until ``major`` turns them into an exact decimal string with
  the currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3); no float anywhere;
- every account of the chart has exactly one Beancount name (``BEANCOUNT_NAMES``), under the root
  that matches its type, so an export never invents an account name on the fly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from payback.ledger.domain import Account
from payback.money import exponent

#: Beancount's five roots, by the type of a Payback account.
ROOTS = {"asset": "Assets", "liability": "Liabilities", "income": "Income",
         "expense": "Expenses", "equity": "Equity"}

#: One Beancount name per account code of ``payback.ledger.domain.CHART`` (documented in
#: docs/exports.md; a test keeps the two in step). Short names where the chart's is a phrase.
BEANCOUNT_NAMES = {
    "1000": "Cash",
    "1100": "GatewayClearing",
    "1200": "AccountsReceivable",
    "2100": "TaxPayable",
    "2200": "RefundsPayable",
    "2300": "StoreCredit",
    "4000": "Revenue",
    "4100": "SalesReturns",
    "4200": "RestockingFees",
    "4900": "Breakage",
    "6100": "ChargebackLosses",
    "6200": "DisputeFees",
    "6300": "StoreCreditIncentives",
}

#: The counter-account of opening balances (not in Payback's chart: it exists only in exports).
OPENING_BALANCES = "Equity:OpeningBalances"

_COMPONENT = re.compile(r"^[A-Z][A-Za-z0-9-]*$")


def beancount_account(account: Account) -> str:
    """``Assets:GatewayClearing`` for 1100 Gateway clearing. An account added to the chart
    without an entry in ``BEANCOUNT_NAMES`` falls back to its name in CamelCase (the test on the
    mapping fails first, so this is a safety net, not a naming policy)."""
    leaf = BEANCOUNT_NAMES.get(account.code) or "".join(
        w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", account.name) if w)
    if not _COMPONENT.match(leaf):
        leaf = f"A{account.code}"
    return f"{ROOTS[account.type]}:{leaf}"


def major(minor: int, currency: str) -> str:
    """Exact major units with the currency's exponent: 12345 EUR → '123.45', -5 JPY → '-5',
    1 KWD → '0.001'."""
    digits = exponent(currency)
    return format(Decimal(minor).scaleb(-digits), f".{digits}f")


@dataclass(frozen=True, slots=True)
class Line:
    """One posting: a debit or a credit (one of them zero) in minor units."""

    account: Account
    currency: str
    debit: int
    credit: int

    @property
    def signed(self) -> int:
        """Debits positive, credits negative (Beancount's sign convention)."""
        return self.debit - self.credit


@dataclass(frozen=True, slots=True)
class JournalEntry:
    id: str
    posted_at: datetime
    event_type: str
    object_id: str
    memo: str | None
    lines: tuple[Line, ...]

    @property
    def day(self) -> date:
        return self.posted_at.date()  # posted_at is UTC (payback.db.UtcDateTime)


#: (account code, currency) → debits − credits, in minor units.
Balances = dict[tuple[str, str], int]


@dataclass(frozen=True, slots=True)
class Journal:
    seller_id: str | None
    date_from: date
    date_to: date
    entries: tuple[JournalEntry, ...]
    opening: Balances
    closing: Balances
