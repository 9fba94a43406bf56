"""``payback reconcile`` and ``payback sandbox …``: compare a gateway's refunds with Payback's
(see payback.gateways.reconcile), and drive the built-in sandbox gateway by hand (complete its
refunds and send its webhooks, as ``serve --with-worker`` does in the background).

``reconcile`` exits 0 when no difference is left open (repaired ones are listed), 1 when some
need a person.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import JsonOpt, _echo_json, _engine, _print_wide, app, mapped
from payback.settings import Settings

sandbox_app = typer.Typer(no_args_is_help=True, help="The built-in sandbox payment gateway.")
app.add_typer(sandbox_app, name="sandbox")


def _when(value: str, name: str) -> datetime:
    """An ISO 8601 date or date-time; naive values are UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{name}: expected a date like 2026-01-31 or "
                                 f"2026-01-31T12:00:00Z, got {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@app.command()
@mapped
def reconcile(date_from: Annotated[str | None, typer.Option(
                  "--from", help="Start (inclusive), ISO date or date-time; default 2 days ago.")
              ] = None,
              date_to: Annotated[str | None, typer.Option(
                  "--to", help="End (exclusive); default now.")] = None,
              gateway: Annotated[list[str] | None, typer.Option(
                  help="Gateway name (repeatable); default every configured gateway.")] = None,
              repair: Annotated[bool, typer.Option(
                  "--repair/--no-repair", help="Repair what is safe (default) or only report.")
              ] = True,
              as_json: JsonOpt = False) -> None:
    """Compare each gateway's refunds with Payback's over a period and classify differences."""
    from payback.cli.worker import prepare_jobs
    from payback.clock import SystemClock
    from payback.gateways import reconcile as rec
    from payback.gateways import registry

    settings = Settings()
    prepare_jobs(settings)
    clock = SystemClock()
    end = _when(date_to, "--to") if date_to else clock.now()
    start = _when(date_from, "--from") if date_from else end - timedelta(days=2)
    reports = []
    with _engine(settings) as engine:
        for name in gateway or registry.names():
            reports.append(rec.reconcile(engine, clock, name, start, end, repair=repair))
    if as_json:
        _echo_json([r.as_dict() for r in reports])
    else:
        _print_reports(reports)
    if any(r.open for r in reports):
        raise typer.Exit(1)


def _print_reports(reports) -> None:
    console = Console()
    for r in reports:
        console.print(f"[bold]{r.gateway}[/] {r.period_from.isoformat()} → "
                      f"{r.period_to.isoformat()}: compared {r.compared}, "
                      f"{len(r.differences)} differences ({r.repaired} repaired, "
                      f"{len(r.open)} open)", highlight=False, soft_wrap=True)
        if not r.differences:
            continue
        table = Table("kind", "gateway refund", "refund", "payback", "gateway", "repaired",
                      "action")
        for d in r.differences:
            table.add_row(d.kind, d.gateway_refund_id or "", d.refund_id or "",
                          _view(d.payback), _view(d.gateway), "yes" if d.repaired else "no",
                          d.action)
        _print_wide(console, table)


def _view(side: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in side.items() if v is not None)


@sandbox_app.command("pump")
@mapped
def sandbox_pump(once: Annotated[bool, typer.Option(
                     "--once", help="Complete due refunds and send due webhooks once.")] = False
                 ) -> None:
    """Complete the sandbox's due refunds and POST its webhooks to this server."""
    import threading

    from payback.cli.worker import (prepare_jobs, sandbox_sender, start_sandbox_pump,
                                    stop_on_signals)
    from payback.gateways import registry

    settings = Settings()
    prepare_jobs(settings)
    if once:
        sandbox = registry.get("sandbox")
        changed = sandbox.advance()
        sent = sandbox.deliver_webhooks(sandbox_sender(settings))
        typer.echo(f"completed {changed} refunds, sent {sent} webhooks")
        return
    stop = threading.Event()
    with stop_on_signals(stop):
        start_sandbox_pump(settings, stop).join()
