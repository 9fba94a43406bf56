"""Webhook signatures: verifying Stripe's inbound webhooks and signing Payback's outbound ones.

Both use the same scheme (Stripe's): a header

    t=<unix seconds>,v1=<hex>[,v1=<hex>…]

where each ``v1`` is ``HMAC-SHA256(secret, f"{t}.".encode() + raw_body)`` in lower-case hex, over
the **raw bytes** of the body (parse the JSON afterwards; re-serialising breaks the signature).
A message is accepted when

* the header is present and well formed (exactly one integer ``t``, at least one ``v1``; other
  schemes such as ``v0`` are ignored),
* **any** ``v1`` matches the HMAC under **any** configured secret (secret rotation: a sender signs
  with old and new secret, a receiver accepts both for a while), compared in constant time with
  ``hmac.compare_digest``, and
* ``|now − t| ≤ tolerance`` (300 s by default; exactly 300 s is accepted) — checked after the
  signature, so a timestamp reason means "authentic but stale or from the future".

Every refusal raises :class:`~payback.gateways.port.WebhookRejected` with a ``reason`` from
:data:`REASONS`. This module deliberately contains no ``==``/``!=``/``in`` comparison, so that no
digest can ever be compared in variable time (``tests/unit/test_webhook_signatures.py`` checks it).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from payback.gateways.port import WebhookRejected

STRIPE_SIGNATURE_HEADER = "Stripe-Signature"
PAYBACK_SIGNATURE_HEADER = "Payback-Signature"
DEFAULT_TOLERANCE = 300
SCHEME = "v1"

#: reason → what it means. Stable: logged and returned in the problem body's ``reason``.
REASONS: Mapping[str, str] = {
    "missing_header": "the signature header is absent or empty",
    "malformed_header": "the signature header cannot be parsed",
    "no_signature": "the header has no v1 signature",
    "signature_mismatch": "no v1 signature matches any configured secret",
    "timestamp_too_old": "the signed timestamp is older than the tolerance",
    "timestamp_in_future": "the signed timestamp is further ahead than the tolerance",
    "malformed_payload": "the body is signed correctly but is not a readable event",
}

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def compute_signature(secret: str | bytes, timestamp: int, raw_body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}.".encode() + raw_body`` under ``secret``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    signed = f"{int(timestamp)}.".encode("ascii") + _raw(raw_body)
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def sign_payload(secret: str | bytes | Sequence[str | bytes], body: bytes, timestamp: int) -> str:
    """The value of Payback's ``Payback-Signature`` header for ``body`` sent at ``timestamp``.

    Pass several secrets during a merchant's secret rotation: one ``v1`` per secret."""
    parts = [f"t={int(timestamp)}"]
    parts += [f"{SCHEME}={compute_signature(s, timestamp, body)}" for s in _secrets(secret)]
    return ",".join(parts)


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """``t=…,v1=…[,v1=…]`` → (timestamp, v1 signatures). Raises WebhookRejected."""
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise _reject("malformed_header", f"element {item.strip()!r} is not key=value")
        fields.setdefault(key, []).append(value.strip())
    timestamps = fields.get("t") or []
    if not timestamps or len(timestamps) > 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise _reject("malformed_header", "expected exactly one integer timestamp t=")
    signatures = fields.get(SCHEME) or []
    if not signatures:
        raise _reject("no_signature", f"no {SCHEME}= signature in the header")
    for signature in signatures:
        if not _HEX_DIGEST.fullmatch(signature):
            raise _reject("malformed_header", f"{SCHEME} is not a 64-digit hex digest")
    return int(timestamps[0]), [s.lower() for s in signatures]


def verify_signature(
    headers_or_header: Mapping[str, str] | str | None,
    raw_body: bytes,
    secrets: str | bytes | Sequence[str | bytes],
    *,
    now: datetime | int,
    tolerance: int = DEFAULT_TOLERANCE,
    header_name: str,
) -> int:
    """Check one signed webhook; return its signed timestamp. Raises WebhookRejected."""
    keys = _secrets(secrets)
    if not keys:
        raise ValueError("no webhook secret configured")
    body = _raw(raw_body)
    header = _header(headers_or_header, header_name)
    if not header:
        raise _reject("missing_header", f"{header_name} header is missing")
    timestamp, candidates = parse_signature_header(header)
    matched = False
    for key in keys:
        expected = compute_signature(key, timestamp, body).encode("ascii")
        for candidate in candidates:
            # No short-circuit: every pair is compared, each in constant time.
            matched |= hmac.compare_digest(expected, candidate.encode("ascii"))
    if not matched:
        raise _reject("signature_mismatch", "no signature matches the payload")
    age = _unix(now) - timestamp
    if age > tolerance:
        raise _reject("timestamp_too_old", f"signed {age} s ago (tolerance {tolerance} s)")
    if -age > tolerance:
        raise _reject("timestamp_in_future", f"signed {-age} s ahead (tolerance {tolerance} s)")
    return timestamp


def verify_stripe_signature(
    headers_or_header: Mapping[str, str] | str | None,
    raw_body: bytes,
    secrets: str | bytes | Sequence[str | bytes],
    *,
    now: datetime | int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Verify a Stripe webhook (``Stripe-Signature``) against the endpoint secret(s)."""
    verify_signature(
        headers_or_header,
        raw_body,
        secrets,
        now=now,
        tolerance=tolerance,
        header_name=STRIPE_SIGNATURE_HEADER,
    )


def verify_payback_signature(
    headers_or_header: Mapping[str, str] | str | None,
    raw_body: bytes,
    secrets: str | bytes | Sequence[str | bytes],
    *,
    now: datetime | int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Verify a Payback webhook (``Payback-Signature``). ``docs/webhooks.md`` has a standalone
    version of this check that merchants copy; the tests hold both to the same cases."""
    verify_signature(
        headers_or_header,
        raw_body,
        secrets,
        now=now,
        tolerance=tolerance,
        header_name=PAYBACK_SIGNATURE_HEADER,
    )


def _reject(reason: str, detail: str) -> WebhookRejected:
    return WebhookRejected(f"webhook signature rejected: {detail}", reason=reason)


def _secrets(secrets: str | bytes | Sequence[str | bytes]) -> tuple[str | bytes, ...]:
    # A lone string is one secret, never a sequence of one-character secrets.
    if isinstance(secrets, (str, bytes)):
        secrets = (secrets,)
    return tuple(s for s in secrets if s)


def _raw(raw_body: bytes) -> bytes:
    if not isinstance(raw_body, (bytes, bytearray, memoryview)):
        raise TypeError("verify the raw request body (bytes), not a decoded or parsed one")
    return bytes(raw_body)


def _header(headers_or_header: Mapping[str, str] | str | None, name: str) -> str | None:
    if headers_or_header is None or isinstance(headers_or_header, str):
        return headers_or_header
    lowered = {str(k).lower(): v for k, v in headers_or_header.items()}
    return lowered.get(name.lower())


def _unix(now: datetime | int) -> int:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return (now - _EPOCH) // timedelta(seconds=1)
    return int(now)
