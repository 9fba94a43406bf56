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
              help="Worker poll interval in seconds.")] = 1
          ) -> None:
    """Serve the HTTP API (and its interactive docs at /docs), optionally with the worker."""
    import uvicorn

    from payback.api.app import create_app

    settings = Settings()
    host, port = host or settings.host, port or settings.port
    console = Console()
    console.print(f"Payback API on [bold]http://{host}:{port}[/]  (API docs at "
                  f"http://{host}:{port}/docs)", highlight=False, soft_wrap=True)
    console.print(f"Database: {_safe_url(settings.database_url)}", highlight=False,
                  soft_wrap=True)
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
