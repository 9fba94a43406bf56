"""``payback worker`` and ``payback outbox list|retry``: run the outbox worker (see
docs/worker.md), read the outbox, and revive dead-lettered events.

``payback worker`` stops cleanly on SIGINT or SIGTERM: the batch in hand is finished, then it
prints what it did. ``--once`` processes every event due now and exits (for cron and tests).
``outbox retry`` is a write, so it goes through ``audited_write`` (action ``cli.outbox.retry``).
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from payback.cli.core import (
    JsonOpt,
    _echo_json,
    _engine,
    _print_wide,
    _safe_url,
    app,
    audited_write,
    cli_actor,
    mapped,
)
from payback.settings import Settings

outbox_app = typer.Typer(no_args_is_help=True, help="The transactional outbox and its "
                                                    "dead letters.")
app.add_typer(outbox_app, name="outbox")

def check_poll(value: float) -> float:
    """A poll interval of at least 50 ms (a smaller one only spins)."""
    if value * 20 < 1:
        raise typer.BadParameter("must be at least 0.05 (seconds)")
    return value


PollOpt = Annotated[float, typer.Option("--poll", callback=check_poll,
                                        help="Seconds to wait when no event is due.")]


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT or SIGTERM (main thread only; elsewhere signals stay as they are),
    and restore the previous handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop.set())
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_prepared = threading.Lock()


def prepare_jobs(settings: Settings) -> None:
    """Connect the configured gateways and install every feature's handlers (once)."""
    from payback import jobs
    from payback.gateways import registry
    from payback.outbox.worker import DEFAULT_REGISTRY

    with _prepared:
        registry.configure(settings)
        if DEFAULT_REGISTRY.handler_for("gateway.refund.submit") is None:
            jobs.install()


def sandbox_sender(settings: Settings):
    """``send(headers, body) -> status`` that POSTs a sandbox webhook to this server's
    ``/gateways/sandbox/webhooks``, as a real gateway would, over HTTP."""
    import httpx

    url = f"{settings.public_url.rstrip('/')}/gateways/sandbox/webhooks"
    client = httpx.Client(timeout=10)

    def send(headers: dict[str, str], body: bytes) -> int:
        return client.post(url, content=body, headers=headers).status_code
    return send


def start_sandbox_pump(settings: Settings, stop: threading.Event,
                       interval: float = 1) -> threading.Thread:
    """Play the sandbox gateway's servers: complete its due refunds and POST its webhooks."""
    send = sandbox_sender(settings)

    def _run() -> None:
        import logging

        from payback.gateways import registry

        sandbox = registry.get("sandbox")
        while not stop.is_set():
            try:
                sandbox.advance()
                sandbox.deliver_webhooks(send)
            except Exception:  # noqa: BLE001 - the pump outlives a bad moment; it logs
                logging.getLogger("payback.sandbox").exception("sandbox pump")
            stop.wait(interval)

    thread = threading.Thread(target=_run, name="payback-sandbox-pump", daemon=True)
    thread.start()
    return thread


def start_reconcile_schedule(settings: Settings, stop: threading.Event) -> threading.Thread | None:
    """Reconcile every configured gateway over the last ``reconcile_lookback_hours`` every
    ``reconcile_interval_hours`` (the first run one interval after start)."""
    if not settings.reconcile_interval_hours:
        return None

    def _run() -> None:
        import logging
        from datetime import timedelta

        from payback.clock import SystemClock
        from payback.db import make_engine
        from payback.gateways import reconcile, registry

        log = logging.getLogger("payback.reconcile")
        engine, clock = make_engine(settings.database_url), SystemClock()
        try:
            while not stop.wait(settings.reconcile_interval_hours * 3600):
                now = clock.now()
                for name in registry.names():
                    try:
                        report = reconcile.reconcile(
                            engine, clock, name,
                            now - timedelta(hours=settings.reconcile_lookback_hours), now)
                        log.info("reconciled %s: %d compared, %d differences, %d repaired",
                                 name, report.compared, len(report.differences),
                                 report.repaired)
                    except Exception:  # noqa: BLE001 - next run tries again
                        log.exception("reconciliation of %s failed", name)
        finally:
            engine.dispose()

    thread = threading.Thread(target=_run, name="payback-reconcile", daemon=True)
    thread.start()
    return thread


def start_worker_thread(settings: Settings, poll: float) -> tuple[threading.Thread,
                                                                  threading.Event]:
    """A daemon thread running ``run_worker`` on an engine of its own (``serve --with-worker``),
    with the sandbox pump and the scheduled reconciliation beside it. Set the event, then join
    the thread, to stop it."""
    stop = threading.Event()
    prepare_jobs(settings)
    start_sandbox_pump(settings, stop)
    start_reconcile_schedule(settings, stop)

    def _run() -> None:
        from payback.clock import SystemClock
        from payback.db import make_engine
        from payback.outbox.worker import run_worker

        engine = make_engine(settings.database_url)
        try:
            run_worker(engine, SystemClock(), stop_event=stop, poll_interval=poll,
                       max_attempts=settings.outbox_max_attempts)
        finally:
            engine.dispose()

    thread = threading.Thread(target=_run, name="payback-outbox-worker", daemon=True)
    thread.start()
    return thread, stop


@app.command("worker")
@mapped
def worker(once: Annotated[bool, typer.Option(
               "--once", help="Process every event due now, then exit.")] = False,
           poll: PollOpt = 1,
           batch: Annotated[int, typer.Option(min=1, help="Events claimed at a time.")] = 20,
           lease: Annotated[int, typer.Option(
               min=1, help="Seconds a claimed event stays this worker's; after that (the worker "
                           "died) another worker takes it over.")] = 300
           ) -> None:
    """Run the outbox worker until SIGINT/SIGTERM (several on PostgreSQL; one on SQLite)."""
    from payback.clock import SystemClock
    from payback.outbox.worker import default_worker_id, drain, run_worker

    settings = Settings()
    worker_id = default_worker_id()
    prepare_jobs(settings)
    with _engine(settings) as engine:
        if once:
            counts = drain(engine, SystemClock(), worker_id=worker_id, limit=batch,
                           max_attempts=settings.outbox_max_attempts,
                           lease=timedelta(seconds=lease))
        else:
            typer.echo(f"outbox worker {worker_id} on {_safe_url(settings.database_url)} "
                       f"(poll {poll:g} s; Ctrl+C to stop)")
            stop = threading.Event()
            start_reconcile_schedule(settings, stop)
            with stop_on_signals(stop):
                counts = run_worker(engine, SystemClock(), stop_event=stop, poll_interval=poll,
                                    worker_id=worker_id, limit=batch,
                                    max_attempts=settings.outbox_max_attempts,
                                    lease=timedelta(seconds=lease))
    c = counts.as_dict()
    typer.echo(f"processed {c['done'] + c['unhandled']} (no handler: {c['unhandled']}), "
               f"retried {c['retried']}, dead {c['dead']}, lost lease {c['lost']}")


@outbox_app.command("list")
@mapped
def outbox_list(status: Annotated[str | None, typer.Option(
                    help="pending, processing, done or dead.")] = None,
                topic: Annotated[str | None, typer.Option(
                    help="A topic, or a prefix ending in '.' (refund.).")] = None,
                limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 100,
                as_json: JsonOpt = False) -> None:
    """Outbox events, oldest first, with their attempts and last error."""
    from payback.db import read
    from payback.outbox.worker import list_events

    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_events(conn, status=status, topic=topic, limit=limit)
    if as_json:
        _echo_json(rows)
    elif not rows:
        Console().print("No outbox events match.")
    else:
        _print_wide(Console(), _events_table(rows))


def _events_table(rows: list[dict]) -> Table:
    from rich.markup import escape

    from payback.cli.core import _utc

    table = Table(title="Outbox events")
    for title in ("Id", "Topic", "Object", "Status", "Attempts", "Created (UTC)",
                  "Next run (UTC)", "Last error"):
        table.add_column(title, no_wrap=title != "Last error",
                         justify="right" if title == "Attempts" else "left")
    for r in rows:
        next_run = _utc(r["available_at"]) if r["status"] == "pending" else ""
        table.add_row(r["id"], escape(r["topic"]), r["object_id"], r["status"],
                      str(r["attempts"]), _utc(r["created_at"]), next_run,
                      escape(r["last_error"] or ""))
    return table


@outbox_app.command("retry")
@mapped
def outbox_retry(event_id: Annotated[str | None, typer.Argument(
                     help="The dead event to retry.")] = None,
                 all_dead: Annotated[bool, typer.Option(
                     "--all-dead", help="Retry every dead event.")] = False) -> None:
    """Put a dead event (or all of them) back to pending, due now, with attempts reset."""
    from payback.access.tables import DEFAULT_SELLER_ID
    from payback.errors import ValidationFailed
    from payback.outbox.worker import retry_dead

    if (event_id is None) == (not all_dead):
        raise ValidationFailed("give an EVENT_ID or --all-dead (not both)")
    settings = Settings()

    def _retry(conn, clock, _actor):
        ids = retry_dead(conn, clock.now(), event_id=event_id, all_dead=all_dead)
        return ids, (("outbox_event", event_id, {"revived": ids}) if ids else None)

    ids = audited_write(settings, "cli.outbox.retry", cli_actor(DEFAULT_SELLER_ID), _retry,
                        request={"event_id": event_id, "all_dead": all_dead},
                        target=("outbox_event", event_id))
    typer.echo(f"retried {len(ids)} event{'s' if len(ids) != 1 else ''}"
               + (": " + ", ".join(ids) if ids else ""))
