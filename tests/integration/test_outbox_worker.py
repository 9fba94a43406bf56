"""The outbox worker (payback.outbox.worker) and its CLI, on SQLite and PostgreSQL.

Covers: handlers matched by exact topic and by prefix run once per event and mark it done in
the same transaction; an event without a handler is marked done with a note; a failing handler
is retried with full-jitter exponential backoff (exact ``available_at`` under a seeded RNG),
keeps a masked ``last_error`` and is dead-lettered at the bound; ``payback outbox retry``
revives a dead event (audited) and refuses a live or missing one; an expired lease is reclaimed
(counted as an attempt) and the stale worker commits nothing; the status CHECK; two workers on
PostgreSQL (one on SQLite) drain 1,000 events into a table with a UNIQUE constraint with every
event processed exactly once; ``payback worker --once``, ``outbox list``, ``serve
--with-worker``, and a real ``payback worker`` process stopped by SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Column, MetaData, String, Table, exc, func, insert, select, update
from typer.testing import CliRunner

from payback.cli import app
from payback.clock import SystemClock
from payback.db import make_engine, read, write
from payback.outbox.service import emit, emit_many, outbox_row
from payback.outbox.tables import outbox_events
from payback.outbox.worker import (
    NO_HANDLER,
    Registry,
    backoff,
    claim,
    describe_error,
    drain,
    process,
    retry_dead,
)

postgres_only = pytest.mark.parametrize(
    "db_url", [pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)],
    indirect=True)

T = outbox_events.c


def _emit(engine, clock, *topics: str) -> list[str]:
    with write(engine) as conn:
        return [emit(conn, topic, f"obj_{i}", {"n": i}, clock.now())
                for i, topic in enumerate(topics)]


def _event(engine, event_id: str) -> dict:
    with read(engine) as conn:
        return dict(conn.execute(select(outbox_events).where(T.id == event_id)).one()._mapping)


def _cli(db_url: str, *args: str):
    return CliRunner().invoke(app, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                     "COLUMNS": "220"})


class _Boom(Exception):
    pass


# ------------------------------------------------------------------------ handlers, once


def test_handlers_run_once_per_event_by_topic_and_prefix(engine, clock) -> None:
    seen: list[tuple[str, str]] = []
    reg = Registry()
    reg.register("refund.", lambda conn, e: seen.append(("prefix", e["id"])))
    reg.register("refund.failed", lambda conn, e: seen.append(("exact", e["id"])))
    reg.register("invoice.*", lambda conn, e: seen.append(("star", e["id"])))
    created, failed, invoice, orphan = _emit(engine, clock, "refund.created", "refund.failed",
                                             "invoice.created", "customer.created")

    counts = drain(engine, clock, worker_id="w1", registry=reg, max_attempts=3)

    assert sorted(seen) == sorted([("prefix", created), ("exact", failed), ("star", invoice)])
    assert (counts.done, counts.unhandled, counts.retried, counts.dead) == (3, 1, 0, 0)
    for event_id in (created, failed, invoice):
        row = _event(engine, event_id)
        assert (row["status"], row["attempts"], row["processed_at"], row["locked_by"],
                row["last_error"]) == ("done", 0, clock.now(), None, None)
    row = _event(engine, orphan)
    assert (row["status"], row["last_error"]) == ("done", NO_HANDLER)
    assert drain(engine, clock, registry=reg, max_attempts=3).claimed == 0
    assert len(seen) == 3


def test_handler_writes_commit_with_done_or_not_at_all(engine, clock) -> None:
    """The handler's writes and the status change share one transaction."""
    (event_id,) = _emit(engine, clock, "x.fail")

    def handler(conn, event):
        conn.execute(update(outbox_events).where(T.id == event["id"]).values(topic="x.changed"))
        raise _Boom("after writing")

    reg = Registry()
    reg.register("x.fail", handler)
    drain(engine, clock, registry=reg, max_attempts=5, rng=random.Random(1))
    row = _event(engine, event_id)
    assert (row["topic"], row["status"], row["attempts"]) == ("x.fail", "pending", 1)


# ------------------------------------------------------------------- retries, dead letter


def test_backoff_is_full_jitter_with_base_2s_and_cap_1h() -> None:
    class Top:
        def random(self) -> float:
            return 1.0

    assert [backoff(n, Top()).total_seconds() for n in (1, 2, 3, 12, 13, 30, 500)] == \
        [2, 4, 8, 3600, 3600, 3600, 3600]
    rng, twin = random.Random(3), random.Random(3)
    assert backoff(4, rng) == timedelta(seconds=16 * twin.random())


def test_failing_handler_backs_off_then_is_dead_lettered(engine, clock) -> None:
    (event_id,) = _emit(engine, clock, "gateway.refund")
    calls: list[int] = []

    def handler(conn, event):
        calls.append(1)
        raise _Boom("declined for 4242 4242 4242 4242 with password=hunter2 " + "x" * 900)

    reg = Registry()
    reg.register("gateway.refund", handler)
    rng, twin = random.Random(42), random.Random(42)

    for attempt, ceiling in ((1, 2), (2, 4)):
        counts = drain(engine, clock, registry=reg, rng=rng, max_attempts=3)
        assert (counts.retried, counts.dead) == (1, 0)
        row = _event(engine, event_id)
        delay = timedelta(seconds=ceiling * twin.random())
        assert (row["status"], row["attempts"], row["available_at"], row["locked_by"]) == \
            ("pending", attempt, clock.now() + delay, None)
        assert drain(engine, clock, registry=reg, rng=rng, max_attempts=3).claimed == 0
        clock.advance(seconds=delay.total_seconds())

    counts = drain(engine, clock, registry=reg, rng=rng, max_attempts=3)
    assert (counts.retried, counts.dead, len(calls)) == (0, 1, 3)
    row = _event(engine, event_id)
    assert (row["status"], row["attempts"]) == ("dead", 3)
    assert row["last_error"].startswith("_Boom: declined for [card number] with password=***")
    assert "4242" not in row["last_error"] and "hunter2" not in row["last_error"]
    assert len(row["last_error"]) == 500
    clock.advance(days=30)
    assert drain(engine, clock, registry=reg, max_attempts=3).claimed == 0

    with write(engine) as conn:
        assert retry_dead(conn, clock.now(), event_id=event_id) == [event_id]
    reg.register("gateway.refund", lambda conn, e: calls.append(2))
    assert drain(engine, clock, registry=reg, max_attempts=3).done == 1
    row = _event(engine, event_id)
    assert (row["status"], row["attempts"], row["last_error"], calls[-1]) == ("done", 0, None, 2)


def test_describe_error_masks_secrets() -> None:
    text = describe_error(RuntimeError(
        "postgresql://app:s3cret@db/x Authorization: Bearer abcdefghijkl token=zzz "
        "pb_ab12_SECRETPART"))
    assert text == ("RuntimeError: postgresql://app:***@db/x Authorization: *** token=*** "
                    "pb_***")


def test_cli_outbox_retry_revives_dead_events_and_is_audited(engine, db_url, clock) -> None:
    ids = _emit(engine, clock, "a.one", "a.two", "a.three")
    with write(engine) as conn:
        conn.execute(update(outbox_events).where(T.id.in_(ids[:2])).values(
            status="dead", attempts=12, last_error="_Boom: no"))

    listed = _cli(db_url, "outbox", "list", "--status", "dead", "--json")
    assert listed.exit_code == 0, listed.output
    assert [(e["id"], e["status"], e["attempts"]) for e in json.loads(listed.stdout)] == \
        [(ids[0], "dead", 12), (ids[1], "dead", 12)]
    table = _cli(db_url, "outbox", "list")
    assert table.exit_code == 0 and "_Boom: no" in table.stdout and ids[2] in table.stdout

    refused = _cli(db_url, "outbox", "retry", ids[2])
    assert (refused.exit_code, refused.stderr.split(":")[0]) == (2, "error[conflict]")
    missing = _cli(db_url, "outbox", "retry", "evt_nope")
    assert (missing.exit_code, missing.stderr.split(":")[0]) == (2, "error[not_found]")
    neither = _cli(db_url, "outbox", "retry")
    assert (neither.exit_code, neither.stderr.split(":")[0]) == (2, "error[validation_failed]")

    one = _cli(db_url, "outbox", "retry", ids[0])
    assert (one.exit_code, one.stdout) == (0, f"retried 1 event: {ids[0]}\n")
    rest = _cli(db_url, "outbox", "retry", "--all-dead")
    assert (rest.exit_code, rest.stdout) == (0, f"retried 1 event: {ids[1]}\n")
    for event_id in ids[:2]:
        row = _event(engine, event_id)
        assert (row["status"], row["attempts"]) == ("pending", 0)
        assert row["available_at"] <= datetime.now(UTC)

    from payback.audit.service import query
    with read(engine) as conn:
        records = query(conn, action="cli.outbox.retry", limit=10)
    assert [(r["outcome"], r["object_id"], r["summary"].get("after")) for r in records] == [
        ("refused", ids[2], None), ("refused", "evt_nope", None),
        ("allowed", ids[0], {"revived": [ids[0]]}), ("allowed", None, {"revived": [ids[1]]})]

    once = _cli(db_url, "worker", "--once")
    assert (once.exit_code, once.stdout) == (
        0, "processed 3 (no handler: 0), retried 0, dead 0, lost lease 0\n")
    assert {_event(engine, i)["status"] for i in ids} == {"done"}


def test_status_check_refuses_unknown_values(engine, clock) -> None:
    (event_id,) = _emit(engine, clock, "a.b")
    with pytest.raises(exc.IntegrityError), write(engine) as conn:
        conn.execute(update(outbox_events).where(T.id == event_id).values(status="lost"))


# ------------------------------------------------------------------------------- leases


def test_expired_lease_is_reclaimed_and_the_stale_worker_commits_nothing(engine, clock) -> None:
    (event_id,) = _emit(engine, clock, "a.slow")
    ran: list[str] = []
    reg = Registry()
    reg.register("a.", lambda conn, e: ran.append(e["locked_by"]))

    (stale,) = claim(engine, worker_id="w1", limit=10, now=clock.now(),
                     lease=timedelta(seconds=60), max_attempts=5)
    assert (stale["status"], stale["locked_by"], stale["locked_until"]) == \
        ("processing", "w1", clock.now() + timedelta(seconds=60))
    assert claim(engine, worker_id="w2", limit=10, now=clock.now() + timedelta(seconds=59),
                 max_attempts=5) == []

    clock.advance(seconds=60)
    (fresh,) = claim(engine, worker_id="w2", limit=10, now=clock.now(), max_attempts=5)
    assert (fresh["id"], fresh["locked_by"], fresh["attempts"], fresh["last_error"]) == \
        (event_id, "w2", 1, "lease expired: worker w1 did not finish")

    assert process(engine, stale, clock=clock, worker_id="w1", registry=reg) == "lost"
    assert ran == []
    assert process(engine, fresh, clock=clock, worker_id="w2", registry=reg) == "done"
    assert ran == ["w2"]
    assert _event(engine, event_id)["status"] == "done"


def test_expired_lease_at_the_bound_is_dead_lettered(engine, clock) -> None:
    (event_id,) = _emit(engine, clock, "a.crashes")
    claim(engine, worker_id="w1", limit=1, now=clock.now(), lease=timedelta(seconds=5),
          max_attempts=2)
    clock.advance(seconds=5)
    (again,) = claim(engine, worker_id="w2", limit=1, now=clock.now(),
                     lease=timedelta(seconds=5), max_attempts=2)
    assert again["attempts"] == 1
    clock.advance(seconds=5)
    assert claim(engine, worker_id="w3", limit=1, now=clock.now(), max_attempts=2) == []
    row = _event(engine, event_id)
    assert (row["status"], row["attempts"], row["last_error"]) == \
        ("dead", 2, "lease expired: worker w2 did not finish")


# ------------------------------------------------------------------------ many events


@pytest.fixture
def seen_table(engine):
    """A table outside the app's schema: one row per handled event (UNIQUE event id)."""
    md = MetaData()
    table = Table("outbox_test_seen", md, Column("event_id", String(40), unique=True,
                                                 nullable=False),
                  Column("worker", String(80), nullable=False))
    md.drop_all(engine)
    md.create_all(engine)
    yield table
    md.drop_all(engine)


def _queue(engine, clock, n: int) -> set[str]:
    rows = [outbox_row("load.test", f"obj_{i}", {"i": i}, clock.now()) for i in range(n)]
    with write(engine) as conn:
        emit_many(conn, rows)
    return {r["id"] for r in rows}


def _recording_registry(table) -> Registry:
    reg = Registry()
    reg.register("load.", lambda conn, e: conn.execute(
        insert(table), {"event_id": e["id"], "worker": e["locked_by"]}))
    return reg


def _assert_all_once(engine, table, ids: set[str]) -> dict[str, int]:
    with read(engine) as conn:
        seen = conn.execute(select(table.c.event_id, table.c.worker)).all()
        statuses = conn.execute(select(T.status, T.attempts, func.count())
                                .group_by(T.status, T.attempts)).all()
    assert len(seen) == len(ids) and {s for s, _ in seen} == ids
    assert statuses == [("done", 0, len(ids))]
    per_worker: dict[str, int] = {}
    for _, worker in seen:
        per_worker[worker] = per_worker.get(worker, 0) + 1
    return per_worker


@postgres_only
def test_two_workers_drain_1000_events_exactly_once_on_postgresql(db_url, engine, clock,
                                                                  seen_table) -> None:
    ids = _queue(engine, clock, 1000)
    reg = _recording_registry(seen_table)
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def work(name: str) -> None:
        own = make_engine(db_url, pool_size=2)
        try:
            start.wait()
            results[name] = drain(own, clock, worker_id=name, limit=10, registry=reg,
                                  max_attempts=3)
        except BaseException as err:  # noqa: BLE001 - reported below
            results[name] = err
        finally:
            own.dispose()

    threads = [threading.Thread(target=work, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(not isinstance(r, BaseException) for r in results.values()), results
    assert sum(r.done for r in results.values()) == 1000
    assert sum(r.retried + r.dead + r.lost for r in results.values()) == 0
    per_worker = _assert_all_once(engine, seen_table, ids)
    assert set(per_worker) == {"w1", "w2"} and sum(per_worker.values()) == 1000


def test_one_worker_drains_1000_events_exactly_once(engine, clock, seen_table) -> None:
    ids = _queue(engine, clock, 1000)
    counts = drain(engine, clock, worker_id="solo", limit=50,
                   registry=_recording_registry(seen_table), max_attempts=3)
    assert (counts.done, counts.retried, counts.dead, counts.lost) == (1000, 0, 0, 0)
    assert _assert_all_once(engine, seen_table, ids) == {"solo": 1000}


# ------------------------------------------------------------------- running processes


def _wait_done(engine, event_id: str, seconds: float = 15) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = _event(engine, event_id)["status"]
        if status == "done":
            return status
        time.sleep(0.05)
    return _event(engine, event_id)["status"]


def test_serve_with_worker_processes_events_beside_the_server(engine, db_url, monkeypatch):
    import uvicorn

    (event_id,) = _emit(engine, SystemClock(), "a.served")
    seen = {}

    def fake_run(app_, **kw):  # the server "runs" until the worker has done the event
        seen["status"] = _wait_done(engine, event_id)
        app_.state.engine.dispose()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    result = _cli(db_url, "serve", "--with-worker", "--worker-poll", "0.05")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Outbox worker: running beside the server" in result.stdout
    assert seen["status"] == "done"
    assert not [t for t in threading.enumerate() if t.name == "payback-outbox-worker"]


def test_worker_process_stops_cleanly_on_sigterm(engine, db_url) -> None:
    payback = os.path.join(os.path.dirname(sys.executable), "payback")
    proc = subprocess.Popen([payback, "worker", "--poll", "0.05"],
                            env={**os.environ, "PAYBACK_DATABASE_URL": db_url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        (event_id,) = _emit(engine, SystemClock(), "a.live")
        assert _wait_done(engine, event_id) == "done"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.splitlines()[-1] == "processed 1 (no handler: 0), retried 0, dead 0, lost lease 0"


@pytest.mark.parametrize("args", [("worker", "--poll", "0.01"),
                                  ("serve", "--with-worker", "--worker-poll", "0")])
def test_poll_interval_below_50ms_is_refused(args) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2 and "must be at least 0.05" in result.output
