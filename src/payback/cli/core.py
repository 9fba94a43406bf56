"""What every ``payback`` command shares: the Typer ``app``, the one error mapper (``exit_for``,
applied by ``@mapped``), the engine built per run, option types, output helpers, and
``audited_write``, the one way a command writes.

Invariants:
- nothing is built at import time: each command builds its ``Settings`` (``PAYBACK_*``
  environment variables) and its engine when it runs;
- a ``DomainError`` prints ``error[<code>]: <detail>`` on stderr and exits with status 2 (the
  same stable codes as the API's problem documents); bad usage is Click's, also status 2;
  anything else prints ``error: <type>: <message>`` and exits with status 1 (``payback --debug``
  re-raises it with its traceback);
- every write goes through ``audited_write``: the change and its audit record (origin ``cli``)
  commit in one transaction, and a refused attempt leaves a ``refused`` record in a transaction of
  its own. Summaries never hold a password or a key's secret.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from sqlalchemy import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from payback.actor import Actor
from payback.clock import Clock
from payback.errors import DomainError
from payback.settings import Settings

app = typer.Typer(name="payback", no_args_is_help=True, add_completion=False,
                  help="Payback: billing whose heart is refunds done right.")

# Option types shared by several commands (Typer reads the metadata from ``Annotated``).
CurrencyOpt = Annotated[str | None, typer.Option(help="Only this currency (ISO 4217 code).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DayFrom = Annotated[datetime | None, typer.Option(
    "--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
    help="First day, inclusive (default: 1 January this year).")]
DayTo = Annotated[datetime | None, typer.Option(
    "--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
    help="Last day, exclusive (default: 1 January next year).")]
SellerOpt = Annotated[str, typer.Option("--seller", help="Seller id (default: the default "
                                                         "seller, sel_default).")]
RoleOpt = Annotated[str, typer.Option(help="viewer, agent, approver, admin or auditor.")]

EXIT_DOMAIN_ERROR = 2
EXIT_UNEXPECTED = 1

#: Set by ``--debug`` for the current invocation (a ContextVar, not a setting: it is per run).
_DEBUG: ContextVar[bool] = ContextVar("payback_cli_debug", default=False)


@app.callback()
def _main(debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an unexpected error.")] = False) -> None:
    _DEBUG.set(debug)


# --------------------------------------------------------------------------- error mapping


def exit_for(exc: BaseException) -> int:
    """The one mapper from an exception to a message on stderr and an exit status."""
    if isinstance(exc, DomainError):
        typer.echo(f"error[{exc.code}]: {exc.detail}", err=True)
        return EXIT_DOMAIN_ERROR
    hint = ""
    if isinstance(exc, (OperationalError, ProgrammingError)):
        hint = " (is the database reachable and migrated? run `payback db upgrade`)"
        exc_text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    else:
        exc_text = str(exc)
    typer.echo(f"error: {type(exc).__name__}: {exc_text}{hint}", err=True)
    return EXIT_UNEXPECTED


def mapped(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command body through ``exit_for`` (Typer reads the signature via ``__wrapped__``)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise  # Typer's own usage errors and exits keep their messages and statuses
        except Exception as exc:
            if _DEBUG.get() and not isinstance(exc, DomainError):
                raise
            raise typer.Exit(exit_for(exc)) from exc
    return wrapper


# ------------------------------------------------------------------------------- helpers


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    from payback.db import make_engine

    engine = make_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _money(minor: int, currency: str) -> str:
    from payback.money import format_money

    return format_money(minor, currency, "en_US")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"


def _print_wide(console: Console, table: Table) -> None:
    """Print a table at its natural width even on a narrow terminal: an amount cut to "€23,5…"
    is worse than a line that wraps."""
    unbounded = console.options.update(max_width=10_000)
    needed = Measurement.get(console, unbounded, table).maximum
    if needed > console.width:
        table.width = needed  # a Table with a width ignores the console's
    console.print(table, crop=False)


# ------------------------------------------------------------------------ audited writes


def cli_actor(seller_id: str) -> Actor:
    """Whoever runs the command line: it has the database URL, so it acts as an admin."""
    return Actor(id="cli", kind="cli", role="admin", seller_id=seller_id, origin="cli")


#: ``fn(conn, clock, actor) -> (result, audit)``: ``audit`` is ``(object_type, object_id,
#: after)`` for the record, or None when nothing was written (then no record either).
Write = Callable[[Connection, Clock, Actor], tuple[Any, tuple[str, str | None, dict] | None]]


def audited_write(settings: Settings, action: str, actor: Actor | Callable[[Connection], Actor],
                  fn: Write, *, request: dict | None = None, clock: Clock | None = None,
                  seller_id: str | None = None,
                  target: tuple[str | None, str | None] = (None, None)) -> Any:
    """Run ``fn`` in one write transaction and append its audit record as the last statement.

    ``actor`` may be a function of the connection (a staff user looked up by email): it runs
    inside the transaction, and a refusal before it answers is recorded as the CLI's.
    A ``DomainError`` is recorded as ``refused`` in a transaction of its own, then re-raised.
    ``request`` is what the command was asked (never a password or a secret); ``target`` the
    (object type, id) a refusal is about, when the command names one."""
    from payback.clock import SystemClock
    from payback.db import write

    clock = clock or SystemClock()
    who = actor if isinstance(actor, Actor) else None
    with _engine(settings) as engine:
        try:
            with write(engine) as conn:
                who = who or actor(conn)  # type: ignore[operator]
                result, audit = fn(conn, clock, who)
                if audit is not None:
                    object_type, object_id, after = audit
                    _record(conn, clock, who, action, object_type, object_id, "allowed",
                            {"request": request or {}, "after": after})
            return result
        except DomainError as err:
            with write(engine) as conn:
                _record(conn, clock, who or cli_actor(seller_id or _default_seller()), action,
                        *target, "refused",
                        {"request": request or {}, "code": err.code, "detail": err.detail})
            raise


def _default_seller() -> str:
    from payback.access.tables import DEFAULT_SELLER_ID

    return DEFAULT_SELLER_ID


def _record(conn: Connection, clock: Clock, actor: Actor, action: str, object_type: str | None,
            object_id: str | None, outcome: str, summary: dict) -> None:
    from payback.audit.service import record

    record(conn, at=clock.now(), actor_id=actor.id, actor_kind=actor.kind,
           actor_role=actor.role, seller_id=actor.seller_id, action=action,
           object_type=object_type, object_id=object_id, outcome=outcome, summary=summary,
           origin="cli")
