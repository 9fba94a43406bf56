"""Ledger use cases: post an entry inside the caller's transaction; read the trial balance,
account balances and entries. Posting never commits: it joins the business transaction so a
business event and its journal entry are written together or not at all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from payback.access.tables import DEFAULT_SELLER_ID
from payback.ids import new_id
from payback.ledger import domain
from payback.ledger.tables import accounts, journal_entries, postings

_insert_entry = insert(journal_entries)
_insert_posting = insert(postings)


def ensure_chart(conn: Connection) -> None:
    """Insert any account of the chart that is missing (idempotent)."""
    have = set(conn.execute(select(accounts.c.code)).scalars())
    missing = [{"code": a.code, "name": a.name, "type": a.type}
               for a in domain.CHART if a.code not in have]
    if missing:
        conn.execute(insert(accounts), missing)


def post(conn: Connection, entry: domain.Entry, at: datetime,
         seller_id: str = DEFAULT_SELLER_ID) -> str:
    return post_many(conn, [entry], at, seller_id)[0]


def post_many(conn: Connection, entries: list[domain.Entry], at: datetime,
              seller_id: str = DEFAULT_SELLER_ID) -> list[str]:
    """Post several entries with two statements (entries, then all their postings)."""
    if not entries:
        return []
    ids = [new_id("journal_entry") for _ in entries]
    conn.execute(_insert_entry, [
        {"id": entry_id, "event_type": e.event_type, "object_id": e.object_id, "memo": e.memo,
         "seller_id": seller_id, "posted_at": at} for entry_id, e in zip(ids, entries)])
    conn.execute(_insert_posting, [
        {"entry_id": entry_id, "account_code": p.account.code, "currency": p.currency,
         "debit_minor": p.debit, "credit_minor": p.credit}
        for entry_id, e in zip(ids, entries) for p in e.postings])
    return ids


def trial_balance(conn: Connection, currency: str | None = None,
                  seller_id: str | None = None) -> dict:
    """Debits, credits and balance of every account per currency, with totals that must agree."""
    q = (select(postings.c.account_code, postings.c.currency,
                func.sum(postings.c.debit_minor), func.sum(postings.c.credit_minor))
         .group_by(postings.c.account_code, postings.c.currency)
         .order_by(postings.c.currency, postings.c.account_code))
    if currency:
        q = q.where(postings.c.currency == currency)
    if seller_id:
        q = q.where(postings.c.entry_id.in_(
            select(journal_entries.c.id).where(journal_entries.c.seller_id == seller_id)))
    rows, totals = [], {}
    for code, cur, debits, credits in conn.execute(q):
        acct = domain.BY_CODE[code]
        rows.append({"account_code": code, "account_name": acct.name, "account_type": acct.type,
                     "currency": cur, "debit_minor": int(debits), "credit_minor": int(credits),
                     "balance_minor": domain.signed_balance(acct.type, int(debits), int(credits))})
        t = totals.setdefault(cur, {"currency": cur, "debit_minor": 0, "credit_minor": 0})
        t["debit_minor"] += int(debits)
        t["credit_minor"] += int(credits)
    for t in totals.values():
        t["balanced"] = t["debit_minor"] == t["credit_minor"]
    return {"accounts": rows, "totals": list(totals.values())}


def account_balance(conn: Connection, account: domain.Account, currency: str,
                    seller_id: str | None = None) -> int:
    q = select(func.coalesce(func.sum(postings.c.debit_minor), 0),
               func.coalesce(func.sum(postings.c.credit_minor), 0)).where(
        postings.c.account_code == account.code, postings.c.currency == currency)
    if seller_id:
        q = q.where(postings.c.entry_id.in_(
            select(journal_entries.c.id).where(journal_entries.c.seller_id == seller_id)))
    debits, credits = conn.execute(q).one()
    return domain.signed_balance(account.type, int(debits), int(credits))


def list_entries(conn: Connection, *, after: str | None, limit: int,
                 object_id: str | None = None, seller_id: str | None = None) -> list[dict]:
    q = select(journal_entries).order_by(journal_entries.c.id).limit(limit)
    if seller_id:
        q = q.where(journal_entries.c.seller_id == seller_id)
    if after:
        q = q.where(journal_entries.c.id > after)
    if object_id:
        q = q.where(journal_entries.c.object_id == object_id)
    entries = [dict(r._mapping) for r in conn.execute(q)]
    if not entries:
        return []
    ids = [e["id"] for e in entries]
    lines: dict[str, list] = {i: [] for i in ids}
    for p in conn.execute(select(postings).where(postings.c.entry_id.in_(ids))
                          .order_by(postings.c.id)):
        lines[p.entry_id].append({
            "account_code": p.account_code, "account_name": domain.BY_CODE[p.account_code].name,
            "currency": p.currency, "debit_minor": p.debit_minor, "credit_minor": p.credit_minor})
    for e in entries:
        e["postings"] = lines[e["id"]]
    return entries
