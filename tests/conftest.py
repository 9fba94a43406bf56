"""Shared fixtures for every test tier.

Databases: ``db_url`` (and ``engine`` built on it) is parametrized over ``sqlite`` and
``postgresql``, so every test that asks for it runs on both. Each pytest-xdist worker gets its own
databases (a SQLite file in its own temp dir; PostgreSQL database ``payback_test_<worker>``),
migrated once per session with the real Alembic migrations, and emptied before each test (all
rows except the seeded ``accounts`` and ``alembic_version``), so tests never see each other.

PostgreSQL at ``PAYBACK_TEST_POSTGRES_URL`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/
test``; the per-worker database name replaces ``test``). If it is unreachable the postgresql
variants are skipped with the reason, except under ``CI=true``, where they fail: CI must never
go green by silently not testing PostgreSQL. The same rule holds for ``shared_data``.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from payback.clock import FixedClock
from payback.db import make_engine
from payback.db.migrate import upgrade
from payback.db.schema import metadata
from tests.ci import skip_or_fail

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: Rows seeded by the migrations themselves: kept between tests.
KEEP_TABLES = frozenset({"accounts", "alembic_version"})
REPO_ROOT = Path(__file__).resolve().parents[1]




def _worker_id() -> str:
    # The process id keeps concurrent test runs on one server (several checkouts, or a run with
    # and one without xdist) from dropping each other's database.
    return f'{os.environ.get("PYTEST_XDIST_WORKER", "main")}_{os.getpid()}'


def _data_tables() -> list:
    """Tables to empty between tests, children before parents (foreign keys)."""
    return [t for t in reversed(metadata.sorted_tables) if t.name not in KEEP_TABLES]


# ---------------------------------------------------------------------------------- SQLite


@pytest.fixture(scope="session")
def _sqlite_database(tmp_path_factory) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite file for this worker, and an engine used only to empty it."""
    # tmp_path_factory is already per worker under xdist; a file, because WAL needs one.
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'payback.db'}"
    upgrade(url)
    cleaner = make_engine(url)
    yield url, cleaner
    cleaner.dispose()


def _empty_sqlite(cleaner: Engine) -> None:
    with cleaner.begin() as conn:
        for table in _data_tables():
            conn.execute(table.delete())
        _restore_default_seller(conn)


def _restore_default_seller(conn) -> None:
    """The migration creates the default seller; emptying the tables must leave it there."""
    from payback.access.tables import DEFAULT_SELLER_ID, sellers
    conn.execute(sellers.insert().values(id=DEFAULT_SELLER_ID, name="Default seller",
                                         created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))


# ------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture(scope="session")
def _postgres_database() -> Iterator[tuple[str | None, Engine | None, str | None]]:
    """(url, cleaner, None) for this worker's migrated database, or (None, None, error)."""
    base = make_url(os.environ.get("PAYBACK_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    name = f"payback_test_{_worker_id()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT",
                          connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable" here
        admin.dispose()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        yield None, None, f"PostgreSQL not reachable at {base.host}:{base.port}: {first_line}"
        return
    url = base.set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    cleaner = make_engine(url, pool_size=1, max_overflow=0)
    yield url, cleaner, None
    cleaner.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_postgres(cleaner: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in _data_tables())
    with cleaner.begin() as conn:
        # A test that leaked a connection holding locks should fail the run, not hang it.
        conn.execute(text("SET LOCAL lock_timeout = '10s'"))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        _restore_default_seller(conn)


# ------------------------------------------------------------------------- public fixtures


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
])
def db_url(request) -> str:
    """URL of an empty (chart of accounts only), migrated database; one per backend."""
    if request.param == "sqlite":
        url, cleaner = request.getfixturevalue("_sqlite_database")
        _empty_sqlite(cleaner)
        return url
    url, cleaner, error = request.getfixturevalue("_postgres_database")
    if error:
        skip_or_fail(error)
    _empty_postgres(cleaner)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """``payback.db.make_engine(db_url)``, disposed after the test."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FixedClock:
    """A clock fixed at 2026-01-15 10:00 UTC; ``clock.advance(days=…)`` moves it."""
    return FixedClock(datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared public data folder (``../shared/data`` next to the repository)."""
    path = REPO_ROOT.parent / "shared" / "data"
    if not path.is_dir():
        skip_or_fail(f"shared data folder not found at {path}")
    return path


def pytest_collection_modifyitems(items) -> None:
    """Mark every postgresql variant ``postgres`` (``-m "not postgres"`` deselects them), also
    when a module narrows ``db_url`` with ``parametrize(..., indirect=True)``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
