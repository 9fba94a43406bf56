"""Alembic environment for Payback.

Where the database comes from, first match wins:
1. ``config.attributes["connection"]``: a SQLAlchemy ``Connection`` handed in by a caller, used
   as-is (the caller owns its transaction);
2. ``sqlalchemy.url`` set on the Config by a caller (``payback.db.migrate.upgrade`` does this);
3. the ``PAYBACK_DATABASE_URL`` environment variable;
4. ``sqlite:///payback.db`` (the embedded default, as in ``payback.settings``).

Engines are built with ``payback.db.make_engine`` so migrations see the same connection setup
(WAL, busy timeout, ``BEGIN IMMEDIATE``) as the application. On SQLite ``render_as_batch`` is on,
because SQLite can only ALTER a table by copying it, and foreign keys are switched off for the
duration of the migration (a batch copy drops and recreates tables) and checked afterwards.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from payback.db import make_engine
from payback.db.schema import metadata

config = context.config

# Programmatic callers (tests, the CLI) keep their own logging configuration.
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _database_url() -> str:
    return (config.get_main_option("sqlalchemy.url")
            or os.environ.get("PAYBACK_DATABASE_URL")
            or "sqlite:///payback.db")


def _not_the_sandbox(obj, name, type_, reflected, compare_to) -> bool:
    """The built-in sandbox gateway may keep its own ``sandbox_*`` tables in the same PostgreSQL
    database; they are not Payback's schema, so autogenerate must never propose dropping them."""
    return not (type_ == "table" and name and name.startswith("sandbox_"))


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    dialect = connection.dialect.name if connection is not None else url.split(":")[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=dialect.startswith("sqlite"),
        compare_type=True,
        include_object=_not_the_sandbox,
        literal_binds=connection is None,
        dialect_opts={"paramstyle": "named"} if connection is None else {},
    )


def run_migrations_offline() -> None:
    """``alembic upgrade --sql``: print the DDL instead of running it."""
    _configure(url=_database_url())
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


def _set_sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # Must run outside any transaction (SQLite ignores the pragma inside one), so it goes
    # straight to the DBAPI connection, bypassing SQLAlchemy's autobegin (BEGIN IMMEDIATE).
    cur = connection.connection.driver_connection.cursor()
    cur.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    cur.close()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = make_engine(_database_url())
    try:
        with engine.connect() as connection:
            if connection.dialect.name != "sqlite":
                _run(connection)
                return
            _set_sqlite_foreign_keys(connection, False)
            try:
                _run(connection)
                if connection.in_transaction():
                    connection.commit()
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.rollback()
                if broken:
                    raise RuntimeError(f"migration left broken foreign keys: {broken[:5]}")
            finally:
                _set_sqlite_foreign_keys(connection, True)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
