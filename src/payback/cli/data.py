"""``payback db upgrade``, ``payback serve`` and ``payback demo``: the database schema, the HTTP
server and the demo data set. Each builds its settings and engine when it runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from payback.cli.core import _engine, _safe_url, app, mapped
from payback.settings import Settings

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@mapped
def db_upgrade() -> None:
    """Apply every pending migration (safe to run again: it does nothing when up to date)."""
    from payback.db.migrate import current_head, upgrade

    settings = Settings()
    upgrade(settings.database_url)
    Console().print(f"Database [bold]{_safe_url(settings.database_url)}[/] is at revision "
                    f"[bold]{current_head()}[/] (latest).", highlight=False, soft_wrap=True)


def _check_poll(value: float) -> float:
    from payback.cli.worker import check_poll

    return check_poll(value)


@app.command()
@mapped
def serve(host: Annotated[str | None, typer.Option(
              help="Interface to bind (default: PAYBACK_HOST, else 127.0.0.1).")] = None,
          port: Annotated[int | None, typer.Option(
              help="Port (default: PAYBACK_PORT, else 8000).")] = None,
          with_worker: Annotated[bool, typer.Option(
              "--with-worker", help="Also run the outbox worker in this process (a thread).")
          ] = False,
          worker_poll: Annotated[float, typer.Option(
              "--worker-poll", callback=_check_poll,
              help="Worker poll interval in seconds.")] = 1,
          mail_sink: Annotated[str | None, typer.Option(
              "--mail-sink", help="Development only: accept every e-mail on PAYBACK_SMTP_HOST:"
                                  "PAYBACK_SMTP_PORT and keep it as an .eml file in this "
                                  "folder (unless an SMTP server already listens there).")
          ] = None
          ) -> None:
    """Serve the HTTP API (and its interactive docs at /docs), optionally with the worker."""
    import uvicorn

    from payback.api.app import create_app

    settings = Settings()
    host, port = host or settings.host, port or settings.port
    console = Console()
    console.print(f"Payback API on [bold]http://{host}:{port}[/]  (API docs at "
                  f"http://{host}:{port}/docs)", highlight=False, soft_wrap=True)
    console.print(f"Staff console: [bold]http://{host}:{port}/console[/]", highlight=False,
                  soft_wrap=True)
    console.print(f"Database: {_safe_url(settings.database_url)}", highlight=False,
                  soft_wrap=True)
    if mail_sink:
        from payback.notifications import mail_sink as sink

        started = sink.start(settings.smtp_host, settings.smtp_port, mail_sink)
        console.print(f"Customer e-mails: kept in {mail_sink}/ (a local sink on "
                      f"{settings.smtp_host}:{settings.smtp_port})" if started else
                      f"Customer e-mails: sent to the SMTP server at {settings.smtp_host}:"
                      f"{settings.smtp_port}", highlight=False, soft_wrap=True)
    if not with_worker:
        uvicorn.run(create_app(settings), host=host, port=port)
        return
    from payback.cli.worker import start_worker_thread

    thread, stop = start_worker_thread(settings, worker_poll)
    console.print("Outbox worker: running beside the server", highlight=False)
    try:
        uvicorn.run(create_app(settings), host=host, port=port)
    finally:
        stop.set()
        thread.join(timeout=30)


@app.command()
@mapped
def demo(if_empty: Annotated[bool, typer.Option(
             "--if-empty", help="Do nothing when the database already has invoices.")] = False,
         seed: Annotated[int, typer.Option(help="Random seed: same seed, same demo.")] = 42,
         customers: Annotated[int, typer.Option(min=1, help="Number of customers.")] = 24,
         invoices: Annotated[int, typer.Option(min=0, help="Number of invoices.")] = 240,
         today: Annotated[bool, typer.Option(
             "--today/--no-today", help="Also leave today's card refund (and a webhook "
                                        "endpoint) for the running server's worker.")] = True
         ) -> None:
    """Seed a realistic demo year (2026): customers, invoices, payments and refunds; card
    payments go through the sandbox gateway. Today's card refund is left for the worker."""
    from payback.cli.worker import prepare_jobs
    from payback.clock import SystemClock
    from payback.demo import close_history, count_invoices, create_demo_staff, seed_demo
    from payback.demo_live import start_live
    from payback.gateways import registry

    settings = Settings()
    console = Console()
    prepare_jobs(settings)
    sandbox = registry.get("sandbox")
    with _engine(settings) as engine:
        existing = count_invoices(engine)
        if if_empty and existing:
            console.print(f"The database already has {existing} invoices: demo not seeded.",
                          soft_wrap=True)
            return
        logins = create_demo_staff(engine)  # before the demo year: its agent requests refunds
        with Progress(TextColumn("Seeding demo"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as bar:
            task = bar.add_task("demo", total=None)
            counts = seed_demo(engine, seed=seed, customers=customers, invoices=invoices,
                               progress=lambda done, total: bar.update(task, completed=done,
                                                                       total=total),
                               sandbox=sandbox)
        clock = SystemClock()
        close_history(engine, clock)
        live = start_live(engine, clock, sandbox, settings.public_url) if today else None
    counts["staff_users"] = len(logins)
    _print_counts(console, counts)
    if live:
        console.print(f"Today's card refund {live['refund_id']} is {live['refund_status']}: "
                      "the worker beside the server pays it through the sandbox gateway; see "
                      f"/console/refunds/{live['refund_id']} and GET /v1/webhook-endpoints/"
                      f"{live['webhook_endpoint_id']}/deliveries.", highlight=False,
                      soft_wrap=True)
    _print_logins(console, logins, f"{settings.public_url.rstrip('/')}/console")


def _print_logins(console: Console, logins: list[dict], console_url: str) -> None:
    """The demo's staff logins, once: their passwords are stored only as hashes. Plain lines,
    not a table: a narrow terminal must never cut a password short."""
    def say(text: str) -> None:
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    say(f"Web console: {console_url}")
    say("Staff logins (passwords are shown ONCE: store them now):")
    for login in logins:
        say(f"  {login['role']:<9} {login['email']:<24} {login['password']}")
    if not any(login["role"] == "admin" for login in logins):
        say(f"  {'admin':<9} {'admin@payback.local':<24} (password printed by "
            "`payback users bootstrap` above)")
    say(f"Next: payback serve, then log in at {console_url} (the API's docs are at /docs).")


def _print_counts(console: Console, counts: dict[str, int]) -> None:
    table = Table(title="Demo seeded", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in counts.items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
