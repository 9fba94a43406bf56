"""Gateway and webhook throughput benchmark (issue 4): refunds per second end to end through
``payback worker`` and the sandbox gateway, and outbound webhook deliveries per second, each as a
ratio to the core refund path measured in the same run. PostgreSQL only.

What runs, in a fresh database ``payback_bench_gateway`` on 127.0.0.1:5432 (created, migrated
with ``payback.db.migrate.upgrade`` and dropped here; the sandbox gateway keeps its ``sandbox_*``
tables in the same database, as ``payback worker`` does by default on PostgreSQL). If the server
is unreachable the script prints ``skipped: …`` and exits 0.

- **core** (the reference): ``refunds.service.create_refund`` of an auto-approved EUR 10.00
  refund on an invoice paid by card WITHOUT a gateway, in this process, exactly as the
  ``service`` row of ``bench/refunds.py`` (its ``seed``, ``service_worker_factory`` and
  ``run_threads``, 4 threads), measured first and again after every timed row; each timed row's
  ratio is to the mean of the core rows just before and after it (the machine is shared, and
  drift must hit a figure and its reference alike). A 1-thread row shows what one sequential
  process does.
- **gateway e2e, 1 and 2 workers**: N refunds of invoices paid by a card captured through the
  sandbox are created in this process (they stop at ``processing`` with one gateway intent each
  and a ``gateway.refund.submit`` job). Their outbox events are held back (``available_at``
  moved 1000 days ahead), the ``payback worker --poll 0.05`` subprocesses are started and wait
  idle, then the events are released and the clock starts; it stops when the database (polled
  every 50 ms) shows every refund ``succeeded``. The sandbox answers at once
  (``PAYBACK_SANDBOX_BEHAVIOUR=async_completion=false``). Checked after: every refund succeeded,
  the sandbox holds exactly N refunds with those idempotency keys (exactly once), one call per
  intent.
- **webhooks, 1 and 2 workers**: one outbound endpoint subscribed to every event (``*``) points
  at a local ``ThreadingHTTPServer`` in this process that answers 200; K core refunds are made
  (5 business events each: refund.created, .approved, .processing, .succeeded and
  credit_note.issued), held, and released to the workers as above; the clock stops when every
  expected delivery (one per business event) is ``delivered``. Checked after: the receiver got
  each delivery once, none failed.

Events written while seeding (invoice.*, payment.captured, …) are marked done before a phase
(they are set-up, not the work measured). Every phase has a deadline and a watchdog ends the run.
Results: a table on stdout and ``bench/results/gateway-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from rich.table import Table
from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import refunds as core  # bench/refunds.py, the core refund benchmark

from payback import db
from payback.access.tables import DEFAULT_SELLER_ID
from payback.clock import SystemClock
from payback.customers.service import create_customer
from payback.db.migrate import upgrade
from payback.gateways import sandbox_state
from payback.gateways.sandbox import SandboxBehaviour, SandboxGateway
from payback.gateways.tables import gateway_intents
from payback.invoicing.service import create_invoice
from payback.payments.service import record_payment
from payback.refunds.tables import refunds
from payback.webhooks.service import create_endpoint
from payback.webhooks.tables import webhook_deliveries

BENCH_DIR = Path(__file__).resolve().parent
PG_DB = "payback_bench_gateway"
PG_URL = f"postgresql+psycopg://{core.PG_USER}@{core.PG_HOST}:{core.PG_PORT}/{PG_DB}"
POLL_SECONDS = 0.05
HOLD = "interval '1000 days'"      # how far ahead held outbox events are moved
WORKER_ENV = {"PAYBACK_DATABASE_URL": PG_URL, "PAYBACK_SANDBOX_DATABASE_URL": PG_URL,
              "PAYBACK_SANDBOX_BEHAVIOUR": "async_completion=false",
              "PAYBACK_RECONCILE_INTERVAL_HOURS": "0", "PYTHONUNBUFFERED": "1"}
console = core.console


@dataclass
class Row:
    name: str
    workers: int            # worker processes (core rows: threads in this process)
    count: int              # refunds succeeded, or webhook deliveries delivered
    unit: str               # refunds | deliveries
    seconds: float = 0.0
    rate: float = 0.0
    ratio: float | None = None
    reference: float | None = None      # the core refunds/s the ratio is taken to
    events: int | None = None            # outbox events done from release until drained
    drained_s: float | None = None       # until no outbox event was left pending
    cpu_ms: dict = field(default_factory=dict)   # CPU ms per unit: workers, postgres, bench
    notes: list[str] = field(default_factory=list)

    def finish(self, seconds: float) -> Row:
        self.seconds, self.rate = seconds, self.count / seconds if seconds else 0.0
        return self


# ------------------------------------------------------------------------------ CPU accounting


def _ticks(pid: int) -> int:
    return core.CpuMeter._proc_ticks(pid)


def _postgres_ticks() -> dict[int, int]:
    """CPU ticks of every PostgreSQL backend connected to the bench database."""
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if PG_DB.encode() in (entry / "cmdline").read_bytes():
                    out[int(entry.name)] = _ticks(int(entry.name))
            except OSError:
                pass
    return out


def cpu_snapshot(worker_pids: list[int]) -> dict:
    stat = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return {"workers": sum(_ticks(p) for p in worker_pids), "bench": _ticks(os.getpid()),
            "postgres": _postgres_ticks(), "busy": sum(stat) - stat[3] - stat[4],
            "all": sum(stat)}


def cpu_per_unit(before: dict, after: dict, units: int) -> dict:
    """CPU ms per refund (or delivery) of the worker processes, the PostgreSQL backends of the
    bench database and this process (which polls, and hosts the webhook receiver; for a core
    row it is the refund path itself), and how busy the whole machine was."""
    hz = os.sysconf("SC_CLK_TCK")
    pg = sum(t - before["postgres"].get(pid, 0) for pid, t in after["postgres"].items())
    used = {"workers": after["workers"] - before["workers"], "postgres": pg,
            "bench": after["bench"] - before["bench"]}
    out = {k: round(1000 * v / hz / max(units, 1), 2) for k, v in used.items()}
    busy, total = after["busy"] - before["busy"], after["all"] - before["all"]
    out["machine_busy_pct"] = round(100 * busy / max(total, 1))
    return out


# ------------------------------------------------------------------------------ database set-up


def create_database() -> str | None:
    """Drop and create the bench database; the reason when PostgreSQL is unreachable."""
    try:
        core.pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        core.pg_admin(f'CREATE DATABASE "{PG_DB}"')
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    upgrade(PG_URL)
    return None


def drop_database() -> None:
    core.pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def seed_gateway(engine, sandbox: SandboxGateway, count: int, batch: int = 100) -> list[str]:
    """``count`` EUR invoices, each fully paid by a card captured through the sandbox (the
    sandbox payment is made first, outside Payback's transaction, as a real capture would)."""
    clock, ids = SystemClock(), []
    with db.write(engine) as conn:
        customers = [create_customer(conn, clock, name=f"Gateway bench customer {i}")["id"]
                     for i in range(20)]
    for start in range(0, count, batch):
        with db.write(engine) as conn:
            invoices = [create_invoice(conn, clock, customer_id=customers[i % 20],
                                       currency="EUR", tax_mode="exclusive",
                                       lines=core.ITEMS["typical"])
                        for i in range(start, min(start + batch, count))]
        references = [sandbox.create_payment(inv["total_minor"], "EUR", card="tok_visa")
                      for inv in invoices]
        with db.write(engine) as conn:
            for inv, reference in zip(invoices, references):
                record_payment(conn, clock, inv["id"], method="card",
                               amount_minor=inv["total_minor"], currency="EUR",
                               card={"token": "tok_visa", "brand": "visa", "last4": "4242"},
                               reference=reference, gateway="sandbox")
                ids.append(inv["id"])
    return ids


def make_refunds(engine, invoice_ids: list[str], threads: int = 4) -> list[str]:
    """One core-path ``create_refund`` per invoice (4 threads); returns the refund ids."""
    made = core.run_threads(core.service_worker_factory(engine, core.TYPICAL_AMOUNT),
                            invoice_ids, threads, time.monotonic() + 600)
    if made.errors:
        raise RuntimeError(f"{len(made.errors)} refunds failed: {made.errors[0][:300]}")
    with db.read(engine) as conn:
        return list(conn.execute(select(refunds.c.id)
                                 .where(refunds.c.invoice_id.in_(invoice_ids))).scalars())


def settle_setup_events(engine) -> int:
    """Mark every pending outbox event done: what seeding emitted is not the work measured."""
    with db.write(engine) as conn:
        return conn.execute(text(
            "UPDATE outbox_events SET status = 'done', processed_at = now(), "
            "last_error = 'bench: set-up event, not processed' WHERE status = 'pending'")).rowcount


def shift_pending(engine, sign: str) -> int:
    """Hold (``+``) or release (``-``) every pending outbox event by moving ``available_at``."""
    with db.write(engine) as conn:
        return conn.execute(text(
            f"UPDATE outbox_events SET available_at = available_at {sign} {HOLD} "
            "WHERE status = 'pending'")).rowcount


def scalar(engine, sql: str, **params) -> int:
    with db.read(engine) as conn:
        return conn.execute(text(sql), params).scalar_one()


def open_events(engine) -> int:
    return scalar(engine, "SELECT count(*) FROM outbox_events "
                          "WHERE status IN ('pending', 'processing')")


def done_events(engine) -> int:
    return scalar(engine, "SELECT count(*) FROM outbox_events WHERE status = 'done'")


# ------------------------------------------------------------------------------ worker processes


class Workers:
    """``k`` ``payback worker --poll 0.05`` subprocesses on the bench database, stopped with
    SIGTERM (each finishes its batch and prints what it did)."""

    def __init__(self, k: int, workdir: Path, label: str, profile: bool = False):
        exe = Path(sys.executable).with_name("payback")
        cmd = [str(exe) if exe.exists() else shutil.which("payback") or "payback",
               "worker", "--poll", str(POLL_SECONDS)]
        env = dict(os.environ, **WORKER_ENV)
        self.logs = [workdir / f"{label}-worker{i}.log" for i in range(k)]
        self.profiles = [log.with_suffix(".prof") for log in self.logs] if profile else []
        self.procs = []
        for i, log in enumerate(self.logs):
            # --profile: the worker runs under cProfile, which writes its stats when the
            # worker returns after SIGTERM.
            prefix = ([sys.executable, "-m", "cProfile", "-o", str(self.profiles[i])]
                      if profile else [])
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(prefix + cmd, env=env, cwd=workdir,
                                                   stdout=out, stderr=subprocess.STDOUT))

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def wait_ready(self, timeout: float = 60) -> None:
        """Until every worker has printed its banner (it is then in its claim loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, log in zip(self.procs, self.logs):
                if proc.poll() is not None:
                    raise RuntimeError(f"worker exited: {log.read_text()[-800:]}")
            if all(b"outbox worker" in log.read_bytes() for log in self.logs):
                return
            time.sleep(POLL_SECONDS)
        raise RuntimeError(f"workers not ready within {timeout:.0f} s")

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> list[str]:
        """SIGTERM each worker (never a broad kill); the last line each printed."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return [(log.read_text().strip().splitlines() or [""])[-1] for log in self.logs]


def wait_until(done: Callable[[], bool], deadline: float, workers: Workers) -> bool:
    """Poll ``done`` every 50 ms until it holds (True) or the deadline passes (False)."""
    while time.monotonic() < deadline:
        if done():
            return True
        if not workers.alive():
            raise RuntimeError("a worker died during the phase")
        time.sleep(POLL_SECONDS)
    return False


@dataclass
class Window:
    """What one timed phase measured, between the release of the events and completion."""

    seconds: float
    completed: bool
    drained_s: float | None
    events: int
    cpu: dict
    worker_lines: list[str]


@dataclass
class Setup:
    """Where and how long the timed phases run."""

    workdir: Path
    timeout: float
    profile: bool = False


def timed_phase(engine, k: int, setup: Setup, label: str, units: int,
                done: Callable[[], bool]) -> Window:
    """Start ``k`` workers on held events, release them, time until ``done``; then wait (a
    little) for the outbox to drain, and stop the workers."""
    shift_pending(engine, "+")
    workers = Workers(k, setup.workdir, label, setup.profile)
    try:
        workers.wait_ready()
        done_before = done_events(engine)
        cpu0 = cpu_snapshot(workers.pids)
        shift_pending(engine, "-")
        t0 = time.perf_counter()
        deadline = time.monotonic() + setup.timeout
        completed = wait_until(done, deadline, workers)
        seconds = time.perf_counter() - t0
        cpu = cpu_per_unit(cpu0, cpu_snapshot(workers.pids), units)
        drained = wait_until(lambda: open_events(engine) == 0,
                             min(deadline, time.monotonic() + 30), workers)
        drained_s = time.perf_counter() - t0 if drained else None
        events = done_events(engine) - done_before
    finally:
        lines = workers.stop()
        summarise_profiles(workers.profiles)
    return Window(seconds, completed, drained_s, events, cpu, lines)


def summarise_profiles(paths: list[Path], top: int = 60) -> None:
    """``<worker>.prof`` → ``<worker>.prof.txt``: the top functions by cumulative time, the
    top Payback functions by cumulative time, and the top functions by own time."""
    for path in paths:
        if path.exists():
            buf = io.StringIO()
            stats = pstats.Stats(str(path), stream=buf)
            stats.sort_stats("cumulative").print_stats(top)
            stats.print_stats("/payback/", top)
            stats.sort_stats("tottime").print_stats(top // 2)
            path.with_suffix(".prof.txt").write_text(buf.getvalue())


# ------------------------------------------------------------------------------ the rows


def core_row(engine, n: int, warmup: int, threads: int, name: str) -> Row:
    """The core refund path, as bench/refunds.py's ``service`` row measures it."""
    ids = core.seed(engine, n + warmup)
    make = core.service_worker_factory(engine, core.TYPICAL_AMOUNT)
    core.run_threads(make, ids[:warmup], threads, time.monotonic() + 120)
    cpu0 = cpu_snapshot([])
    run = core.run_threads(make, ids[warmup:], threads, time.monotonic() + 300)
    row = Row(name, threads, len(run.latencies), "refunds").finish(run.seconds)
    row.cpu_ms = cpu_per_unit(cpu0, cpu_snapshot([]), row.count)
    if run.errors:
        row.notes.append(f"{len(run.errors)} errors; first: {run.errors[0][:200]}")
    settle_setup_events(engine)
    return row


def gateway_row(engine, sandbox: SandboxGateway, n: int, k: int, setup: Setup) -> Row:
    """N refunds through the worker and the sandbox gateway with ``k`` workers."""
    ids = seed_gateway(engine, sandbox, n)
    settle_setup_events(engine)
    refund_ids = make_refunds(engine, ids)
    sandbox_before = sandbox.count_refunds()

    def all_succeeded() -> bool:
        return scalar(engine, "SELECT count(*) FROM refunds WHERE status = 'processing'") == 0

    w = timed_phase(engine, k, setup, f"gateway{k}", n, all_succeeded)
    row = _from_window(Row(f"gateway e2e, {k} worker{'s' * (k > 1)}", k, n, "refunds"), w)
    row.notes += check_gateway(engine, sandbox, refund_ids, sandbox_before)
    return row


def check_gateway(engine, sandbox: SandboxGateway, refund_ids: list[str],
                  sandbox_before: int) -> list[str]:
    """Every refund succeeded, and the sandbox made exactly one refund for each."""
    problems = []
    with db.read(engine) as conn:
        statuses = dict(conn.execute(select(refunds.c.status, func.count())
                                     .where(refunds.c.id.in_(refund_ids))
                                     .group_by(refunds.c.status)).all())
        calls = conn.execute(select(func.count(), func.sum(gateway_intents.c.calls))
                             .where(gateway_intents.c.refund_id.in_(refund_ids))).one()
    sr = sandbox_state.sandbox_refunds
    with db.read(engine) as conn:     # the sandbox's tables live in the same database
        keys = conn.execute(select(func.count(), func.count(sr.c.idempotency_key.distinct()))
                            .where(sr.c.idempotency_key.in_(refund_ids))).one()
    n = len(refund_ids)
    if statuses != {"succeeded": n}:
        problems.append(f"CHECK FAILED: refund statuses {statuses}")
    if tuple(keys) != (n, n) or sandbox.count_refunds() - sandbox_before != n:
        problems.append(f"CHECK FAILED: sandbox refunds {tuple(keys)} for {n} refunds")
    if tuple(calls) != (n, n):
        problems.append(f"CHECK FAILED: intents and gateway calls {tuple(calls)} for {n}")
    return problems or [(f"checked: {n} succeeded, sandbox holds exactly {n} (one per key), "
                         f"{n} gateway calls")]


class Receiver:
    """A fast local webhook endpoint: answers 200 to every POST and counts event ids."""

    def __init__(self):
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                key = f"{self.headers.get('Payback-Event-Id')}"
                with receiver.lock:
                    receiver.seen[key] = receiver.seen.get(key, 0) + 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/payback-webhooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def received(self) -> tuple[int, int]:
        with self.lock:
            return sum(self.seen.values()), len(self.seen)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def register_endpoint(engine, url: str) -> str:
    with db.write(engine) as conn:
        return create_endpoint(conn, SystemClock(), seller_id=DEFAULT_SELLER_ID, url=url,
                               event_types=["*"], description="gateway bench receiver")["id"]


def webhook_row(engine, receiver: Receiver, refunds_k: int, k: int, setup: Setup) -> Row:
    """Deliveries of the business events of ``refunds_k`` core refunds with ``k`` workers."""
    ids = core.seed(engine, refunds_k)
    settle_setup_events(engine)
    make_refunds(engine, ids)
    expected = scalar(engine, "SELECT count(*) FROM outbox_events WHERE status = 'pending'")
    delivered_before = _delivered(engine)
    received_before, _ = receiver.received()

    def all_delivered() -> bool:
        return _delivered(engine) - delivered_before >= expected

    w = timed_phase(engine, k, setup, f"webhooks{k}", expected, all_delivered)
    row = _from_window(Row(f"webhooks, {k} worker{'s' * (k > 1)}", k, expected, "deliveries"),
                       w)
    posts = receiver.received()[0] - received_before
    failed = scalar(engine, "SELECT count(*) FROM webhook_deliveries WHERE status = 'failed'")
    got = _delivered(engine) - delivered_before
    if (got, posts, failed) != (expected, expected, 0):
        row.notes.append(f"CHECK FAILED: {got} delivered, {posts} POSTs received, {failed} "
                         f"failed, for {expected} business events")
    else:
        row.notes.append(f"checked: {expected} business events of {refunds_k} refunds, "
                         f"{expected} delivered, {posts} POSTs received, none failed")
    return row


def _delivered(engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(webhook_deliveries)
                            .where(webhook_deliveries.c.status == "delivered")).scalar_one()


def _from_window(row: Row, w: Window) -> Row:
    row.finish(w.seconds)
    row.events, row.drained_s, row.cpu_ms = w.events, w.drained_s, w.cpu
    if not w.completed:
        row.notes.append(f"STOPPED at the phase deadline ({w.seconds:.0f} s): incomplete")
    row.notes += [f"worker: {line}" for line in w.worker_lines if line]
    return row


# ------------------------------------------------------------------------------ main


@dataclass
class Plan:
    core_n: int
    core_1_n: int
    gateway_n: int
    webhook_refunds: int
    timeout: float
    profile: bool


def parse_args(argv=None) -> Plan:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=600,
                   help="refunds per gateway end-to-end phase, and per core row (600)")
    p.add_argument("--webhook-refunds", type=int, default=240,
                   help="core refunds whose 5 business events each are delivered (240)")
    p.add_argument("--phase-timeout", type=float, default=300.0,
                   help="seconds after which a timed phase is stopped (300)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --n 150 --webhook-refunds 60 --phase-timeout 120")
    p.add_argument("--profile", action="store_true",
                   help="run every worker under cProfile and keep the top functions in "
                        "bench/results/ (diagnostic: the figures of such a run are inflated)")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.webhook_refunds, a.phase_timeout = 150, 60, 120.0
    return Plan(a.n, max(100, a.n // 2), a.n, a.webhook_refunds, a.phase_timeout, a.profile)


def _watchdog(plan: Plan) -> None:
    limit = 6 * plan.timeout + 900

    def fire() -> None:
        console.print(f"[red]benchmark exceeded {limit:.0f} s; aborting[/red]")
        os._exit(3)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()


def run(plan: Plan, workdir: Path) -> list[Row]:
    """Core, then each timed row followed by a core row again: every timed row's ratio is to
    the mean of the core rows measured just before and just after it, so that drift of a
    shared machine hits the figure and its reference alike."""
    setup = Setup(workdir, plan.timeout, plan.profile)
    engine = db.make_engine(PG_URL)
    sandbox = SandboxGateway(PG_URL, webhook_secret="whsec_bench_gateway",
                             behaviour=SandboxBehaviour(async_completion=False))
    receiver = Receiver()
    warm = max(20, plan.core_n // 10)

    def core4(i: int) -> Row:
        return core_row(engine, plan.core_n, warm, 4, f"core #{i}")

    phases: list[tuple[str, Callable[[int], Row]]] = [
        ("gateway", lambda k: gateway_row(engine, sandbox, plan.gateway_n, k, setup)),
        ("webhooks", lambda k: webhook_row(engine, receiver, plan.webhook_refunds, k, setup))]
    try:
        before = core4(1)
        single = core_row(engine, plan.core_1_n, warm, 1, "core, 1 thread")
        _ratio(single, before.rate)
        rows = [before, single]
        for kind, measure in phases:
            if kind == "webhooks":
                register_endpoint(engine, receiver.url)
            for k in (1, 2):
                console.print(f"{kind}, {k} worker(s) …")
                row = measure(k)
                after = core4(len([r for r in rows if r.name.startswith("core #")]) + 1)
                _ratio(row, statistics.mean((before.rate, after.rate)))
                rows += [row, after]
                before = after
    finally:
        receiver.close()
        sandbox.dispose()
        engine.dispose()
    reference = reference_of(rows)
    for r in rows:
        if r.name.startswith("core #"):
            _ratio(r, reference)
    return rows


def _ratio(row: Row, reference: float) -> None:
    row.reference = reference
    row.ratio = row.rate / reference if reference else None


def reference_of(rows: list[Row]) -> float:
    """The run's overall core figure: the mean of every 4-thread core row."""
    return statistics.mean(r.rate for r in rows if r.name.startswith("core #"))


def print_table(rows: list[Row], reference: float) -> None:
    table = Table(title="Gateway and webhook throughput on PostgreSQL. ratio = per second / "
                        "'to', the core refund path (4 threads) of this run: for a timed row "
                        "the mean of the core rows just before and after it; for a core row "
                        f"the mean of all of them ({reference:.0f} refunds/s)")
    for title in ("name", "workers", "count", "seconds", "per second", "ratio", "to",
                  "events", "drained s", "CPU ms/unit: workers + PG + bench", "busy %"):
        table.add_column(title, justify="left" if title == "name" else "right")
    for r in rows:
        c = r.cpu_ms
        cpu = f"{c['workers']:.1f} + {c['postgres']:.1f} + {c['bench']:.1f}" if c else ""
        table.add_row(r.name, str(r.workers), f"{r.count} {r.unit}", f"{r.seconds:.2f}",
                      f"{r.rate:.1f}", f"{r.ratio:.2f}" if r.ratio is not None else "",
                      f"{r.reference:.0f}" if r.reference else "",
                      "" if r.events is None else str(r.events),
                      "" if r.drained_s is None else f"{r.drained_s:.2f}", cpu,
                      str(c.get("machine_busy_pct", "")))
    console.print(table)
    for r in rows:
        for note in r.notes:
            console.print(f"  {r.name}: {note}")


def keep_files(workdir: Path, stamp: str) -> None:
    """Copy the workers' profile summaries, and the logs of workers that failed, to
    bench/results/ before the work directory goes."""
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    for path in workdir.glob("*.prof.txt"):
        shutil.copy(path, results / f"gateway-{stamp}-{path.name}")
    for log in workdir.glob("*.log"):
        if "Traceback" in log.read_text(errors="replace"):
            shutil.copy(log, results / f"gateway-{stamp}-{log.name}")


def main(argv=None) -> int:
    plan = parse_args(argv)
    info = core.machine()
    console.print(f"[bold]Payback gateway and webhook benchmark[/bold]  {info['nproc']} CPU "
                  f"({info['cpu']}), PostgreSQL {core.pg_version() or 'unreachable'}")
    console.print(f"core n={plan.core_n} (1 thread: {plan.core_1_n}); gateway n="
                  f"{plan.gateway_n} per worker count; webhooks: {plan.webhook_refunds} refunds"
                  + ("; [yellow]--profile: workers under cProfile, figures inflated[/yellow]"
                     if plan.profile else ""))
    reason = create_database()
    if reason is not None:
        console.print(f"[yellow]skipped: PostgreSQL not reachable at {core.PG_HOST}:"
                      f"{core.PG_PORT} ({reason})[/yellow]")
        return 0
    _watchdog(plan)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = Path(tempfile.mkdtemp(prefix="payback-bench-gateway-"))
    load_start = os.getloadavg()
    try:
        rows = run(plan, workdir)
    finally:
        drop_database()
        keep_files(workdir, stamp)
        shutil.rmtree(workdir, ignore_errors=True)
    reference = reference_of(rows)
    print_table(rows, reference)
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    out = results / f"gateway-{stamp}.json"
    out.write_text(json.dumps({"timestamp": stamp, "command": " ".join(sys.argv),
                               "machine": info, "plan": asdict(plan),
                               "loadavg": [load_start, os.getloadavg()],
                               "reference_refunds_per_s": reference,
                               "rows": [asdict(r) for r in rows]}, indent=2, default=str))
    console.print(f"results written to {out.relative_to(BENCH_DIR.parent)}")
    return 1 if any("CHECK FAILED" in n for r in rows for n in r.notes) else 0


if __name__ == "__main__":
    sys.exit(main())
