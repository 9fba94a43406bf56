"""Render a ``Journal`` as Beancount text that the real ``bean-check`` accepts.

Layout, in this order:
1. a comment header and ``option "title"``;
2. an ``open`` directive for every account the file uses, dated at the file's first transaction,
   restricted to the currencies it is used with, with the Payback code and name as metadata;
3. when there are balances before ``date_from``: one "Opening balance" transaction per account,
   dated ``date_from``, against ``Equity:OpeningBalances`` (per currency, so each balances);
4. every journal entry of the period as ``YYYY-MM-DD * "memo"`` with metadata ``entry_id``,
   ``event_type``, ``object_id``, ``posted_at`` and its postings (debits positive, credits
   negative, exact major units);
5. a ``balance`` assertion dated ``date_to`` for every account and currency: the balance Payback
   computes in SQL for everything posted before ``date_to``. ``bean-check`` therefore proves that
   the transactions in the file add up to Payback's own balances.

Invariants: every transaction balances per currency (Payback's entries do by construction; each
opening transaction is paired with equity); no account is used before it is opened; strings
are escaped so a memo can never break the syntax. Pure: no I/O.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from payback.exports.domain import (
    OPENING_BALANCES,
    Balances,
    Journal,
    JournalEntry,
    beancount_account,
    major,
)
from payback.ledger.domain import BY_CODE


def quote(text: str) -> str:
    """A Beancount string literal: backslashes and quotes escaped, line breaks flattened."""
    flat = " ".join(text.splitlines())
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(journal: Journal) -> str:
    opening = {k: v for k, v in sorted(journal.opening.items()) if v}
    used = _used_accounts(journal, opening)
    first = _first_day(journal, opening)
    out = _header(journal)
    if used:
        out += _opens(used, first)
    out += _opening_transactions(journal.date_from, opening)
    for e in journal.entries:
        out += _transaction(e)
    out += _assertions(journal.date_to, journal.closing, used)
    return "\n".join(out) + "\n"


def _header(journal: Journal) -> list[str]:
    scope = journal.seller_id or "all sellers"
    return [(f"; Payback journal export: {scope}, postings from {journal.date_from} "
             f"(inclusive) to {journal.date_to} (exclusive), dates in UTC."),
            "; Sign convention: debits positive, credits negative. Amounts in major units.",
            f'option "title" {quote(f"Payback books ({scope})")}', ""]


def _used_accounts(journal: Journal, opening: Balances) -> dict[str, set[str]]:
    """Beancount account name → currencies, for every account the file posts to."""
    used: dict[str, set[str]] = defaultdict(set)
    for code, cur in opening:
        used[beancount_account(BY_CODE[code])].add(cur)
        used[OPENING_BALANCES].add(cur)
    for e in journal.entries:
        for ln in e.lines:
            used[beancount_account(ln.account)].add(ln.currency)
    return dict(sorted(used.items()))


def _first_day(journal: Journal, opening: Balances) -> date:
    days = [e.day for e in journal.entries]
    if opening:
        days.append(journal.date_from)
    return min(days) if days else journal.date_from


def _opens(used: dict[str, set[str]], first: date) -> list[str]:
    by_name = {beancount_account(a): a for a in BY_CODE.values()}
    out = []
    for name, currencies in used.items():
        out.append(f"{first} open {name} {','.join(sorted(currencies))}")
        acct = by_name.get(name)
        if acct is not None:
            out += [f"  payback_code: {quote(acct.code)}", f"  payback_name: {quote(acct.name)}"]
    return out + [""]


def _opening_transactions(day: date, opening: Balances) -> list[str]:
    """One transaction per account: its balance per currency, against opening equity."""
    per_account: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for (code, cur), amount in opening.items():
        per_account[code].append((cur, amount))
    out = []
    for code, amounts in sorted(per_account.items()):
        acct = BY_CODE[code]
        name = beancount_account(acct)
        out += [f"{day} * {quote(f'Opening balance: {acct.code} {acct.name}')}",
                f"  payback_code: {quote(code)}"]
        for cur, amount in amounts:
            out += [f"  {name}  {major(amount, cur)} {cur}",
                    f"  {OPENING_BALANCES}  {major(-amount, cur)} {cur}"]
        out.append("")
    return out


def _transaction(e: JournalEntry) -> list[str]:
    out = [f"{e.day} * {quote(e.memo or e.event_type)}",
           f"  entry_id: {quote(e.id)}",
           f"  event_type: {quote(e.event_type)}",
           f"  object_id: {quote(e.object_id)}",
           f"  posted_at: {quote(e.posted_at.strftime('%Y-%m-%dT%H:%M:%SZ'))}"]
    out += [f"  {beancount_account(ln.account)}  {major(ln.signed, ln.currency)} {ln.currency}"
            for ln in e.lines]
    return out + [""]


def _assertions(day: date, closing: Balances, used: dict[str, set[str]]) -> list[str]:
    """Balance assertions at ``date_to`` (checked before that day's transactions, which are
    outside the period anyway) for every account and currency the file opened."""
    balances: dict[tuple[str, str], int] = defaultdict(int)
    for (code, cur), amount in closing.items():
        balances[(beancount_account(BY_CODE[code]), cur)] += amount
    out = []
    for name, currencies in used.items():
        for cur in sorted(currencies):
            # Opening equity is zero per currency: the books balance, so the openings cancel.
            out.append(f"{day} balance {name}  {major(balances.get((name, cur), 0), cur)} {cur}")
    return out
