"""The audit trail's pure core: canonical record content, the hash chain, the verifier, redaction.

A record's hash is ``SHA-256(prev_hash + canonical content)`` in lower-case hex, where the
canonical content is every column except ``seq`` and ``hash`` (so ``prev_hash`` is covered too),
serialised as JSON with sorted keys, no insignificant whitespace and UTF-8 text; ``at`` is written
as ISO 8601 UTC with microseconds (``2026-01-15T10:00:00.000000Z``). The first record chains to
``GENESIS``.

Invariants the verifier checks, in ``seq`` order:
- each record's ``hash`` is the hash of its own content (an edited field is caught at that record);
- each record's ``prev_hash`` is the ``hash`` of the record before it, ``GENESIS`` for the first
  (a deleted, inserted or reordered record is caught at the first record whose link no longer
  holds);
- ``seq`` strictly increases. Gaps in ``seq`` are *not* an error: a PostgreSQL sequence value used
  by a transaction that rolled back is never reused, and the ``prev_hash`` link already proves that
  nothing is missing between two records.

What a hash chain cannot show on its own: that records were cut off at the *end*, or that an
attacker rewrote every record from some point on. ``VerifyResult.last_hash`` is the chain's head:
an operator who writes it down elsewhere (a ticket, a log shipped off the host) can later prove
that the chain still ends in it, or grows from it.

Nothing here does I/O or reads the clock.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from payback.cards import DIGIT_RUN, is_pan

GENESIS = "0" * 64

OUTCOMES = ("allowed", "refused", "error")
ACTOR_KINDS = ("staff", "api_key", "system", "gateway", "customer", "cli")

#: The columns that a record's hash covers (every column but ``seq`` and ``hash``).
CONTENT_FIELDS = ("at", "seller_id", "actor_id", "actor_kind", "actor_role", "action",
                  "object_type", "object_id", "outcome", "summary", "origin", "request_id",
                  "prev_hash")


# ---------------------------------------------------------------------------- canonical form


def iso_utc(at: datetime) -> str:
    """``at`` as ISO 8601 UTC with microseconds, e.g. ``2026-01-15T10:00:00.000000Z``."""
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError("an audit timestamp must be a timezone-aware datetime")
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # rates and percentages stay exact, as strings
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot go into an audit summary")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_json_default)


def normalise_summary(summary: Mapping[str, Any]) -> dict:
    """The summary exactly as it will read back from a JSON column: string keys, plain JSON
    values (datetimes as ISO 8601, decimals as strings). Hashing the normalised form is what
    lets a record read back from the database hash to the same value."""
    if not isinstance(summary, Mapping):
        raise ValueError("an audit summary must be a mapping")
    return json.loads(json.dumps(summary, ensure_ascii=False, allow_nan=False,
                                 default=_json_default))


def content(record: Mapping[str, Any]) -> dict:
    """The canonical content of a record: every column but ``seq`` and ``hash``."""
    out = {name: record.get(name) for name in CONTENT_FIELDS}
    out["at"] = iso_utc(record["at"]) if isinstance(record["at"], datetime) else record["at"]
    return out


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    return _dumps(content(record)).encode("utf-8")


def record_hash(prev_hash: str, content_: Mapping[str, Any]) -> str:
    """SHA-256 hex over ``prev_hash`` followed by the canonical bytes of ``content_`` (a record or
    its ``content()``; ``seq`` and ``hash`` in it are ignored)."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical_bytes(content_)).hexdigest()


def seal(fields: Mapping[str, Any], prev_hash: str) -> dict:
    """A new record: ``fields`` with its summary normalised, chained to ``prev_hash``."""
    rec = {name: fields.get(name) for name in CONTENT_FIELDS if name != "prev_hash"}
    rec["summary"] = normalise_summary(fields.get("summary") or {})
    rec["prev_hash"] = prev_hash
    rec["hash"] = record_hash(prev_hash, rec)
    return rec


# ------------------------------------------------------------------------------ verification


@dataclass(frozen=True)
class VerifyResult:
    """``checked``: records examined (when broken, up to and including the first broken one);
    ``last_hash``: the hash of the last record found intact (``GENESIS`` for an empty trail)."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str | None = None
    last_hash: str = GENESIS


def verify_chain(records: Iterable[Mapping[str, Any]]) -> VerifyResult:
    """Check a chain given in ``seq`` order (any iterable: it is read once, as a stream) and stop
    at the first broken record."""
    expected_prev, prev_seq, checked = GENESIS, None, 0
    for rec in records:
        checked += 1
        reason = _first_fault(rec, expected_prev, prev_seq)
        if reason:
            return VerifyResult(False, checked, rec["seq"], reason, expected_prev)
        expected_prev, prev_seq = rec["hash"], rec["seq"]
    return VerifyResult(True, checked, None, None, expected_prev)


def _first_fault(rec: Mapping[str, Any], expected_prev: str, prev_seq: int | None) -> str | None:
    if prev_seq is not None and rec["seq"] <= prev_seq:
        return f"out of order: seq {rec['seq']} comes after seq {prev_seq}"
    if record_hash(rec["prev_hash"], rec) != rec["hash"]:
        return "content does not match its hash (the record was edited)"
    if rec["prev_hash"] != expected_prev:
        before = f"record #{prev_seq}" if prev_seq is not None else "the start of the trail"
        return (f"prev_hash does not match {before}: a record between them was deleted or "
                f"inserted, records were reordered, or {before} was rewritten")
    return None


# --------------------------------------------------------------------------------- redaction

#: A key containing any of these (case-insensitive) is dropped from a summary, whatever its value.
SECRET_KEY_WORDS = ("password", "passwd", "secret", "token", "authorization", "cookie",
                    "cvv", "cvc")


def _mask_pan(match: re.Match) -> str:
    text = match.group(0)
    if not is_pan(text):
        return text
    digits = re.sub(r"\D", "", text)
    keep = len(digits) - 4  # PCI DSS 3.4.1: at most the last four digits stay readable
    out, seen = [], 0
    for ch in text:
        if ch.isdigit():
            out.append("*" if seen < keep else ch)
            seen += 1
        else:
            out.append(ch)
    return "".join(out)


def mask_card_numbers(text: str) -> str:
    """Replace every digit but the last four of each 13–19 digit Luhn-valid run (spaces and
    dashes allowed between digits) with ``*``."""
    return DIGIT_RUN.sub(_mask_pan, text)


def _is_secret_key(key: str) -> bool:
    low = key.lower()
    return any(word in low for word in SECRET_KEY_WORDS)


def redact(value: Any) -> Any:
    """A copy of a summary without secrets: keys naming a password, secret, token, cookie,
    authorization header or card security code are dropped at any depth, and full card numbers
    in strings (or integers) are masked to their last four digits."""
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if not _is_secret_key(str(k))}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return mask_card_numbers(value)
    if isinstance(value, int) and not isinstance(value, bool) and 13 <= len(str(abs(value))) <= 19:
        masked = mask_card_numbers(str(value))
        return value if masked == str(value) else masked
    return value
