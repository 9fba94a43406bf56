"""Sortable, prefixed identifiers (``rf_01J…``) built on ULIDs.

The prefix tells a human what an id names; the ULID part sorts by creation time, which keeps
cursor pagination and B-tree inserts cheap.
"""

from __future__ import annotations

from ulid import ULID

PREFIXES = {
    "customer": "cus", "invoice": "inv", "invoice_line": "il", "payment": "pay",
    "refund": "re", "refund_line": "rl", "wallet": "wal", "wallet_txn": "wtx",
    "journal_entry": "je", "posting": "po", "outbox": "evt", "credit_note": "cn",
    "staff_user": "usr", "api_key": "key", "store_credit_lot": "lot",
    "gateway_intent": "gwi", "reconciliation": "rec", "webhook_endpoint": "we",
    "webhook_delivery": "whd", "notification": "ntf",
}


def new_id(kind: str) -> str:
    return f"{PREFIXES[kind]}_{str(ULID()).lower()}"
