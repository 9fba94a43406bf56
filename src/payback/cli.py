"""The ``payback`` command line: ``db upgrade``, ``serve``, ``demo``, ``report revenue`` and
``ledger trial-balance``.

Every command builds its ``Settings`` (``PAYBACK_*`` environment variables) and its engine when it
runs, never at import time, and calls the same service functions as the HTTP API: no business rule
lives here. Errors go through one mapper, ``exit_for``:

- a ``DomainError`` prints ``error[<code>]: <detail>`` on stderr and exits with status 2
  (the same stable codes as the API's problem documents);
- bad usage (unknown option, malformed date) is Click's, also status 2;
- anything else prints ``error: <type>: <message>`` and exits with status 1
  (``payback --debug …`` re-raises it with the traceback).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError

from payback.errors import DomainError
from payback.settings import Settings

app = typer.Typer(name="payback", no_args_is_help=True, add_completion=False,
                  help="Payback: billing whose heart is refunds done right.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
report_app = typer.Typer(no_args_is_help=True, help="Reports read from the ledger.")
ledger_app = typer.Typer(no_args_is_help=True, help="The double-entry ledger.")
app.add_typer(db_app, name="db")
app.add_typer(report_app, name="report")
app.add_typer(ledger_app, name="ledger")

# Option types shared by several commands (Typer reads the metadata from ``Annotated``).
CurrencyOpt = Annotated[str | None, typer.Option(help="Only this currency (ISO 4217 code).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
DayFrom = Annotated[datetime | None, typer.Option(
    "--from", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
    help="First day, inclusive (default: 1 January this year).")]
DayTo = Annotated[datetime | None, typer.Option(
    "--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD",
    help="Last day, exclusive (default: 1 January next year).")]

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


# ------------------------------------------------------------------------------ commands


@db_app.command("upgrade")
@mapped
def db_upgrade() -> None:
    """Apply every pending migration (safe to run again: it does nothing when up to date)."""
    from payback.db.migrate import current_head, upgrade

    settings = Settings()
    upgrade(settings.database_url)
    Console().print(f"Database [bold]{_safe_url(settings.database_url)}[/] is at revision "
                    f"[bold]{current_head()}[/] (latest).", highlight=False, soft_wrap=True)


@app.command()
@mapped
def serve(host: Annotated[str | None, typer.Option(
              help="Interface to bind (default: PAYBACK_HOST, else 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(
              help="Port (default: PAYBACK_PORT, else 8000).")] = None) -> None:
    """Serve the HTTP API (and its interactive docs at /docs)."""
    import uvicorn

    from payback.api.app import create_app

    settings = Settings()
    host, port = host or settings.host, port or settings.port
    console = Console()
    console.print(f"Payback API on [bold]http://{host}:{port}[/]  (API docs at "
                  f"http://{host}:{port}/docs)", highlight=False, soft_wrap=True)
    console.print(f"Database: {_safe_url(settings.database_url)}", highlight=False,
                  soft_wrap=True)
    uvicorn.run(create_app(settings), host=host, port=port)


@app.command()
@mapped
def demo(if_empty: Annotated[bool, typer.Option(
             "--if-empty", help="Do nothing when the database already has invoices.")] = False,
         seed: Annotated[int, typer.Option(help="Random seed: same seed, same demo.")] = 42,
         customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 24,
         invoices: Annotated[int, typer.Option(min=0, help="Number of invoices.")] = 240
         ) -> None:
    """Seed a realistic demo year (2026): customers, invoices, payments and refunds."""
    from payback.demo import count_invoices, seed_demo

    settings = Settings()
    console = Console()
    with _engine(settings) as engine:
        existing = count_invoices(engine)
        if if_empty and existing:
            console.print(f"The database already has {existing} invoices: demo not seeded.",
                          soft_wrap=True)
            return
        with Progress(TextColumn("Seeding demo"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("demo", total=None)
            counts = seed_demo(engine, seed=seed, customers=customers, invoices=invoices,
                               progress=lambda done, total: bar.update(task, completed=done,
                                                                       total=total))
    _print_counts(console, counts)


def _print_counts(console: Console, counts: dict[str, int]) -> None:
    table = Table(title="Demo seeded", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    console.print("Next: [bold]payback serve[/], then open http://127.0.0.1:8000/docs",
                  highlight=False, soft_wrap=True)


REVENUE_COLUMNS = (("gross_sales_minor", "Gross sales"), ("returns_minor", "Returns"),
                   ("net_revenue_minor", "Net revenue"), ("tax_collected_minor", "Tax collected"),
                   ("tax_refunded_minor", "Tax refunded"), ("net_tax_minor", "Net tax"),
                   ("refunds_paid_out_minor", "Refunds paid out"),
                   ("refunds_to_store_credit_minor", "To store credit"))


@report_app.command("revenue")
@mapped
def report_revenue(date_from: DayFrom = None, date_to: DayTo = None,
                   currency: CurrencyOpt = None,
                   group_by: Annotated[str, typer.Option(
                       "--group-by", help="none or month.")] = "none",
                   as_json: JsonOpt = False) -> None:
    """Gross sales, returns, net revenue and tax per currency, read from the ledger."""
    from payback.db import read
    from payback.money import normalise_currency
    from payback.reports.service import revenue

    year = date.today().year
    start = date_from.date() if date_from else date(year, 1, 1)
    end = date_to.date() if date_to else date(year + 1, 1, 1)
    cur = normalise_currency(currency) if currency else None
    with _engine(Settings()) as engine, read(engine) as conn:
        report = revenue(conn, start, end, currency=cur, group_by=group_by)
    if as_json:
        _echo_json(report)
    else:
        _print_revenue(report)


def _print_revenue(report: dict) -> None:
    """Without grouping: one table, a row per figure and a column per currency (narrow enough
    for any terminal). By month: a table per currency, a row per month."""
    console = Console()
    periods = [p for p in report["periods"] if p["currencies"]]
    if not periods:
        console.print("No ledger entries in this period.")
    elif report["group_by"] == "none":
        _print_wide(console, _revenue_by_currency(report, periods[0]["currencies"]))
    else:
        for cur in sorted({row["currency"] for p in periods for row in p["currencies"]}):
            _print_wide(console, _revenue_by_month(report, cur))


def _revenue_by_currency(report: dict, rows: list[dict]) -> Table:
    table = Table(title=f"Revenue {report['from']} to {report['to']} (end exclusive)")
    table.add_column("")
    for row in rows:
        table.add_column(row["currency"], justify="right", no_wrap=True)
    for key, title in REVENUE_COLUMNS:
        table.add_row(title, *[_money(row[key], row["currency"]) for row in rows])
    return table


def _revenue_by_month(report: dict, cur: str) -> Table:
    table = Table(title=f"Revenue in {cur} by month, {report['from']} to {report['to']} "
                        "(end exclusive)")
    table.add_column("Period", no_wrap=True)
    for _key, title in REVENUE_COLUMNS:
        table.add_column(title, justify="right", no_wrap=True)
    for period in report["periods"]:
        row = next((r for r in period["currencies"] if r["currency"] == cur), None)
        figures = [_money(row[k] if row else 0, cur) for k, _ in REVENUE_COLUMNS]
        table.add_row(_period_label(period["from"], period["to"]), *figures)
    return table


def _period_label(start: str, end: str) -> str:
    """"2026-03" for a whole calendar month, else "2026-03-15 to 2026-04-01"."""
    first, nxt = date.fromisoformat(start), date.fromisoformat(end)
    whole = first.day == 1 and nxt == date(first.year + (first.month == 12),
                                            first.month % 12 + 1, 1)
    return start[:7] if whole else f"{start} to {end}"


def _print_wide(console: Console, table: Table) -> None:
    """Print a table at its natural width even on a narrow terminal: an amount cut to "€23,5…"
    is worse than a line that wraps."""
    unbounded = console.options.update(max_width=10_000)
    needed = Measurement.get(console, unbounded, table).maximum
    if needed > console.width:
        table.width = needed  # a Table with a width ignores the console's
    console.print(table, crop=False)


@ledger_app.command("trial-balance")
@mapped
def trial_balance(currency: CurrencyOpt = None, as_json: JsonOpt = False) -> None:
    """Debits, credits and balance of every account per currency; totals must agree."""
    from payback.db import read
    from payback.ledger.service import trial_balance as service_trial_balance
    from payback.money import normalise_currency

    cur = normalise_currency(currency) if currency else None
    with _engine(Settings()) as engine, read(engine) as conn:
        tb = service_trial_balance(conn, currency=cur)
    if as_json:
        _echo_json(tb)
    else:
        _print_trial_balance(tb)


def _print_trial_balance(tb: dict) -> None:
    console = Console()
    if not tb["totals"]:
        console.print("The ledger is empty.")
        return
    for total in tb["totals"]:
        cur = total["currency"]
        table = Table(title=f"Trial balance — {cur}")
        for title, justify in (("Account", "left"), ("Debit", "right"), ("Credit", "right"),
                               ("Balance", "right")):
            table.add_column(title, justify=justify, no_wrap=True)
        for acct in (a for a in tb["accounts"] if a["currency"] == cur):
            table.add_row(f"{acct['account_code']} {acct['account_name']}",
                          _money(acct["debit_minor"], cur), _money(acct["credit_minor"], cur),
                          _money(acct["balance_minor"], cur))
        table.add_section()
        table.add_row("Total", _money(total["debit_minor"], cur),
                      _money(total["credit_minor"], cur),
                      "balanced" if total["balanced"] else "[bold red]NOT BALANCED[/]")
        _print_wide(console, table)


# ---------------------------------------------------------------------------- audit trail

audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit trail.")
app.add_typer(audit_app, name="audit")

#: ``payback audit verify`` exits with this status when the hash chain is broken.
EXIT_AUDIT_BROKEN = 3


@audit_app.command("verify")
@mapped
def audit_verify() -> None:
    """Check every record's hash and link; name the first broken record (exit status 3)."""
    from payback.audit.service import verify
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        result = verify(conn)
    if result.ok:
        typer.echo(f"audit trail intact: {result.checked} records")
        typer.echo(f"last hash: {result.last_hash}")
        return
    typer.echo(f"audit trail BROKEN at record #{result.first_broken_seq}: {result.reason}")
    raise typer.Exit(EXIT_AUDIT_BROKEN)


@audit_app.command("list")
@mapped
def audit_list(object_id: Annotated[str | None, typer.Option(
                   "--object-id", help="Only records about this object.")] = None,
               actor: Annotated[str | None, typer.Option(
                   "--actor", help="Only records by this actor id.")] = None,
               action: Annotated[str | None, typer.Option(
                   "--action", help="Only this action, e.g. refund.create.")] = None,
               limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
               as_json: JsonOpt = False) -> None:
    """Audit records, oldest first, filtered by object, actor and action."""
    from payback.audit.domain import iso_utc
    from payback.audit.service import query
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = query(conn, object_id=object_id, actor_id=actor, action=action, limit=limit)
    if as_json:
        _echo_json([{**r, "at": iso_utc(r["at"])} for r in rows])
    elif not rows:
        Console().print("No audit records match.")
    else:
        _print_wide(Console(), _audit_table(rows))


def _audit_table(rows: list[dict]) -> Table:
    from rich.markup import escape  # ids and actions are data, never markup

    table = Table(title="Audit trail")
    for title in ("#", "At (UTC)", "Actor", "Role", "Action", "Object", "Outcome", "Origin"):
        table.add_column(title, no_wrap=True, justify="right" if title == "#" else "left")
    for r in rows:
        obj = f"{r['object_type'] or ''} {r['object_id'] or ''}".strip()
        cells = (r["at"].strftime("%Y-%m-%d %H:%M:%S"), f"{r['actor_kind']}:{r['actor_id']}",
                 r["actor_role"] or "", r["action"], obj, r["outcome"], r["origin"])
        table.add_row(str(r["seq"]), *(escape(c) for c in cells))
    return table


# ---------------------------------------------------------------------- staff and API keys

users_app = typer.Typer(no_args_is_help=True, help="Staff accounts.")
keys_app = typer.Typer(no_args_is_help=True, help="API keys (the token is shown once).")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

SellerOpt = Annotated[str, typer.Option("--seller", help="Seller id (default: the default "
                                                         "seller, sel_default).")]
RoleOpt = Annotated[str, typer.Option(help="viewer, agent, approver, admin or auditor.")]


@users_app.command("create")
@mapped
def users_create(email: Annotated[str, typer.Option(help="Login email (unique).")],
                 name: Annotated[str, typer.Option(help="Display name.")],
                 role: RoleOpt,
                 password: Annotated[str | None, typer.Option(
                     help="Password (≥ 12 characters, letters and digits). Prompted, hidden, "
                          "when left out: prefer that, a command line ends up in shell "
                          "history.")] = None,
                 generate: Annotated[bool, typer.Option(
                     "--generate-password", help="Generate a password and print it once.")
                 ] = False,
                 seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Create a staff account."""
    from payback.access.service import create_user, random_password
    from payback.clock import SystemClock
    from payback.db import write

    if generate:
        password = random_password()
    elif password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _engine(Settings()) as engine, write(engine) as conn:
        user = create_user(conn, SystemClock(), seller_id=seller, email=email, name=name,
                           role=role, password=password)
    if as_json:
        _echo_json({**user, **({"password": password} if generate else {})})
        return
    typer.echo(f"Created staff user {user['id']} {user['email']} (role {user['role']}, "
               f"seller {user['seller_id']}).")
    if generate:
        typer.echo(f"Password (shown once, store it now): {password}")


@users_app.command("list")
@mapped
def users_list(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Staff accounts of a seller (never their password hashes)."""
    from payback.access.service import list_users
    from payback.db import read

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_users(conn, seller_id=seller, limit=10_000)
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"Staff users of {seller}")
    for title in ("Id", "Email", "Name", "Role", "Active", "Last login (UTC)"):
        table.add_column(title, no_wrap=True)
    for r in rows:
        table.add_row(r["id"], r["email"], r["name"], r["role"], "yes" if r["active"] else "no",
                      _utc(r["last_login_at"]))
    _print_wide(Console(), table)


@users_app.command("bootstrap")
@mapped
def users_bootstrap(seller: SellerOpt = "sel_default") -> None:
    """First run only: create the admin account and print its password once."""
    from payback.access.service import ensure_first_admin
    from payback.clock import SystemClock
    from payback.db import write

    with _engine(Settings()) as engine, write(engine) as conn:
        created = ensure_first_admin(conn, SystemClock(), seller_id=seller)
    if created is None:
        typer.echo("Staff users exist already: no admin created.")
        return
    email, password = created
    typer.echo("First admin created. The password is shown ONCE: store it now.")
    typer.echo(f"  email:    {email}")
    typer.echo(f"  password: {password}")


@keys_app.command("create")
@mapped
def keys_create(name: Annotated[str, typer.Option(help="What the key is for.")],
                role: RoleOpt,
                scope: Annotated[list[str] | None, typer.Option(
                    "--scope", help="Restrict the key to this permission (repeatable); "
                                    "default: all of its role's.")] = None,
                expires_in_days: Annotated[int | None, typer.Option(
                    min=1, help="Expire after this many days (default: never).")] = None,
                seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """Create an API key and print its token once (only a hash is stored)."""
    from datetime import timedelta

    from payback.access.service import create_key
    from payback.clock import FixedClock, SystemClock
    from payback.db import write

    clock = FixedClock(SystemClock().now())  # one instant: expires exactly N days after creation
    expires = clock.now() + timedelta(days=expires_in_days) if expires_in_days else None
    with _engine(Settings()) as engine, write(engine) as conn:
        key, token = create_key(conn, clock, seller_id=seller, name=name, role=role,
                                scopes=scope or None, expires_at=expires, created_by="cli")
    if as_json:
        _echo_json({**key, "token": token})
        return
    typer.echo(f"Created API key {key['id']} ({key['name']}, role {key['role']}, seller "
               f"{key['seller_id']}). The token is shown ONCE: store it now.")
    typer.echo(token)


@keys_app.command("revoke")
@mapped
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (key_…).")],
                seller: SellerOpt = "sel_default") -> None:
    """Revoke an API key at once."""
    from payback.access.service import revoke_key
    from payback.clock import SystemClock
    from payback.db import write

    with _engine(Settings()) as engine, write(engine) as conn:
        key = revoke_key(conn, SystemClock(), seller_id=seller, key_id=key_id)
    typer.echo(f"Revoked API key {key['id']} ({key['name']}) at {_utc(key['revoked_at'])}.")


@keys_app.command("list")
@mapped
def keys_list(seller: SellerOpt = "sel_default", as_json: JsonOpt = False) -> None:
    """API keys of a seller: prefix, role, scopes, last use; never a secret."""
    from payback.access.service import list_keys
    from payback.clock import SystemClock
    from payback.db import read

    now = SystemClock().now()
    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_keys(conn, seller_id=seller, limit=10_000)
    if as_json:
        _echo_json(rows)
        return
    table = Table(title=f"API keys of {seller}")
    for title in ("Id", "Name", "Prefix", "Role", "Scopes", "Status", "Last used (UTC)"):
        table.add_column(title, no_wrap=True)
    for r in rows:
        status = ("revoked" if r["revoked_at"] else
                  "expired" if r["expires_at"] and r["expires_at"] <= now else "active")
        table.add_row(r["id"], r["name"], f"pb_{r['prefix']}_…", r["role"],
                      ", ".join(r["scopes"]) if r["scopes"] is not None else "all of role",
                      status, _utc(r["last_used_at"]))
    _print_wide(Console(), table)


def _utc(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "never"
