"""Database access: engine factory, the shared ``MetaData`` and transaction helpers.

Invariants:
- no engine exists until ``make_engine(settings)`` is called (nothing at import time);
- on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` so that the writer lock is
  taken before the first read: a refund's "read refundable amount, then insert" cannot interleave
  with another writer. Reads may use ``read()``, which begins a deferred transaction (WAL lets
  them run beside the writer);
- on PostgreSQL writers lock the rows they decide on with ``SELECT … FOR UPDATE`` in a fixed order
  (invoice, then wallet) so concurrent refunds serialise per invoice and never deadlock.
"""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from sqlalchemy import Connection, DateTime, Engine, MetaData, create_engine, event, select
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, on SQLite (which stores no zone)
    as on PostgreSQL (``timestamptz``). Naive datetimes are refused: they are bugs."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None \
            else value.astimezone(timezone.utc)


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, **kwargs) -> Engine:
    kwargs.setdefault("connect_args", {}).update(check_same_thread=False, timeout=60)
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        if ":memory:" not in url and url not in ("sqlite://", "sqlite+pysqlite://"):
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def get_scoped(conn: Connection, table, object_id: str, seller_id: str | None,
               what: str) -> dict:
    """The row of ``table`` with this id, if it exists and (when ``seller_id`` is given) belongs
    to that seller. Another seller's object is reported exactly like a missing one."""
    from payback.errors import NotFound  # errors imports nothing of ours; kept local for clarity

    q = select(table).where(table.c.id == object_id)
    if seller_id:
        q = q.where(table.c.seller_id == seller_id)
    row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"{what} {object_id} not found")
    return dict(row._mapping)


def is_sqlite(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.Lock]" = weakref.WeakKeyDictionary()


def _sqlite_write_lock(engine: Engine) -> threading.Lock:
    lock = _WRITE_LOCKS.get(engine)
    if lock is None:
        lock = _WRITE_LOCKS.setdefault(engine, threading.Lock())
    return lock


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """One write transaction: commits at the end of the block, rolls back on any exception.

    On SQLite, writers of one process queue on an in-process lock before ``BEGIN IMMEDIATE``:
    SQLite admits one writer at a time anyway, and waiting on a lock is fair and immediate where
    SQLite's busy handler sleeps and retries (long tail latencies). Other processes (the CLI
    beside a server) still wait through ``busy_timeout``.
    """
    if engine.dialect.name == "sqlite":
        with _sqlite_write_lock(engine), engine.begin() as conn:
            yield conn
        return
    with engine.begin() as conn:
        yield conn


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction that does not take SQLite's writer lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_begin="DEFERRED")
        with conn.begin():
            yield conn
