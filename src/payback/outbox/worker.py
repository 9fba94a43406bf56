"""The outbox worker: runs a handler for every event written to ``outbox_events``.

Life of an event (see docs/worker.md):

- ``pending`` with ``available_at`` ≤ now → ``claim`` marks it ``processing`` and leases it to one
  worker (``locked_by``, ``locked_until`` = now + lease). On PostgreSQL the claim reads with
  ``SELECT … FOR UPDATE SKIP LOCKED``, so several workers claim disjoint batches in parallel; on
  SQLite there is one writer at a time anyway (``BEGIN IMMEDIATE`` plus the in-process write
  lock), so run one worker.
- ``process`` runs the handler in a transaction of its own that first re-reads (and, on
  PostgreSQL, locks) the event and checks the lease is still this worker's, then marks it ``done``
  (``processed_at``) in the SAME transaction: the handler's database writes and "done" commit
  together or not at all, and a worker whose lease was taken over commits nothing.
- a handler that raises → ``attempts`` + 1, ``pending`` again at ``available_at`` = now +
  backoff (exponential with full jitter: uniform in [0, min(cap, base·2^(attempts-1))], base 2 s,
  cap 1 h), ``last_error`` kept (truncated, card numbers and URL passwords masked); once
  ``attempts`` reaches the bound (``PAYBACK_OUTBOX_MAX_ATTEMPTS``, default 12) → ``dead``, which
  only ``retry_dead`` (``payback outbox retry``) revives.
- a lease that expired (the worker died or hung) counts as a failed attempt: the next ``claim``
  puts the event back to ``pending`` (or ``dead`` at the bound) and may claim it at once.
- an event whose topic has no handler is marked ``done`` with ``last_error`` = "no handler": the
  outbox is the durable record of what happened, and handlers added later (gateway calls,
  webhook deliveries) need not replay history.

Handlers are registered by exact topic (``refund.created``) or by prefix (``refund.`` or
``refund.*``; ``*`` matches every topic); an exact topic wins over a prefix, a longer prefix over
a shorter one. A handler is ``fn(conn, event: dict)``, run inside the event's transaction; it must
be idempotent with respect to anything outside the database (a gateway call uses the refund id as
its idempotency key), since an event can run again after a crash between the call and the commit.

A handler that talks to the outside world (a gateway, a webhook endpoint, an SMTP server) must not
hold a database transaction open while it waits — on SQLite that would block every writer. Such a
handler is registered with ``transactional=False``: it is ``fn(engine, event: dict, clock)``, opens
its own short transactions, and the worker marks the event done in a transaction of its own after
it returns (checking the lease is still this worker's). It must be idempotent as a whole.
"""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, func, select, update

from payback.cards import find_pans
from payback.clock import Clock
from payback.db import is_sqlite, write
from payback.errors import Conflict, NotFound, ValidationFailed
from payback.outbox.tables import STATUSES, outbox_events

log = logging.getLogger("payback.outbox")

Handler = Callable[..., None]

BACKOFF_BASE_SECONDS = 2
BACKOFF_CAP_SECONDS = 3600
DEFAULT_LEASE = timedelta(minutes=5)
DEFAULT_BATCH = 20
#: ``last_error`` keeps at most this many characters.
ERROR_MAX_CHARS = 500
NO_HANDLER = "no handler registered for this topic"

_T = outbox_events.c


class Registry:
    """Handlers by topic or topic prefix (see the module docstring for matching)."""

    def __init__(self) -> None:
        self._exact: dict[str, Handler] = {}
        self._prefixes: dict[str, Handler] = {}
        self._outside: set[Handler] = set()

    def register(self, topic_or_prefix: str, handler: Handler, *,
                 transactional: bool = True) -> Handler:
        """``transactional=False``: ``handler(engine, event, clock)`` runs outside any
        transaction (see the module docstring)."""
        key = topic_or_prefix.strip()
        if not key:
            raise ValueError("a topic or prefix is required")
        if not transactional:
            self._outside.add(handler)
        if key == "*" or key.endswith((".", ".*")):
            self._prefixes[key.removesuffix("*")] = handler
        else:
            self._exact[key] = handler
        return handler

    def unregister(self, topic_or_prefix: str) -> None:
        key = topic_or_prefix.strip()
        self._exact.pop(key, None)
        self._prefixes.pop(key.removesuffix("*"), None)

    def is_transactional(self, handler: Handler) -> bool:
        return handler not in self._outside

    def handler_for(self, topic: str) -> Handler | None:
        if topic in self._exact:
            return self._exact[topic]
        matches = [p for p in self._prefixes if topic.startswith(p)]
        return self._prefixes[max(matches, key=len)] if matches else None


#: The process-wide registry used when none is passed.
DEFAULT_REGISTRY = Registry()


def register(topic_or_prefix: str, handler: Handler, *, transactional: bool = True) -> Handler:
    """Register ``handler`` on the default registry (usable as ``register("x", fn)``)."""
    return DEFAULT_REGISTRY.register(topic_or_prefix, handler, transactional=transactional)


@dataclass
class Counts:
    """What a run did: events done (with a handler), done without one, retried, dead-lettered,
    and lost (the lease had been taken over; nothing committed)."""

    done: int = 0
    unhandled: int = 0
    retried: int = 0
    dead: int = 0
    lost: int = 0
    claimed: int = field(default=0)

    def add(self, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:80]


def backoff(attempts: int, rng: random.Random | None = None, *,
            base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_CAP_SECONDS) -> timedelta:
    """Delay before the next run after the ``attempts``-th failure: full jitter, uniform in
    [0, min(cap, base·2^(attempts-1))] (so the first retry waits up to 2 s, the 13th up to 1 h)."""
    ceiling = min(cap, base * 2 ** min(max(attempts - 1, 0), 64))
    return timedelta(seconds=ceiling * (rng or random).random())


_URL_PASSWORD = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")
_SECRETS = re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key|authorization)"
                      r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|(?:(?:bearer|basic)\s+)?\S+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_PAYBACK_KEY = re.compile(r"\bpb_[A-Za-z0-9]+_[A-Za-z0-9_-]+")


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for ``last_error``: card numbers, URL passwords, bearer tokens,
    ``secret=…``-style values and Payback API keys masked; at most ``ERROR_MAX_CHARS``."""
    text = f"{type(exc).__name__}: {exc}"
    for pan in find_pans(text):
        text = text.replace(pan, "[card number]")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _SECRETS.sub(r"\1\2***", text)
    text = _BEARER.sub(r"\1 ***", text)
    text = _PAYBACK_KEY.sub("pb_***", text)
    return text if len(text) <= ERROR_MAX_CHARS else text[:ERROR_MAX_CHARS - 1] + "…"


def _max_attempts(value: int | None) -> int:
    if value is not None:
        return value
    from payback.settings import Settings

    return Settings().outbox_max_attempts


def _for_update(conn: Connection, query):
    return query if is_sqlite(conn) else query.with_for_update(skip_locked=True)


def _lock(conn: Connection, query):
    return query if is_sqlite(conn) else query.with_for_update()


# --------------------------------------------------------------------------------- claim


def claim(engine: Engine, *, worker_id: str, limit: int = DEFAULT_BATCH, now: datetime,
          lease: timedelta = DEFAULT_LEASE, max_attempts: int | None = None) -> list[dict]:
    """Claim up to ``limit`` due events (oldest ``available_at`` first) for ``worker_id``:
    ``processing``, leased until ``now + lease``. Expired leases are first counted as failed
    attempts and put back (``pending``, due now) or dead-lettered at the bound."""
    bound = _max_attempts(max_attempts)
    with write(engine) as conn:
        expired = conn.execute(_for_update(conn, select(_T.id, _T.attempts, _T.locked_by).where(
            _T.status == "processing", _T.locked_until <= now))).all()
        for event_id, attempts, locked_by in expired:
            conn.execute(update(outbox_events).where(_T.id == event_id).values(
                status="dead" if attempts + 1 >= bound else "pending", attempts=attempts + 1,
                available_at=now, locked_by=None, locked_until=None,
                last_error=f"lease expired: worker {locked_by} did not finish"[:ERROR_MAX_CHARS]))
        ids = conn.execute(_for_update(conn, select(_T.id).where(
            _T.status == "pending", _T.available_at <= now,
        ).order_by(_T.available_at, _T.id).limit(limit))).scalars().all()
        if not ids:
            return []
        conn.execute(update(outbox_events).where(_T.id.in_(ids)).values(
            status="processing", locked_by=worker_id, locked_until=now + lease))
        rows = conn.execute(select(outbox_events).where(_T.id.in_(ids))
                            .order_by(_T.available_at, _T.id)).all()
    return [dict(r._mapping) for r in rows]


# ------------------------------------------------------------------------------- process


def process(engine: Engine, event: dict, *, clock: Clock, worker_id: str | None = None,
            registry: Registry | None = None, rng: random.Random | None = None,
            max_attempts: int | None = None) -> str:
    """Run the handler of one claimed event; return ``done``, ``unhandled``, ``retried``,
    ``dead`` or ``lost`` (the lease is no longer ours: nothing was committed)."""
    reg = registry or DEFAULT_REGISTRY
    owner = worker_id or event["locked_by"]
    handler = reg.handler_for(event["topic"])
    mine = and_(_T.id == event["id"], _T.status == "processing", _T.locked_by == owner)
    if handler is not None and not reg.is_transactional(handler):
        return _process_outside(engine, event, handler, mine, clock, rng,
                                _max_attempts(max_attempts))
    try:
        with write(engine) as conn:
            # Wait (no SKIP LOCKED) for a claim that is only re-checking the row to finish.
            current = conn.execute(_lock(conn, select(_T.id).where(mine))).first()
            if current is None:
                return "lost"
            if handler is not None:
                handler(conn, event)
            conn.execute(update(outbox_events).where(mine).values(
                status="done", processed_at=clock.now(), locked_by=None, locked_until=None,
                last_error=None if handler else NO_HANDLER))
        return "done" if handler else "unhandled"
    except Exception as exc:  # noqa: BLE001 - any handler failure is retried
        return _failed(engine, event, mine, exc, clock.now(), rng, _max_attempts(max_attempts))


def _process_outside(engine: Engine, event: dict, handler: Handler, mine, clock: Clock,
                     rng: random.Random | None, bound: int) -> str:
    """Run a non-transactional handler, then mark the event done if the lease is still ours."""
    with write(engine) as conn:
        if conn.execute(select(_T.id).where(mine)).first() is None:
            return "lost"
    try:
        handler(engine, event, clock)
    except Exception as exc:  # noqa: BLE001 - any handler failure is retried
        return _failed(engine, event, mine, exc, clock.now(), rng, bound)
    with write(engine) as conn:
        done = conn.execute(update(outbox_events).where(mine).values(
            status="done", processed_at=clock.now(), locked_by=None, locked_until=None,
            last_error=None)).rowcount
    return "done" if done else "lost"


def _failed(engine: Engine, event: dict, mine, exc: Exception, now: datetime,
            rng: random.Random | None, bound: int) -> str:
    error = describe_error(exc)
    with write(engine) as conn:
        attempts = conn.execute(select(_T.attempts).where(mine)).scalar()
        if attempts is None:
            return "lost"
        attempts += 1
        dead = attempts >= bound
        conn.execute(update(outbox_events).where(mine).values(
            status="dead" if dead else "pending", attempts=attempts, last_error=error,
            available_at=now if dead else now + backoff(attempts, rng),
            locked_by=None, locked_until=None))
    log.warning("outbox event %s (%s) failed, attempt %d%s: %s", event["id"], event["topic"],
                attempts, " - dead-lettered" if dead else "", error)
    return "dead" if dead else "retried"


# ---------------------------------------------------------------------------- run, drain


def run_once(engine: Engine, clock: Clock, *, worker_id: str, limit: int = DEFAULT_BATCH,
             registry: Registry | None = None, rng: random.Random | None = None,
             max_attempts: int | None = None, lease: timedelta = DEFAULT_LEASE) -> Counts:
    """Claim one batch and process it."""
    counts = Counts()
    bound = _max_attempts(max_attempts)
    events = claim(engine, worker_id=worker_id, limit=limit, now=clock.now(), lease=lease,
                   max_attempts=bound)
    counts.claimed = len(events)
    for event in events:
        counts.add(process(engine, event, clock=clock, worker_id=worker_id, registry=registry,
                           rng=rng, max_attempts=bound))
    return counts


def _merge(total: Counts, batch: Counts) -> None:
    for key, value in batch.as_dict().items():
        setattr(total, key, getattr(total, key) + value)


def drain(engine: Engine, clock: Clock, *, worker_id: str | None = None,
          limit: int = DEFAULT_BATCH, registry: Registry | None = None,
          rng: random.Random | None = None, max_attempts: int | None = None,
          lease: timedelta = DEFAULT_LEASE) -> Counts:
    """Process batches until no event is due at ``clock.now()`` (events retried with a delay
    wait for a later run). For tests and ``payback worker --once``."""
    total = Counts()
    worker_id = worker_id or default_worker_id()
    bound = _max_attempts(max_attempts)
    while True:
        batch = run_once(engine, clock, worker_id=worker_id, limit=limit, registry=registry,
                         rng=rng, max_attempts=bound, lease=lease)
        if not batch.claimed:
            return total
        _merge(total, batch)


def run_worker(engine: Engine, clock: Clock, *, stop_event: threading.Event,
               poll_interval: float = 1, worker_id: str | None = None,
               limit: int = DEFAULT_BATCH, registry: Registry | None = None,
               rng: random.Random | None = None, max_attempts: int | None = None,
               lease: timedelta = DEFAULT_LEASE) -> Counts:
    """Process events until ``stop_event`` is set: claim a batch, process it, and sleep
    ``poll_interval`` seconds when none was due. A database error is logged and retried after
    the poll interval (the worker outlives a database restart). The batch in hand is finished
    before stopping."""
    total = Counts()
    worker_id = worker_id or default_worker_id()
    bound = _max_attempts(max_attempts)
    while not stop_event.is_set():
        try:
            batch = run_once(engine, clock, worker_id=worker_id, limit=limit, registry=registry,
                             rng=rng, max_attempts=bound, lease=lease)
        except Exception:
            log.exception("outbox worker %s: claim failed", worker_id)
            stop_event.wait(poll_interval)
            continue
        _merge(total, batch)
        if not batch.claimed:
            stop_event.wait(poll_interval)
    return total


# ----------------------------------------------------------------- dead letters, listing


def list_events(conn: Connection, *, status: str | None = None, topic: str | None = None,
                limit: int = 100) -> list[dict]:
    """Events, oldest first, filtered by status and topic (exact or prefix ending in '.')."""
    if status is not None and status not in STATUSES:
        raise ValidationFailed(f"unknown status {status!r}: one of {', '.join(STATUSES)}")
    q = select(outbox_events).order_by(_T.created_at, _T.id).limit(limit)
    if status:
        q = q.where(_T.status == status)
    if topic:
        q = q.where(_T.topic.startswith(topic) if topic.endswith(".") else _T.topic == topic)
    return [dict(r._mapping) for r in conn.execute(q)]


def count_by_status(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(_T.status, func.count()).group_by(_T.status)).all()
    return {s: 0 for s in STATUSES} | {s: n for s, n in rows}


def retry_dead(conn: Connection, now: datetime, *, event_id: str | None = None,
               all_dead: bool = False) -> list[str]:
    """Put a dead event (or every dead event) back to ``pending``, due now, attempts reset to 0
    (``last_error`` is kept until the next run). Returns the ids revived. A named event that is
    missing raises NotFound; one that is not dead raises Conflict."""
    if (event_id is None) == (not all_dead):
        raise ValidationFailed("name one event id, or ask for all dead events")
    where = _T.status == "dead"
    if event_id is not None:
        status = conn.execute(select(_T.status).where(_T.id == event_id)).scalar()
        if status is None:
            raise NotFound(f"no outbox event {event_id}")
        if status != "dead":
            raise Conflict(f"outbox event {event_id} is {status}, not dead")
        where = and_(where, _T.id == event_id)
    ids = conn.execute(_for_update(conn, select(_T.id).where(where).order_by(_T.id))
                       ).scalars().all()
    if ids:
        conn.execute(update(outbox_events).where(_T.id.in_(ids)).values(
            status="pending", attempts=0, available_at=now, locked_by=None, locked_until=None))
    return list(ids)


__all__ = ["DEFAULT_REGISTRY", "Counts", "Handler", "Registry", "backoff", "claim", "count_by_status",
           "describe_error", "drain", "list_events", "process", "register",
           "retry_dead", "run_once", "run_worker"]
