"""Outbound webhooks, the pure part: which event types exist and which an endpoint receives,
what a valid endpoint URL is, the body Payback sends, the retry schedule, and how an endpoint's
signing secrets are kept.

Invariants:
- an endpoint subscribes to exact topics of ``EVENT_TYPES``, to a family (``refund.*``) or to
  everything (``*``); anything else is refused when it is registered, so a typo never turns into
  an endpoint that silently receives nothing;
- an endpoint URL is absolute ``http``/``https`` with a host and no user name or password (a
  password in a URL ends up in logs; receivers authenticate deliveries by their signature);
- a delivery is retried after 1 min, 5 min, 30 min, 2 h, 5 h, 10 h and then every 12 h, for as
  long as the next attempt would fall within ``RETRY_WINDOW`` (3 days) of the delivery's
  creation; after that it has failed;
- the body of a delivery is the same bytes at every attempt (only the signature's timestamp
  changes), so a receiver that deduplicates on the event ``id`` sees one event.

No I/O and no clock: times come in as arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from payback.errors import ValidationFailed
from payback.refunds.lifecycle import STATES as REFUND_STATES

SECRET_PREFIX = "whsec_"
#: Every business event a merchant may subscribe to, by family. ``refund.created`` is the
#: refund's first state (``requested``); every later state is ``refund.<state>``.
EVENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "refund": ("created", *(s for s in REFUND_STATES if s != "requested")),
    "store_credit": ("granted", "revoked", "expired"),
    "invoice": ("created", "voided"),
    "payment": ("captured",),
    "credit_note": ("issued", "voided"),
}
EVENT_TYPES: tuple[str, ...] = tuple(f"{family}.{name}" for family, names in
                                     EVENT_FAMILIES.items() for name in names)
ALL_EVENTS = "*"
MAX_EVENT_TYPES = 50
MAX_URL_LENGTH = 2000

#: Delay before attempt n + 1 after a failed attempt n (n = 1…6); later attempts: every 12 h.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
    timedelta(hours=5), timedelta(hours=10))
LATER_RETRY_DELAY = timedelta(hours=12)
RETRY_WINDOW = timedelta(days=3)
#: How long the previous secret still signs deliveries after a rotation, by default and at most.
DEFAULT_ROTATION_OVERLAP = timedelta(hours=24)
MAX_ROTATION_OVERLAP = timedelta(days=7)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------------------- event types


def validate_event_types(event_types: list[str]) -> list[str]:
    """The cleaned list (trimmed, duplicates dropped, order kept) or ValidationFailed naming
    every unknown entry."""
    cleaned = list(dict.fromkeys(t.strip() for t in event_types))
    if not cleaned:
        raise ValidationFailed("event_types: name at least one event type, a family such as "
                               "'refund.*', or '*' for every event")
    if len(cleaned) > MAX_EVENT_TYPES:
        raise ValidationFailed(f"event_types: at most {MAX_EVENT_TYPES} entries")
    unknown = [t for t in cleaned if not _known_pattern(t)]
    if unknown:
        families = ", ".join(f"{f}.*" for f in EVENT_FAMILIES)
        raise ValidationFailed(
            f"event_types: unknown {', '.join(repr(t) for t in unknown)}; use an exact type "
            f"({', '.join(EVENT_TYPES)}), a family ({families}) or '*'", unknown=unknown)
    return cleaned


def _known_pattern(pattern: str) -> bool:
    if pattern == ALL_EVENTS or pattern in EVENT_TYPES:
        return True
    return pattern.endswith(".*") and pattern[:-2] in EVENT_FAMILIES


def subscribed(event_types: list[str], topic: str) -> bool:
    """Does an endpoint with these patterns receive ``topic``? ``*`` receives every business
    event, a family receives the topics that start with it (also ones added later)."""
    for pattern in event_types:
        if pattern in (ALL_EVENTS, topic):
            return True
        if pattern.endswith(".*") and topic.startswith(pattern[:-1]):
            return True
    return False


# ------------------------------------------------------------------------------------ URL


def validate_url(url: str) -> str:
    """The URL, trimmed, if Payback may POST to it; ValidationFailed saying why not."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValidationFailed(f"url: give an http(s) URL of at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ValidationFailed("url: spaces and control characters are not allowed")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValidationFailed(f"url: not a valid URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise ValidationFailed("url: only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationFailed("url: a user name or password in the URL is not allowed; "
                               "deliveries are authenticated by their signature")
    if not parts.hostname:
        raise ValidationFailed("url: the URL has no host")
    if parts.fragment:
        raise ValidationFailed("url: a #fragment is never sent to a server; remove it")
    return url


# ------------------------------------------------------------------------- body, schedule


def event_body(event_id: str, topic: str, created_at: datetime, data: dict) -> bytes:
    """The JSON body of a delivery: ``{"id", "type", "created", "data"}``, compact UTF-8.
    Deterministic, so every attempt of a delivery sends the same bytes."""
    body = {"id": event_id, "type": topic, "created": iso(created_at), "data": data}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def iso(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, to the second (what receivers parse most easily)."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def unix(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(seconds=1)


def retry_delay(attempt: int) -> timedelta:
    """How long to wait after failed attempt number ``attempt`` (1-based)."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    return RETRY_DELAYS[attempt - 1] if attempt <= len(RETRY_DELAYS) else LATER_RETRY_DELAY


def next_attempt_at(created_at: datetime, attempt: int, attempted_at: datetime
                    ) -> datetime | None:
    """When to try again after failed attempt ``attempt`` made at ``attempted_at``, or None when
    that would be past the retry window (the delivery has failed)."""
    at = attempted_at + retry_delay(attempt)
    return at if at <= created_at + RETRY_WINDOW else None


@dataclass(frozen=True)
class Outcome:
    """What one attempt means for its delivery."""

    status: str  # "delivered", "pending" (retry at next_attempt_at) or "failed"
    next_attempt_at: datetime | None = None


def after_attempt(created_at: datetime, attempt: int, attempted_at: datetime,
                  status_code: int | None) -> Outcome:
    if status_code is not None and 200 <= status_code < 300:
        return Outcome("delivered")
    retry_at = next_attempt_at(created_at, attempt, attempted_at)
    return Outcome("pending", retry_at) if retry_at else Outcome("failed")


# -------------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class Secrets:
    """An endpoint's signing secrets: the current one, and after a rotation the previous one
    until ``previous_until`` (deliveries are signed with both meanwhile, so a receiver can
    deploy the new secret without dropping deliveries).

    Stored in the endpoint's ``secret``, ``previous_secret`` and ``previous_secret_until``
    columns."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def active(self, now: datetime) -> tuple[str, ...]:
        """The secrets that sign (and verify) at ``now``: the current one first."""
        if self.previous and self.previous_until and now < self.previous_until:
            return (self.current, self.previous)
        return (self.current,)

    def rotated(self, new_secret: str, now: datetime, overlap: timedelta) -> Secrets:
        if overlap < timedelta(0) or overlap > MAX_ROTATION_OVERLAP:
            raise ValidationFailed(f"the overlap must be between 0 and "
                                   f"{MAX_ROTATION_OVERLAP.days * 24} hours")
        if not overlap:
            return Secrets(new_secret)
        return Secrets(new_secret, self.current, now + overlap)

    def columns(self) -> dict:
        """The endpoint columns that hold these secrets."""
        keep = bool(self.previous and self.previous_until)
        return {"secret": self.current, "previous_secret": self.previous if keep else None,
                "previous_secret_until": self.previous_until if keep else None}

    @classmethod
    def of(cls, row) -> Secrets:
        """The secrets of an endpoint row (a mapping with the three columns)."""
        return cls(row["secret"], row["previous_secret"], row["previous_secret_until"])

    def hint(self) -> str:
        """What lists show instead of the secret: its prefix and last four characters."""
        return mask(self.current)

    def previous_expires_at(self, now: datetime) -> datetime | None:
        return self.previous_until if len(self.active(now)) > 1 else None


def mask(secret: str) -> str:
    return f"{SECRET_PREFIX}…{secret[-4:]}"
