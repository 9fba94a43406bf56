"""Refund throughput benchmark: refunds per second, p50 and p99 latency, as a ratio to raw SQL.

What runs, on SQLite (a temp file, WAL) and on PostgreSQL (database ``payback_bench`` on
127.0.0.1:5432, created and dropped here; skipped with a clear line if unreachable):

- **raw-SQL baseline**: the same rows ``refunds.service.create_refund`` writes for a typical
  refund, with hand-written SQL in one transaction per refund and the same 18 statements: lock/read
  the invoice, read its lines, payments and the active policy, insert the refund (every column,
  the default policy decision included), its lines and tender, bump the invoice-line and payment
  counters, issue the credit note (read back the refund lines, read the parties, take the next
  number with the number-series upsert, insert the note with a SHA-256 of a document and its
  lines), then 4 refund events, 5 outbox events, 2 journal entries and their 5 postings, each
  multi-row write as one executemany. The service hashes a full UBL rendering of the note
  (``documents.ubl.render_ubl``); the baseline hashes a comparable byte string it builds cheaply,
  and the cost of ``render_ubl`` per refund is measured separately (``document_hash_cpu``). SQLite: one ``sqlite3`` connection in a loop. PostgreSQL:
  psycopg with 4 connections in 4 threads, ``prepare_threshold=0`` (server-side prepared once).
- **baseline+audit**: the baseline plus what the HTTP path adds inside the transaction, the
  hash-chained audit record (PostgreSQL: advisory lock, last hash, insert; SQLite: last hash,
  insert). The HTTP rows are compared with this one, every other row with the baseline.
- **service**: ``create_refund`` inside ``payback.db.write(engine)``; 1 thread on SQLite and 4
  threads on PostgreSQL, i.e. the same concurrency as the baseline it is compared with.
- **http**: a real ``uvicorn --factory payback.api.app:create_app`` in a subprocess (one worker
  process) driven by 16 concurrent ``httpx.AsyncClient`` clients, each request a POST
  ``/v1/invoices/{id}/refunds`` with its own Idempotency-Key (and an admin API key when the API
  requires one; the per-principal refund rate limit is lifted for this server).
- **http-lite**: the same server driven by a minimal asyncio HTTP/1.1 client, because httpx's
  own CPU cost competes with the server for the machine's CPUs.
- with ``--breakdown``, diagnostic rows that split the gaps (see ``PATHS``).

Every refund goes to a different pre-paid invoice (as in real life); a "hot" variant sends every
refund to one invoice (many small amount refunds, serialised by its row lock). The rows run in
interleaved rounds so that drift of a shared machine hits every row alike. Before measuring, one
refund of each kind (service, baseline, baseline+audit) on identical invoices is compared:
statements sent and rows added or changed per table (a warning if they differ). Each phase has a warm-up and a deadline and a watchdog ends the run, so it always
stops by itself. Only 127.0.0.1 is contacted. At the end the books are checked.

Results: a table on stdout and JSON in ``bench/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import hashlib
import io
import json
import os
import platform
import pstats
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
from psycopg.types.json import Json
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from payback import db
from payback.clock import SystemClock
from payback.customers.service import create_customer
from payback.db.migrate import upgrade
from payback.ids import new_id
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.ledger import domain as L
from payback.ledger.service import trial_balance
from payback.payments.service import record_payment
from payback.payments.tables import payments
from payback.refunds.domain import RefundRequest
from payback.refunds.service import create_refund
from payback.refunds.tables import refund_tenders, refunds

BENCH_DIR = Path(__file__).resolve().parent
PG_HOST, PG_PORT, PG_USER, PG_DB = "127.0.0.1", 5432, "postgres", "payback_bench"
GOALS = {("service", "sqlite"): 0.55, ("service", "postgresql"): 0.55,
         ("http", "sqlite"): 0.25, ("http", "postgresql"): 0.40}
P99_GOAL_MS = 50.0
TYPICAL_AMOUNT, HOT_AMOUNT = 1000, 100     # EUR 10.00 on a 66.00 invoice; EUR 1.00 on a big one
REASON = "requested_by_customer"
console = Console(width=max(shutil.get_terminal_size((160, 40)).columns, 160))


# ------------------------------------------------------------------------------ measurement


@dataclass
class Result:
    backend: str
    path: str                 # baseline | service | http
    variant: str              # distinct | hot
    concurrency: int
    requested: int
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    rate: float = 0.0         # successful refunds per second
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    ratio: float | None = None
    ratio_to: str | None = None   # baseline | baseline+audit
    goal: float | None = None
    met: bool | None = None
    round_rates: list[int] = field(default_factory=list)
    cpu_ms_per_refund: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class CpuMeter:
    """CPU used during a phase: the whole machine, this process, the API server, postgres."""

    def __init__(self, server_pid: int | None = None):
        self.server_pid = server_pid

    @staticmethod
    def _proc_ticks(pid: int) -> int:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])     # utime + stime
        except (OSError, IndexError, ValueError):
            return 0

    @classmethod
    def _postgres_ticks(cls) -> dict[int, int]:
        """CPU ticks of each PostgreSQL backend serving the bench database (other sessions'
        databases on a shared server are left out)."""
        ticks = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if PG_DB.encode() in (entry / "cmdline").read_bytes():
                        ticks[int(entry.name)] = cls._proc_ticks(int(entry.name))
                except OSError:
                    pass
        return ticks

    def snapshot(self) -> dict:
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        vals = [int(v) for v in cpu]
        return {"busy": sum(vals) - vals[3] - vals[4], "all": sum(vals),
                "self": self._proc_ticks(os.getpid()),
                "server": self._proc_ticks(self.server_pid) if self.server_pid else 0,
                "postgres": self._postgres_ticks()}

    @staticmethod
    def delta(before: dict, after: dict) -> dict:
        out = {k: after[k] - before[k] for k in after if k != "postgres"}
        # A backend that ended during the phase is lost; one that started counts in full.
        out["postgres"] = sum(t - before["postgres"].get(pid, 0)
                              for pid, t in after["postgres"].items())
        return out

    @staticmethod
    def per_refund(ticks: dict, refunds_done: int) -> dict:
        """Busy share of the whole machine, and CPU ms per refund of: this process (baseline,
        service layer, or the HTTP client), the API server, the PostgreSQL backends serving the
        bench database."""
        hz = os.sysconf("SC_CLK_TCK")
        out = {"machine_busy_pct": round(100 * ticks["busy"] / max(ticks["all"], 1), 1)}
        for key in ("self", "server", "postgres"):
            if ticks[key] or key == "self":
                out[key] = round(1000 * ticks[key] / hz / max(refunds_done, 1), 3)
        return out


def percentiles(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return ((latencies[0] * 1000, latencies[0] * 1000) if latencies else (0.0, 0.0))
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return statistics.median(latencies) * 1000, q[98] * 1000


OK_TOTAL = [0]   # every successful refund of the run, warm-ups included (checked at the end)
AUDITED = [0]    # audit records written (baseline+audit and HTTP refunds; checked at the end)


def _audited(run: Run) -> Run:
    AUDITED[0] += len(run.latencies)
    return run


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    truncated: bool = False

    def fill(self, res: Result) -> Result:
        res.ok, res.errors, res.seconds = len(self.latencies), len(self.errors), self.seconds
        res.rate = res.ok / self.seconds if self.seconds else 0.0
        res.p50_ms, res.p99_ms = percentiles(self.latencies)
        if self.errors:
            res.notes.append(f"first error: {self.errors[0][:300]}")
        if self.truncated:
            res.notes.append("stopped at the phase deadline")
        return res


def run_threads(make_worker: Callable[[], Callable[[str], None]], items: list[str],
                threads: int, deadline: float) -> Run:
    """Run ``worker(item)`` for every item on ``threads`` threads, each with its own worker
    (its own connection); time each call. Stops taking new items at ``deadline``."""
    run, lock, it = Run(), threading.Lock(), iter(items)
    workers = [make_worker() for _ in range(threads)]   # connect before the clock starts

    def loop(worker) -> None:
        lat, errs = [], []
        while True:
            with lock:
                item = next(it, None)
            if item is None:
                break
            if time.monotonic() > deadline:
                run.truncated = True
                break
            t0 = time.perf_counter()
            try:
                worker(item)
            except Exception as exc:  # noqa: BLE001 - counted and reported, never hidden
                errs.append(f"{type(exc).__name__}: {exc}")
                continue
            lat.append(time.perf_counter() - t0)
        with lock:
            run.latencies.extend(lat)
            run.errors.extend(errs)
            OK_TOTAL[0] += len(lat)

    t0 = time.perf_counter()
    if threads == 1:
        loop(workers[0])    # in this thread: no hand-off, and cProfile sees it
    else:
        pool = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
    run.seconds = time.perf_counter() - t0
    for w in workers:
        getattr(w, "close", lambda: None)()
    return run


# ------------------------------------------------------------------------------ raw SQL baseline

# Exactly the statements create_refund issues for an "amount" refund to the original payment when
# the seller has no policy configured (the built-in default decision), with the same batching:
# 6 reads and 12 writes, the multi-row ones as one executemany each (psycopg 3 sends an
# executemany as one pipeline, as SQLAlchemy's executemany through psycopg does; sqlite3 steps
# one prepared statement). Rows per refund: 1 refund (every column create_refund fills), 2 refund
# lines, 1 tender, 2 invoice-line and 1 payment counter updates, the credit note (1 number-series
# upsert, 1 credit note, 2 credit-note lines), 4 refund events (requested, approved, processing,
# succeeded), 5 outbox events (the 4 refund events and credit_note.issued), 2 journal entries,
# 5 postings. The reads: the invoice, its lines, its payments, the active policy, then, as
# credit_notes.service.issue_for_refund does, the refund lines just written (joined with their
# invoice lines) and the seller and buyer parties.
SQL = {
    "invoice": "SELECT id, customer_id, seller_id, currency, number, voided_at, tax_mode, "
               "issued_at FROM invoices WHERE id = %s",
    "lines": "SELECT id, gross_minor, tax_minor, line_discount_minor + invoice_discount_minor, "
             "refunded_gross_minor, refunded_tax_minor FROM invoice_lines "
             "WHERE invoice_id = %s ORDER BY position",
    "payments": "SELECT id, method, amount_minor, refunded_minor FROM payments "
                "WHERE invoice_id = %s ORDER BY captured_at, id",
    "policy": "SELECT policy_id, version, body FROM merchant_policies "
              "WHERE seller_id = %s AND active = %s",
    "refund": "INSERT INTO refunds (id, invoice_id, seller_id, customer_id, status, kind, method, "
              "reason, note, currency, amount_minor, net_minor, tax_minor, fee_minor, "
              "bonus_minor, requested_by, approved_by, policy_id, policy_version, decision, "
              "due_at, created_at, settled_at) "
              "VALUES (%s, %s, %s, %s, 'succeeded', 'amount', 'original_payment', %s, NULL, %s, "
              "%s, %s, %s, 0, 0, %s, %s, 'default', 'builtin', %s, %s, %s, %s)",
    "refund_lines": "INSERT INTO refund_lines (id, refund_id, invoice_line_id, quantity, "
                    "gross_minor, net_minor, tax_minor, discount_minor) "
                    "VALUES (%s, %s, %s, 0, %s, %s, %s, %s)",
    "tenders": "INSERT INTO refund_tenders (refund_id, payment_id, destination, amount_minor) "
               "VALUES (%s, %s, 'original_payment', %s)",
    "bump_lines": "UPDATE invoice_lines SET refunded_quantity = refunded_quantity + 0, "
                  "refunded_gross_minor = refunded_gross_minor + %s, "
                  "refunded_tax_minor = refunded_tax_minor + %s WHERE id = %s",
    "bump_payments": "UPDATE payments SET refunded_minor = refunded_minor + %s WHERE id = %s",
    # the credit note (credit_notes.service.issue_for_refund / _issue)
    "note_source": "SELECT rl.invoice_line_id, il.description, rl.quantity, il.tax_rate, "
                   "rl.net_minor, rl.tax_minor, rl.gross_minor, il.unit_price_minor "
                   "FROM refund_lines rl JOIN invoice_lines il ON il.id = rl.invoice_line_id "
                   "WHERE rl.refund_id = %s ORDER BY il.position",
    "parties": "SELECT s.name, s.address, s.country, s.vat_number, s.email, c.name, c.address, "
               "c.country, c.vat_number, c.email, c.locale FROM customers c "
               "JOIN sellers s ON s.id = %s WHERE c.id = %s",
    "series": "INSERT INTO number_series (series, last_number) VALUES (%s, 1) "
              "ON CONFLICT (series) DO UPDATE SET last_number = number_series.last_number + 1 "
              "RETURNING last_number",
    "note": "INSERT INTO credit_notes (id, seller_id, number, kind, invoice_id, refund_id, "
            "voids_id, reason, memo, currency, net_minor, tax_minor, total_minor, "
            "refunded_minor, credited_minor, outside_minor, locale, issued_at, document_sha256) "
            "VALUES (%s, %s, %s, 'refund', %s, %s, NULL, %s, NULL, %s, %s, %s, %s, %s, 0, 0, %s, "
            "%s, %s)",
    "note_lines": "INSERT INTO credit_note_lines (credit_note_id, invoice_line_id, description, "
                  "quantity, tax_rate, net_minor, tax_minor, gross_minor) "
                  "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
    "events": "INSERT INTO refund_events (refund_id, from_status, to_status, actor_id, "
              "actor_role, comment, at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
    "outbox": "INSERT INTO outbox_events (id, topic, seller_id, object_id, payload, status, "
              "attempts, created_at, available_at) VALUES (%s, %s, %s, %s, %s, 'pending', 0, "
              "%s, %s)",
    "entries": "INSERT INTO journal_entries (id, event_type, seller_id, object_id, memo, "
               "posted_at) VALUES (%s, %s, %s, %s, %s, %s)",
    "postings": "INSERT INTO postings (entry_id, account_code, currency, debit_minor, "
                "credit_minor) VALUES (%s, %s, %s, %s, %s)",
    # baseline+audit only: what the HTTP path adds inside the business transaction
    # (payback.audit.service.record): the chain's advisory lock (PostgreSQL), the last hash, the
    # record. Same columns and hash as the API writes, so the chain still verifies at the end.
    "audit_lock": "SELECT pg_advisory_xact_lock(%s)",
    "audit_last": "SELECT hash FROM audit_records ORDER BY seq DESC LIMIT 1",
    "audit_insert": "INSERT INTO audit_records (at, seller_id, actor_id, actor_kind, actor_role, "
                    "action, object_type, object_id, outcome, summary, origin, request_id, "
                    "prev_hash, hash) VALUES (%s, %s, %s, 'api_key', 'admin', 'create_refund', "
                    "'re', %s, 'allowed', %s, '127.0.0.1', %s, %s, %s) RETURNING seq",
}
#: Statements per refund of each baseline (BEGIN/COMMIT not counted); checked against the
#: service (``check_baseline``) before anything is measured.
STATEMENTS = {"baseline": 18, "baseline+audit": {"sqlite": 20, "postgresql": 21}}
AUDIT_CHAIN_LOCK = 0x7061796261636B01     # payback.audit.service.AUDIT_CHAIN_LOCK
AUDIT_GENESIS = "0" * 64
AUDIT_FIELDS = ("at", "seller_id", "actor_id", "actor_kind", "actor_role", "action",
                "object_type", "object_id", "outcome", "summary", "origin", "request_id",
                "prev_hash")
DUE_DAYS = 14    # the built-in default policy: allowed, no fee, due within 14 days


def _largest_remainder(amount: int, weights: list[int]) -> list[int]:
    total = sum(weights)
    floors = [amount * w // total for w in weights]
    order = sorted(range(len(weights)), key=lambda i: -(amount * weights[i] % total))
    for i in order[:amount - sum(floors)]:
        floors[i] += 1
    return floors


def _half_up(a: int, b: int, d: int) -> int:
    return (2 * a * b + d) // (2 * d)


def plan_refund(lines: list, pays: list, amount: int) -> tuple[list, list]:
    """The hand-written calculator: spread ``amount`` pro rata over what remains on each line,
    reverse tax and discount cumulatively, spread the money over the payments."""
    remaining = [g - rg for _, g, _, _, rg, _ in lines]
    if amount > sum(remaining):
        raise ValueError("amount exceeds what remains")
    rows = []
    for (lid, gross, tax, disc, rg, rt), part in zip(lines, _largest_remainder(amount, remaining)):
        if part:
            cum = rg + part
            t = (tax if cum == gross else _half_up(tax, cum, gross)) - rt
            d = (disc if cum == gross else _half_up(disc, cum, gross)) - _half_up(disc, rg, gross)
            rows.append((lid, part, part - t, t, d))
    open_pays = [(pid, m, a - r) for pid, m, a, r in pays if a - r > 0]
    if amount > sum(r for _, _, r in open_pays):
        raise ValueError("amount exceeds refundable")
    parts = _largest_remainder(amount, [r for _, _, r in open_pays])
    return rows, [(pid, m, p) for (pid, m, _), p in zip(open_pays, parts) if p]


def note_document(number: str, issued: str, cur_code: str, tax_mode: str, inv_number: str,
                  inv_issued: str, reason: str, party_row: tuple, lines: list,
                  net: int, tax: int, refunded: int) -> bytes:
    """The baseline's stand-in for the credit note's UBL document: the same content (number,
    dates, currency, seller and buyer, the invoice reference, every line, totals, split,
    reason) as one ``|``-joined byte string, built cheaply. The service renders a full UBL 2.1
    XML document (``payback.documents.ubl.render_ubl``) and hashes that, so the two hashes
    differ and a baseline note does not pass ``documents.service.verify_credit_note``; the
    CPU that rendering costs per refund is measured separately (``document_hash_cpu``)."""
    parts = [number, issued[:10], cur_code, tax_mode, inv_number, inv_issued[:10], reason,
             *map(str, party_row), str(net), str(tax), str(net + tax), str(refunded)]
    for ln in lines:
        parts.extend(map(str, ln))
    return "|".join(parts).encode()


def default_decision(now: datetime) -> dict:
    """The decision JSON stored with a refund when no policy is configured (same keys and text
    as ``refunds.policy._default``, so the row is the same size)."""
    due = now + timedelta(days=DUE_DAYS)
    text = ("No refund policy is configured for this seller, so the built-in default applies: "
            f"the refund is allowed and is due within {DUE_DAYS} days, by {due.day} {due:%B %Y}.")
    return {"outcome": "allow", "due_at": due.isoformat(), "fee_minor": 0, "bonus_minor": 0,
            "four_eyes": False, "policy_id": "default", "policy_version": "builtin",
            "allowed_methods": ["original_payment", "store_credit"],
            "explanations": [{"rule": "default", "text": text, "values": {"due_days": DUE_DAYS}}],
            "deadlines": {"refund_due_at": due.isoformat()}, "role_limits_minor": {}}


class RawRefunder:
    """One connection that writes refunds with hand-written SQL, one transaction each.
    ``audit=True`` is the ``baseline+audit`` row: it also appends the audit record the HTTP path
    writes inside the same transaction."""

    ACTOR = "system"      # who create_refund records as requester/approver outside HTTP
    KEY_ACTOR = "key_" + "0" * 26    # an API key's id, as the HTTP path records it

    def __init__(self, conn, backend: str, audit: bool = False):
        """``conn``: a DB-API connection, or None when the caller passes its own cursor to
        ``_refund`` (the ``sa-text`` diagnostic)."""
        self.conn, self.backend, self.audit = conn, backend, audit
        if backend == "sqlite":
            self.sql = {k: v.replace("%s", "?") for k, v in SQL.items()}
            self.ts = lambda d: d.replace(tzinfo=None).isoformat(" ", "microseconds")
            self.js = json.dumps
            self.true = 1
        else:
            self.sql = dict(SQL, invoice=SQL["invoice"] + " FOR UPDATE")
            self.ts, self.js, self.true = (lambda d: d), Json, True
        self.cur = conn.cursor() if conn is not None else None

    def __call__(self, invoice_id: str, amount: int = TYPICAL_AMOUNT) -> None:
        cur, q, sqlite = self.cur, self.sql, self.backend == "sqlite"
        if sqlite:
            cur.execute("BEGIN IMMEDIATE")    # psycopg begins implicitly
        try:
            self._refund(cur, q, invoice_id, amount)
        except BaseException:
            cur.execute("ROLLBACK") if sqlite else self.conn.rollback()
            raise
        cur.execute("COMMIT") if sqlite else self.conn.commit()

    def _refund(self, cur, q, invoice_id: str, amount: int) -> None:
        inv_id, customer_id, seller_id, cur_code, number, voided, tax_mode, inv_issued = \
            cur.execute(q["invoice"], (invoice_id,)).fetchone()
        if voided is not None:
            raise ValueError("void")
        lines = cur.execute(q["lines"], (invoice_id,)).fetchall()
        pays = cur.execute(q["payments"], (invoice_id,)).fetchall()
        if cur.execute(q["policy"], (seller_id, self.true)).fetchone() is not None:
            raise RuntimeError("the baseline writes the built-in default decision only")
        rows, tenders = plan_refund(lines, pays, amount)
        net, tax = sum(r[2] for r in rows), sum(r[3] for r in rows)
        at = datetime.now(UTC)
        now, decision = self.ts(at), default_decision(at)
        rid, actor = new_id("refund"), self.ACTOR
        cur.execute(q["refund"], (rid, inv_id, seller_id, customer_id, REASON, cur_code, amount,
                                  net, tax, actor, actor, self.js(decision),
                                  self.ts(at + timedelta(days=DUE_DAYS)), now, now))
        cur.executemany(q["refund_lines"], [(new_id("refund_line"), rid, lid, g, n, t, d)
                                            for lid, g, n, t, d in rows])
        cur.executemany(q["tenders"], [(rid, pid, a) for pid, _, a in tenders])
        cur.executemany(q["bump_lines"], [(g, t, lid) for lid, g, _, t, _ in rows])
        cur.executemany(q["bump_payments"], [(a, pid) for pid, _, a in tenders])
        # The credit note, as issue_for_refund writes it: its lines come from the refund lines
        # just written (read back, joined with the invoice lines, as the service does).
        source = cur.execute(q["note_source"], (rid,)).fetchall()
        party_row = cur.execute(q["parties"], (seller_id, customer_id)).fetchone()
        locale = party_row[10]
        seq = cur.execute(q["series"], (f"credit_note:{seller_id}",)).fetchone()[0]
        note_id, note_number = new_id("credit_note"), f"CN-{seq:06d}"
        refunded = sum(a for _, m, a in tenders)     # all to the original payment, no fee
        digest = hashlib.sha256(note_document(
            note_number, str(now), cur_code, tax_mode, number, str(inv_issued), REASON,
            party_row, source, net, tax, refunded)).hexdigest()
        cur.execute(q["note"], (note_id, seller_id, note_number, inv_id, rid, REASON, cur_code,
                                net, tax, net + tax, refunded, locale, now, digest))
        cur.executemany(q["note_lines"], [(note_id, *ln[:7]) for ln in source])
        moves = [(None, "requested", None), ("requested", "approved", "approved by policy"),
                 ("approved", "processing", None), ("processing", "succeeded", None)]
        cur.executemany(q["events"], [(rid, old, new, actor, "admin", comment, now)
                                      for old, new, comment in moves])
        cur.executemany(q["outbox"], [
            (new_id("outbox"), "refund.created" if new == "requested" else f"refund.{new}",
             seller_id, rid, self.js({"id": rid, "invoice_id": inv_id, "amount_minor": amount,
                                      "currency": cur_code, "method": "original_payment",
                                      "status": new}), now, now)
            for _, new, _ in moves] + [
            (new_id("outbox"), "credit_note.issued", seller_id, note_id,
             self.js({"id": note_id, "number": note_number, "kind": "refund",
                      "invoice_id": inv_id, "refund_id": rid, "total_minor": net + tax,
                      "currency": cur_code}), now, now)])
        approved, paid = new_id("journal_entry"), new_id("journal_entry")
        cur.executemany(q["entries"], [
            (approved, "refund.approved", seller_id, rid, f"Refund {rid} on invoice {number}",
             now),
            (paid, "refund.paid", seller_id, rid, f"Refund {rid} paid out", now)])
        # Zero-amount postings (no restocking fee) are left out, as the ledger never posts them.
        postings = [(approved, L.SALES_RETURNS.code, net, 0), (approved, L.TAX_PAYABLE.code, tax, 0),
                    (approved, L.REFUNDS_PAYABLE.code, 0, amount),
                    (paid, L.REFUNDS_PAYABLE.code, amount, 0),
                    *[(paid, L.GATEWAY_CLEARING.code, 0, a) for _, _, a in tenders]]
        cur.executemany(q["postings"], [(e, code, cur_code, d, c) for e, code, d, c in postings
                                        if d or c])
        if self.audit:
            self._audit(cur, q, at, seller_id, rid, invoice_id, amount, customer_id, cur_code)

    def _audit(self, cur, q, at, seller_id, rid, invoice_id, amount, customer_id,
               cur_code) -> None:
        """The hash-chained audit record, as ``payback.audit.service.record`` appends it for
        a refund created over HTTP: lock the chain (PostgreSQL), read the last hash, insert."""
        if self.backend != "sqlite":
            cur.execute(q["audit_lock"], (AUDIT_CHAIN_LOCK,))
        row = cur.execute(q["audit_last"]).fetchone()
        prev = row[0] if row else AUDIT_GENESIS
        request_id = uuid.uuid4().hex
        summary = {"params": {"invoice_id": invoice_id},
                   "request": {"kind": "amount", "method": "original_payment", "reason": REASON,
                               "amount_minor": amount},
                   "after": {"id": rid, "status": "succeeded", "amount_minor": amount,
                             "currency": cur_code, "invoice_id": invoice_id,
                             "customer_id": customer_id, "method": "original_payment",
                             "approved_by": self.KEY_ACTOR}}
        iso = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        content = {"at": iso, "seller_id": seller_id, "actor_id": self.KEY_ACTOR,
                   "actor_kind": "api_key", "actor_role": "admin", "action": "create_refund",
                   "object_type": "re", "object_id": rid, "outcome": "allowed",
                   "summary": summary, "origin": "127.0.0.1", "request_id": request_id,
                   "prev_hash": prev}
        canonical = json.dumps(content, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode()
        digest = hashlib.sha256(prev.encode("ascii") + canonical).hexdigest()
        cur.execute(q["audit_insert"], (self.ts(at), seller_id, self.KEY_ACTOR, rid,
                                        self.js(summary), request_id, prev, digest)).fetchone()

    def close(self) -> None:
        self.conn.close()


class _CountingCursor:
    """Counts the statements a cursor sends (for ``check_baseline``)."""

    def __init__(self, cur, seen: list):
        self.cur, self.seen = cur, seen

    def execute(self, sql, params=()):
        self.seen.append(sql.split(None, 3)[:3])
        return self.cur.execute(sql, params)

    def executemany(self, sql, seq):
        self.seen.append(sql.split(None, 3)[:3])
        return self.cur.executemany(sql, list(seq))


def raw_connect(backend: str, target):
    if backend == "sqlite":
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=60)
        for pragma in ("foreign_keys=ON", "journal_mode=WAL", "synchronous=NORMAL"):
            conn.execute(f"PRAGMA {pragma}")
        return conn
    return psycopg.connect(target, prepare_threshold=0)


def raw_worker_factory(backend: str, target, amount: int, audit: bool = False) -> Callable:
    def make():
        refunder = RawRefunder(raw_connect(backend, target), backend, audit)

        def worker(invoice_id: str) -> None:
            refunder(invoice_id, amount)
        worker.close = refunder.close
        return worker
    return make


class _SACursor:
    """The baseline's statements sent through SQLAlchemy's ``exec_driver_sql`` (no compile)."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params: tuple):
        return self.conn.exec_driver_sql(sql, params)

    def executemany(self, sql: str, seq: list) -> None:
        self.conn.exec_driver_sql(sql, list(seq))


def sa_text_worker_factory(engine, backend: str, amount: int) -> Callable:
    """Diagnostic: the raw baseline's SQL inside ``payback.db.write(engine)``. Its gap to the
    baseline is SQLAlchemy's connection, pool, transaction and result layer; its gap to the
    service layer is statement compilation plus the service code itself."""
    def make():
        refunder = RawRefunder(None, backend)

        def worker(invoice_id: str) -> None:
            with db.write(engine) as conn:
                refunder._refund(_SACursor(conn), refunder.sql, invoice_id, amount)
        return worker
    return make


# ------------------------------------------------------------------------------ service layer


def service_worker_factory(engine, amount: int) -> Callable:
    clock, req = SystemClock(), RefundRequest(kind="amount", method="original_payment",
                                              reason=REASON, amount_minor=amount)

    def make():
        def worker(invoice_id: str) -> None:
            with db.write(engine) as conn:
                create_refund(conn, clock, invoice_id, req)
        return worker
    return make


# ------------------------------------------------------------------------------ HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``uvicorn --factory payback.api.app:create_app``, one worker process, on 127.0.0.1."""

    def __init__(self, url: str, log_path: Path,
                 factory: str = "payback.api.app:create_app", env: dict | None = None):
        self.port, self.log_path = free_port(), log_path
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, **(env or {}), PAYBACK_DATABASE_URL=url)
        self.log = open(log_path, "wb")  # noqa: SIM115 - open for the server's lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", factory,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--no-access-log", "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=BENCH_DIR.parent)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {log_path.read_text()[-500:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("uvicorn did not become healthy within 30 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


#: Bearer token of the bench's API key, when the API requires authentication (see api_token).
AUTH: dict[str, str | None] = {"token": None}
#: The server is a bench target, not a client to throttle: a per-principal refund rate limit
#: (if the settings have one) is lifted for the server subprocess.
SERVER_ENV = {"PAYBACK_REFUND_RATE_LIMIT": "1000000/second"}


def _auth_header() -> dict[str, str]:
    return {"authorization": f"Bearer {AUTH['token']}"} if AUTH["token"] else {}


def api_token(engine) -> str | None:
    """An admin API key of the default seller, if this version of Payback has API keys."""
    try:
        from payback.access.service import create_key
        from payback.access.tables import DEFAULT_SELLER_ID
    except ImportError:
        return None
    with db.write(engine) as conn:
        _, token = create_key(conn, SystemClock(), seller_id=DEFAULT_SELLER_ID,
                              name="refund benchmark", role="admin")
    return token


def _body(amount: int) -> bytes:
    return json.dumps({"kind": "amount", "method": "original_payment", "reason": REASON,
                       "amount_minor": amount}).encode()


async def _drive_httpx(port: int, items: list[str], clients: int, amount: int,
                       deadline: float, run: Run) -> None:
    it, body = iter(items), _body(amount)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=30.0) as client:
        async def one_client() -> None:
            for invoice_id in it:
                if time.monotonic() > deadline:
                    run.truncated = True
                    return
                headers = {"content-type": "application/json",
                           "idempotency-key": uuid.uuid4().hex, **_auth_header()}
                t0 = time.perf_counter()
                try:
                    r = await client.post(f"/v1/invoices/{invoice_id}/refunds", content=body,
                                          headers=headers)
                except httpx.HTTPError as exc:
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                _record(run, r.status_code, r.content, time.perf_counter() - t0)
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        run.seconds = time.perf_counter() - t0


LITE_REQUESTS = {   # mode: (method, path, Idempotency-Key?, body?, expected status)
    "refund": ("POST", "/v1/invoices/{}/refunds", True, True, 201),
    "nokey": ("POST", "/v1/invoices/{}/refunds", False, True, 201),
    "preview": ("POST", "/v1/invoices/{}/refunds/preview", False, True, 200),
    "healthz": ("GET", "/healthz", False, False, 200),
}


async def _drive_lite(port: int, items: list[str], clients: int, amount: int,
                      deadline: float, run: Run, mode: str = "refund") -> None:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: it costs the shared CPUs a
    fraction of what httpx does, so the figure is closer to what the server alone can do."""
    it, body = iter(items), _body(amount)
    method, path, keyed, with_body, expected = LITE_REQUESTS[mode]
    body = body if with_body else b""
    auth = "".join(f"{k}: {v}\r\n" for k, v in _auth_header().items()).replace("{", "{{")
    head = (f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n" + auth.replace("}", "}}")
            + ("content-type: application/json\r\n" if with_body else "")
            + ("idempotency-key: {}\r\n" if keyed else "")
            + f"content-length: {len(body)}\r\n\r\n")
    path_has_id = "{}" in path

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for invoice_id in it:
                if time.monotonic() > deadline:
                    run.truncated = True
                    return
                fmt = ([invoice_id] if path_has_id else []) + ([uuid.uuid4().hex] if keyed else [])
                t0 = time.perf_counter()
                writer.write(head.format(*fmt).encode() + body)
                status, payload = await asyncio.wait_for(_read_response(reader), 30)
                _record(run, status, payload, time.perf_counter() - t0, expected)
        finally:
            writer.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    run.seconds = time.perf_counter() - t0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


def _record(run: Run, status: int, payload: bytes, seconds: float, expected: int = 201) -> None:
    if status == expected:
        run.latencies.append(seconds)
    else:
        run.errors.append(f"HTTP {status}: {payload[:200].decode(errors='replace')}")


def run_http(client: str, port: int, items: list[str], clients: int, amount: int,
             deadline: float) -> Run:
    """``client``: ``httpx``, or ``lite`` / ``lite:<mode>`` (see ``LITE_REQUESTS``)."""
    run, mode = Run(), client.partition(":")[2] or "refund"
    if client == "httpx":
        asyncio.run(_drive_httpx(port, items, clients, amount, deadline, run))
    else:
        asyncio.run(_drive_lite(port, items, clients, amount, deadline, run, mode))
    if LITE_REQUESTS[mode][4] == 201:    # a refund and its audit record for each success
        OK_TOTAL[0] += len(run.latencies)
        AUDITED[0] += len(run.latencies)
    return run


# ------------------------------------------------------------------------------ setup


ITEMS = {
    "typical": [LineInput("Widget", 2, 2500, Decimal("0.20"), sku="W-1", category="goods"),
                LineInput("Shipping", 1, 500, Decimal("0.20"), kind="shipping")],
    "hot": [LineInput("Bulk order", 1, 50_000_000, Decimal("0.20"), sku="B-1"),
            LineInput("Freight", 1, 1_000_000, Decimal("0.20"), kind="shipping")],
}


def seed(engine, count: int, shape: str = "typical", batch: int = 100) -> list[str]:
    """``count`` invoices in EUR, each fully paid by card, created through the services."""
    clock, ids = SystemClock(), []
    with db.write(engine) as conn:
        customers = [create_customer(conn, clock, name=f"Bench customer {i}")["id"]
                     for i in range(20)]
    for start in range(0, count, batch):
        with db.write(engine) as conn:
            for i in range(start, min(start + batch, count)):
                inv = create_invoice(conn, clock, customer_id=customers[i % 20], currency="EUR",
                                     tax_mode="exclusive", lines=ITEMS[shape])
                record_payment(conn, clock, inv["id"], method="card",
                               amount_minor=inv["total_minor"], currency="EUR",
                               card={"token": "tok_bench", "brand": "visa", "last4": "4242"})
                ids.append(inv["id"])
    return ids


def pg_conninfo(dbname: str) -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={dbname} connect_timeout=3"


def pg_admin(sql: str) -> None:
    with psycopg.connect(pg_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql)


def verify(engine, expected_refunds: int, expected_audit: int) -> list[str]:
    """The books after the run: every refund there, every journal balanced, counters agree, one
    audit record per audited refund and the hash chain intact (the baseline+audit rows and the
    API append to the same chain)."""
    from payback.audit import service as audit
    from payback.audit.tables import audit_records
    from payback.credit_notes.tables import credit_notes
    problems = []
    with db.read(engine) as conn:
        n = conn.execute(select(func.count()).select_from(refunds)).scalar()
        if n != expected_refunds:
            problems.append(f"{n} refunds in the database, {expected_refunds} reported ok")
        if not all(t["balanced"] for t in trial_balance(conn)["totals"]):
            problems.append("trial balance does not balance")
        paid = conn.execute(select(func.sum(payments.c.refunded_minor))).scalar() or 0
        tendered = conn.execute(select(func.sum(refund_tenders.c.amount_minor))).scalar() or 0
        if paid != tendered:
            problems.append(f"payments.refunded_minor {paid} != refund tenders {tendered}")
        notes = conn.execute(select(func.count()).select_from(credit_notes)
                             .where(credit_notes.c.kind == "refund")).scalar()
        if notes != n:
            problems.append(f"{notes} refund credit notes for {n} refunds")
        records = conn.execute(select(func.count()).select_from(audit_records)).scalar()
        if records != expected_audit:
            problems.append(f"{records} audit records, {expected_audit} expected")
        chain = audit.verify(conn)
        if not chain.ok:
            problems.append(f"audit chain broken at seq {chain.first_broken_seq}: {chain.reason}")
    return problems


# ------------------------------------------------------------------------------ one backend


@dataclass
class Plan:
    n: int
    warmup: int
    hot_n: int
    rounds: int
    clients: int
    pg_threads: int
    phase_timeout: float
    http: bool
    lite_client: bool
    breakdown: bool
    profile: bool
    py_spy: str | None


@dataclass
class Phase:
    """One row of the table, measured over several interleaved chunks (rounds)."""

    result: Result
    run: Run = field(default_factory=Run)
    ticks: dict = field(default_factory=dict)

    def measure(self, fn: Callable[[], Run], meter: CpuMeter) -> None:
        before = meter.snapshot()
        run = fn()
        for k, v in CpuMeter.delta(before, meter.snapshot()).items():
            self.ticks[k] = self.ticks.get(k, 0) + v
        self.run.latencies += run.latencies
        self.run.errors += run.errors
        self.run.seconds += run.seconds
        self.run.truncated |= run.truncated
        self.result.round_rates.append(round(len(run.latencies) / max(run.seconds, 1e-9)))

    def finish(self) -> Result:
        res = self.run.fill(self.result)
        res.cpu_ms_per_refund = CpuMeter.per_refund(self.ticks, res.ok)
        return res


#: Rows of the table, in the order each round runs them. The diagnostics (``--breakdown``) split
#: the gaps: sa-text = baseline SQL through SQLAlchemy; http-nokey = no Idempotency-Key;
#: http-preview = the read-only preview endpoint; http-healthz = the cheapest request there is.
PATHS = ("baseline", "baseline+audit", "sa-text", "service", "http", "http-lite", "http-nokey",
         "http-preview", "http-healthz")
BASELINES = ("baseline", "baseline+audit")
WRITING_PATHS = {"baseline", "baseline+audit", "sa-text", "service", "http", "http-lite",
                 "http-nokey"}
DIAGNOSTICS = {"sa-text", "http-nokey", "http-preview", "http-healthz"}


def paths_of(plan: Plan) -> list[str]:
    skip = set() if plan.breakdown else set(DIAGNOSTICS)
    if not plan.http:
        skip |= {p for p in PATHS if p.startswith("http")} | {"baseline+audit"}
    if not plan.lite_client:
        skip.add("http-lite")
    return [p for p in PATHS if p not in skip]


def bench_backend(backend: str, url: str, raw_target, plan: Plan, workdir: Path,
                  notes: dict) -> list[Result]:
    engine = db.make_engine(url)
    try:
        return _bench_backend(backend, engine, url, raw_target, plan, workdir, notes)
    finally:
        engine.dispose()


def _phase(label: str) -> None:
    console.print(f"  [dim]{time.strftime('%H:%M:%S')}[/dim] {label}")


def _chunks(items: list[str], k: int) -> list[list[str]]:
    size = -(-len(items) // k)
    return [items[i * size:(i + 1) * size] for i in range(k)]


def _bench_backend(backend, engine, url, raw_target, plan: Plan, workdir: Path,
                   notes: dict) -> list[Result]:
    conc = 1 if backend == "sqlite" else plan.pg_threads
    w, n = plan.warmup, plan.n
    paths = paths_of(plan)
    _phase(f"seeding {len(set(paths) & WRITING_PATHS) * (w + n)} paid invoices (+4 hot "
           "invoices) through the services")
    OK_TOTAL[0] = AUDITED[0] = 0
    check_baseline(engine, backend, raw_target, notes)
    OK_TOTAL[0] = 3      # the three refunds of the check
    AUDITED[0] = 1       # the baseline+audit refund of the check
    t0 = time.perf_counter()
    ids = {p: seed(engine, w + n) for p in paths if p in WRITING_PATHS}
    ids["http-preview"] = ids["service"]            # previews write nothing: any paid invoice
    ids["http-healthz"] = [""] * (w + n)
    hot_paths = [p for p in ("baseline", "baseline+audit", "service", "http") if p in paths]
    hot = dict(zip(hot_paths, seed(engine, len(hot_paths), "hot")))
    notes[f"{backend}_seed_seconds"] = round(time.perf_counter() - t0, 1)
    AUTH["token"] = api_token(engine) if plan.http else None
    server = Server(url, workdir / f"uvicorn-{backend}.log", env=SERVER_ENV) \
        if plan.http else None
    try:
        results = _rounds(backend, engine, raw_target, server, plan, conc, paths, ids, hot,
                          workdir)
    finally:
        if server:
            server.stop()
    _ratios(results, backend)
    problems = verify(engine, OK_TOTAL[0], AUDITED[0])
    notes[f"{backend}_consistency"] = (f"ok ({OK_TOTAL[0]} refunds, books balanced, audit chain "
                                       f"of {AUDITED[0]} records verified)"
                                       if not problems else "; ".join(problems))
    return results


#: Tables a refund writes or updates; ``check_baseline`` compares what each baseline changes in
#: them with what ``create_refund`` changes.
CHECKED_TABLES = ("refunds", "refund_lines", "refund_tenders", "refund_events", "outbox_events",
                  "journal_entries", "postings", "invoice_lines", "payments", "number_series",
                  "credit_notes", "credit_note_lines", "audit_records")
#: Free text compared by kind only. ``document_sha256``: the service hashes its UBL rendering,
#: the baseline a comparable string (see ``note_document``); both are 64 hex digits.
_OPAQUE = {"memo", "hash", "prev_hash", "request_id", "number", "document_sha256"}
#: Counters compared by kind only: the series' last number grows with every refund.
_COUNTERS = {"last_number"}


def _snapshot(engine) -> dict[str, dict]:
    """Every row of the checked tables, keyed by its JSON text (JSON columns are unhashable)."""
    with db.read(engine) as conn:
        return {name: {json.dumps(list(r), default=str): tuple(r)
                       for r in conn.execute(select(db.metadata.tables[name]))}
                for name in CHECKED_TABLES}


def _shape(engine, before: dict, after: dict) -> dict[str, list]:
    """The rows added or changed per table, with ids, times and free text replaced by their
    kind, so two refunds of two identical invoices compare equal when they write the same
    rows."""
    def norm(col: str, value):
        if col == "id" or col.endswith("_id"):
            return "<id>"      # ids (text, or autoincrement integers) differ by nature
        if col in _COUNTERS:
            return "<counter>"
        if col == "document_sha256" and not (isinstance(value, str) and len(value) == 64):
            return ("<not a sha256>", value)
        if value is None or isinstance(value, (bool, int)):
            return value
        if isinstance(value, datetime):
            return "<time>"
        if isinstance(value, (dict, list)):
            return ("<json>", sorted(value) if isinstance(value, dict) else len(value))
        if col in _OPAQUE:
            return "<text>"
        return value
    out = {}
    for name in CHECKED_TABLES:
        cols = [c.name for c in db.metadata.tables[name].columns]
        rows = [row for key, row in after[name].items() if key not in before[name]]
        out[name] = sorted((tuple((c, norm(c, v)) for c, v in zip(cols, row) if c != "seq")
                            for row in rows), key=repr)
    return out


def document_hash_cpu(engine, invoice_id: str, reps: int = 300) -> dict[str, float]:
    """CPU ms (thread time, best of 3 × ``reps``) of what each path does to fill
    ``credit_notes.document_sha256`` for one refund, on the credit note ``create_refund`` just
    issued for ``invoice_id``: the service builds the ``Document``
    (``documents.service.credit_note_document``), renders it as UBL XML (``render_ubl``) and
    hashes it; the baseline builds a ``|``-joined string (``note_document``) and hashes it."""
    from payback.credit_notes.tables import credit_notes
    from payback.documents.service import (
        credit_note_document,
        load_credit_note_document,
        note_lines,
        parties,
    )
    from payback.documents.ubl import render_ubl
    from payback.invoicing.tables import invoices
    with db.read(engine) as conn:
        note = dict(conn.execute(select(credit_notes)
                                 .where(credit_notes.c.invoice_id == invoice_id)).one()._mapping)
        inv = dict(conn.execute(select(invoices).where(invoices.c.id == invoice_id))
                   .one()._mapping)
        lines = note_lines(conn, note["id"])
        seller, buyer, _ = parties(conn, note["seller_id"], inv["customer_id"])
        doc = load_credit_note_document(conn, note["id"])
    party_row = (*asdict(seller).values(), *asdict(buyer).values(), note["locale"])
    src = [tuple(ln[k] for k in ("invoice_line_id", "description", "quantity", "tax_rate",
                                 "net_minor", "tax_minor", "gross_minor", "unit_price_minor"))
           for ln in lines]
    cases = {
        "render_ubl": lambda: render_ubl(doc),
        "service_document_hash": lambda: hashlib.sha256(render_ubl(credit_note_document(
            note, lines, inv, seller, buyer))).hexdigest(),
        "baseline_document_hash": lambda: hashlib.sha256(note_document(
            note["number"], str(note["issued_at"]), note["currency"], inv["tax_mode"],
            inv["number"], str(inv["issued_at"]), note["reason"], party_row, src,
            note["net_minor"], note["tax_minor"], note["refunded_minor"])).hexdigest(),
    }
    out = {}
    for name, fn in cases.items():
        best = float("inf")
        for _ in range(3):
            t0 = time.thread_time()
            for _ in range(reps):
                fn()
            best = min(best, time.thread_time() - t0)
        out[name] = round(1000 * best / reps, 4)
    out["ubl_bytes"] = len(render_ubl(doc))
    return out


def check_baseline(engine, backend: str, raw_target, notes: dict) -> bool:
    """Before measuring, on three fresh invoices: one ``create_refund``, one baseline refund,
    one baseline+audit refund. Compare the statements each sends (BEGIN/COMMIT not counted)
    and the rows each adds or changes in every table a refund touches. If the service changed,
    the baseline no longer "writes the same rows" and must follow: say so loudly instead of
    comparing different work."""
    from sqlalchemy import event

    import payback.audit.tables  # noqa: F401 - registers audit_records in the metadata

    inv_service, inv_base, inv_audit = seed(engine, 3)
    seen: list = []

    def count(conn, cursor, statement, *args) -> None:
        seen.append(statement.split(None, 3)[:3])
    before = _snapshot(engine)
    event.listen(engine, "before_cursor_execute", count)
    try:
        service_worker_factory(engine, TYPICAL_AMOUNT)()(inv_service)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    shapes = {"service": _shape(engine, before, before := _snapshot(engine))}
    stmts = {"service": seen}
    for path, inv, audit in (("baseline", inv_base, False), ("baseline+audit", inv_audit, True)):
        refunder = RawRefunder(raw_connect(backend, raw_target), backend, audit)
        refunder.cur = _CountingCursor(refunder.cur, stmts.setdefault(path, []))
        try:
            refunder(inv, TYPICAL_AMOUNT)
        finally:
            refunder.close()
        shapes[path] = _shape(engine, before, before := _snapshot(engine))
    counts = {p: len([s for s in v if s[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK",
                                                             "SAVEPOINT", "RELEASE")])
              for p, v in stmts.items()}
    expected_audit = STATEMENTS["baseline+audit"][backend]
    problems = []
    if counts["service"] != counts["baseline"] or counts["baseline"] != STATEMENTS["baseline"]:
        problems.append(f"create_refund sends {counts['service']} statements and the baseline "
                        f"{counts['baseline']} (expected {STATEMENTS['baseline']})")
    if counts["baseline+audit"] != expected_audit:
        problems.append(f"baseline+audit sends {counts['baseline+audit']} statements, "
                        f"expected {expected_audit}")
    for name in CHECKED_TABLES:
        want = [] if name == "audit_records" else shapes["service"][name]
        if shapes["baseline"][name] != want:
            problems.append(f"{name}: create_refund writes {len(want)} rows "
                            f"{want[:1]}, the baseline {len(shapes['baseline'][name])} "
                            f"{shapes['baseline'][name][:1]}")
        audited = shapes["baseline+audit"][name]
        if name == "audit_records" and len(audited) != 1 or \
                name != "audit_records" and audited != want:
            problems.append(f"{name}: baseline+audit writes {len(audited)} rows")
    notes[f"{backend}_statements_per_refund"] = counts
    notes[f"{backend}_rows_per_refund"] = {n: len(shapes["service"][n]) for n in CHECKED_TABLES
                                           if n != "audit_records"}
    cost = notes[f"{backend}_document_hash_cpu_ms"] = document_hash_cpu(engine, inv_service)
    console.print(f"  credit-note document hash, CPU ms per refund: service (credit_note_document"
                  f" + render_ubl, {cost['ubl_bytes']} bytes of XML, + SHA-256) "
                  f"{cost['service_document_hash']:.3f}, of which render_ubl "
                  f"{cost['render_ubl']:.3f}; baseline (prebuilt string + SHA-256) "
                  f"{cost['baseline_document_hash']:.3f}")
    for p in problems:
        console.print(f"[yellow]warning: {p}: update RawRefunder so that it writes the same "
                      "rows, or the ratios compare different work[/yellow]")
    notes[f"{backend}_baseline_check"] = "; ".join(problems) or \
        "ok: the baselines write the same rows as create_refund, with the same statements"
    console.print(f"  baseline check: {notes[f'{backend}_baseline_check']} "
                  f"(statements {counts})")
    return not problems


def _rounds(backend, engine, raw_target, server, plan: Plan, conc: int, paths, ids, hot,
            workdir: Path) -> list[Result]:
    w, n, hn, rounds, clients = plan.warmup, plan.n, plan.hot_n, plan.rounds, plan.clients
    runners = {
        "baseline": lambda items, amount, dl: run_threads(
            raw_worker_factory(backend, raw_target, amount), items, conc, dl),
        "baseline+audit": lambda items, amount, dl: _audited(run_threads(
            raw_worker_factory(backend, raw_target, amount, audit=True), items, conc, dl)),
        "sa-text": lambda items, amount, dl: run_threads(
            sa_text_worker_factory(engine, backend, amount), items, conc, dl),
        "service": lambda items, amount, dl: run_threads(
            service_worker_factory(engine, amount), items, conc, dl),
        "http": lambda items, amount, dl: run_http(
            "httpx", server.port, items, clients, amount, dl),
    }
    for p, mode in (("http-lite", "refund"), ("http-nokey", "nokey"),
                    ("http-preview", "preview"), ("http-healthz", "healthz")):
        runners[p] = functools.partial(_lite, server, clients, mode)
    concurrency = {p: conc if p in (*BASELINES, "sa-text", "service") else clients
                   for p in PATHS}
    meter = CpuMeter(server.proc.pid if server else None)
    chunk_timeout = max(plan.phase_timeout / rounds, 10.0)

    def deadline() -> float:
        return time.monotonic() + chunk_timeout

    _phase("warm-up: " + ", ".join(f"{p} {w}" for p in paths))
    for p in paths:
        runners[p](ids[p][:w], TYPICAL_AMOUNT, deadline())
    phases = {p: Phase(Result(backend, p, "distinct", concurrency[p], n)) for p in paths}
    chunks = {p: _chunks(ids[p][w:], rounds) for p in paths}
    prof = cProfile.Profile() if plan.profile and conc == 1 else None
    spy = PySpy(plan.py_spy, server, workdir / f"py-spy-http-{backend}.txt") \
        if plan.py_spy and server else None
    for r in range(rounds):
        _phase(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{p} {len(chunks[p][r])} @ {concurrency[p]}" for p in paths))
        for p in paths:
            hook = prof if p == "service" else spy if p == "http" else None
            if hook:
                hook.enable()
            phases[p].measure(functools.partial(runners[p], chunks[p][r], TYPICAL_AMOUNT,
                                                deadline()), meter)
            if hook:
                hook.disable()
    if prof:
        _write_profile(prof, workdir / f"profile-service-{backend}.txt")
    if spy:
        spy.close()
    out = [phases[p].finish() for p in paths]
    for p in hot:
        if p == "http" and not server:
            continue
        _phase(f"hot invoice: {p} {hn} refunds of {HOT_AMOUNT} minor @ {concurrency[p]}")
        runners[p]([hot[p]] * min(w, 50), HOT_AMOUNT, deadline())
        ph = Phase(Result(backend, p, "hot", concurrency[p], hn))
        ph.measure(functools.partial(runners[p], [hot[p]] * hn, HOT_AMOUNT, deadline()), meter)
        out.append(ph.finish())
    return out


def _lite(server, clients: int, mode: str, items: list[str], amount: int, dl: float) -> Run:
    return run_http(f"lite:{mode}", server.port, items, clients, amount, dl)


class PySpy:
    """Sample the API server with py-spy while the httpx HTTP chunks run (``--py-spy``).
    ``--gil``: only the thread holding the GIL is sampled, so the shares are of the one CPU
    that a single Python process can use, which is what bounds its throughput."""

    def __init__(self, exe: str, server: Server, out: Path):
        self.exe, self.server, self.out, self.proc = exe, server, out, None
        self.parts: list[Path] = []

    def enable(self) -> None:
        part = self.out.with_suffix(f".{len(self.parts)}.collapsed")
        self.parts.append(part)
        self.proc = subprocess.Popen(
            [self.exe, "record", "--pid", str(self.server.proc.pid), "--rate", "200",
             "--format", "raw", "--output", str(part), "--nonblocking", "--gil"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def disable(self) -> None:
        import signal
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def close(self) -> None:
        """Merge the samples, then print the hottest frames (self and inclusive)."""
        stacks: dict[str, int] = {}
        for part in self.parts:
            if part.exists():
                for line in part.read_text().splitlines():
                    stack, _, count = line.rpartition(" ")
                    stacks[stack] = stacks.get(stack, 0) + int(count)
        self.out.write_text(summarise_stacks(stacks))
        (self.out.with_suffix(".collapsed")).write_text(
            "".join(f"{k} {v}\n" for k, v in stacks.items()))
        for part in self.parts:
            part.unlink(missing_ok=True)


def summarise_stacks(stacks: dict[str, int], top: int = 40) -> str:
    total = sum(stacks.values()) or 1
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    for stack, count in stacks.items():
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for f in set(frames):
            incl[f] = incl.get(f, 0) + count
    lines = [f"{total} samples"]
    for title, table in (("self", own), ("inclusive", incl)):
        lines.append(f"\n== top {top} by {title} ==")
        for frame, count in sorted(table.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"{100 * count / total:6.1f}%  {frame}")
    return "\n".join(lines) + "\n"


def _ratios(results: list[Result], backend: str) -> None:
    """Each row as a ratio to its baseline: the HTTP rows to ``baseline+audit`` (which also
    appends the audit record the HTTP path writes in the transaction), every other row, and
    ``baseline+audit`` itself, to ``baseline``."""
    base = {(r.path, r.variant): r for r in results if r.path in BASELINES}
    for r in results:
        if r.path == "baseline":
            continue
        to = "baseline+audit" if r.path.startswith("http") else "baseline"
        ref = base.get((to, r.variant))
        if ref is None or not ref.rate:
            continue
        r.ratio, r.ratio_to = r.rate / ref.rate, to
        if r.variant == "distinct" and r.path not in DIAGNOSTICS and r.path not in BASELINES:
            r.goal = GOALS[(r.path.split("-")[0], backend)]
            r.met = r.ratio >= r.goal and r.errors == 0 and (
                not r.path.startswith("http") or r.p99_ms < P99_GOAL_MS)


def _write_profile(prof: cProfile.Profile, path: Path) -> None:
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    path.write_text(buf.getvalue())


# ------------------------------------------------------------------------------ main


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in
                Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem_kb = int(next(ln.split()[1] for ln in Path("/proc/meminfo").read_text().splitlines()
                      if ln.startswith("MemTotal")))
    import fastapi
    import sqlalchemy
    import uvicorn
    return {"nproc": os.cpu_count(), "cpu": cpu, "ram_gib": round(mem_kb / 1024 ** 2, 1),
            "python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
            "sqlalchemy": sqlalchemy.__version__, "psycopg": psycopg.__version__,
            "fastapi": fastapi.__version__, "uvicorn": uvicorn.__version__,
            "httpx": httpx.__version__, "platform": platform.platform()}


def pg_version() -> str | None:
    try:
        with psycopg.connect(pg_conninfo("postgres")) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        return None


def parse_args(argv: Iterable[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="measured refunds per phase (2000)")
    p.add_argument("--warmup", type=int, help="warm-up refunds per phase (n/10, at least 20)")
    p.add_argument("--hot-n", type=int, help="refunds in the hot-invoice variant (n/4)")
    p.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients (16)")
    p.add_argument("--pg-threads", type=int, default=4,
                   help="PostgreSQL connections for the baseline and the service layer (4)")
    p.add_argument("--rounds", type=int, default=4,
                   help="interleaved rounds: baseline, service, http, http-lite, repeated (4)")
    p.add_argument("--phase-timeout", type=float, default=180.0,
                   help="seconds after which a phase stops taking new refunds (180)")
    p.add_argument("--only", choices=("sqlite", "postgresql"), help="one backend only")
    p.add_argument("--no-http", action="store_true", help="skip the HTTP phases")
    p.add_argument("--no-lite-client", action="store_true",
                   help="skip the second HTTP measurement with the minimal asyncio client")
    p.add_argument("--breakdown", action="store_true",
                   help="add diagnostic rows: sa-text, http-nokey, http-preview, http-healthz")
    p.add_argument("--profile", action="store_true",
                   help="cProfile the SQLite service-layer phase into bench/results/")
    p.add_argument("--py-spy", metavar="EXE",
                   help="sample the API server with this py-spy binary during the HTTP phase")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: --n 200 --warmup 20 --hot-n 100 --phase-timeout 30")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.warmup, args.hot_n, args.phase_timeout, args.rounds = 200, 20, 100, 30.0, 2
    args.warmup = args.warmup if args.warmup is not None else max(20, args.n // 10)
    args.hot_n = args.hot_n if args.hot_n is not None else max(50, args.n // 4)
    return args


def main(argv: Iterable[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(args.n, args.warmup, args.hot_n, args.rounds, args.clients, args.pg_threads,
                args.phase_timeout, not args.no_http, not args.no_lite_client, args.breakdown,
                args.profile,
                args.py_spy)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    info = machine()
    info["postgresql"] = pg_version()
    _watchdog(plan)
    console.print(f"[bold]Payback refund benchmark[/bold]  {info['nproc']} CPU ({info['cpu']}), "
                  f"{info['ram_gib']} GiB, Python {info['python']}, SQLite {info['sqlite']}, "
                  f"PostgreSQL {info['postgresql'] or 'unreachable'}")
    console.print(f"n={plan.n} warm-up={plan.warmup} hot={plan.hot_n}; HTTP: uvicorn, "
                  f"1 worker process, {plan.clients} concurrent httpx clients in this process")
    notes: dict = {"loadavg_start": os.getloadavg()}
    results: list[Result] = []
    workdir = Path(tempfile.mkdtemp(prefix="payback-bench-"))
    try:
        results += _run_sqlite(plan, workdir, notes) if args.only != "postgresql" else []
        results += _run_postgres(plan, workdir, notes) if args.only != "sqlite" else []
    finally:
        logs = [p for p in workdir.glob("*.log") if p.stat().st_size]
        for extra in [*workdir.glob("*.txt"), *workdir.glob("py-spy-*.collapsed"), *logs]:
            target = results_dir / f"{stamp}-{extra.name}"
            shutil.copy(extra, target)
            notes[f"file {extra.name}"] = str(target.relative_to(BENCH_DIR.parent))
        shutil.rmtree(workdir, ignore_errors=True)
    notes["loadavg_end"] = os.getloadavg()
    print_table(results, notes)
    out = results_dir / f"{stamp}.json"
    out.write_text(json.dumps({"timestamp": stamp, "command": " ".join(sys.argv),
                               "machine": info, "plan": asdict(plan), "notes": notes,
                               "goals": {f"{p}/{b}": g for (p, b), g in GOALS.items()},
                               "p99_goal_ms": P99_GOAL_MS,
                               "results": [asdict(r) for r in results]}, indent=2))
    console.print(f"results written to {out.relative_to(BENCH_DIR.parent)}")
    return 0


def _run_sqlite(plan: Plan, workdir: Path, notes: dict) -> list[Result]:
    path = workdir / "bench.db"
    url = f"sqlite:///{path}"
    console.print(f"[bold]SQLite[/bold] {path} (WAL, synchronous=NORMAL)")
    upgrade(url)
    return bench_backend("sqlite", url, str(path), plan, workdir, notes)


def _run_postgres(plan: Plan, workdir: Path, notes: dict) -> list[Result]:
    console.print(f"[bold]PostgreSQL[/bold] {PG_HOST}:{PG_PORT} database {PG_DB}")
    try:
        pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        pg_admin(f'CREATE DATABASE "{PG_DB}"')
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        msg = f"skipped: PostgreSQL not reachable at {PG_HOST}:{PG_PORT} ({reason})"
        console.print(f"[yellow]{msg}[/yellow]")
        notes["postgresql"] = msg
        return []
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{PG_DB}"
    try:
        upgrade(url)
        return bench_backend("postgresql", url, pg_conninfo(PG_DB), plan, workdir, notes)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def _watchdog(plan: Plan) -> None:
    """Hard stop: no run may outlive its phases' deadlines plus seeding by a wide margin."""
    limit = 12 * plan.phase_timeout + 600

    def fire() -> None:
        console.print(f"[red]benchmark exceeded {limit:.0f} s; aborting[/red]")
        os._exit(3)
    t = threading.Timer(limit, fire)
    t.daemon = True
    t.start()


def print_table(results: list[Result], notes: dict) -> None:
    if not results:
        console.print("no results (every database was skipped)")
        return
    table = Table(title="Refunds per second (ratio = Payback / the raw-SQL baseline named in "
                        "'to', of this run)")
    for col in ("database", "path", "invoices", "conc.", "ok/err", "refunds/s", "p50 ms",
                "p99 ms", "ratio", "to", "goal", ""):
        table.add_column(col, no_wrap=True, justify="right" if col not in (
            "database", "path", "invoices", "to") else "left")
    for r in results:
        verdict = {True: "[green]met[/green]", False: "[red]missed[/red]", None: ""}[r.met]
        if r.met is False and r.goal and r.ratio and r.ratio >= r.goal:
            verdict = "[red]missed (p99/errors)[/red]"
        table.add_row(r.backend, r.path, r.variant, str(r.concurrency), f"{r.ok}/{r.errors}",
                      f"{r.rate:,.0f}", f"{r.p50_ms:.1f}", f"{r.p99_ms:.1f}",
                      f"{r.ratio:.2f}" if r.ratio is not None else "1.00" if r.path == "baseline"
                      else "", r.ratio_to or "", f">= {r.goal:.2f}" if r.goal else "", verdict)
    console.print(table)
    for r in results:
        if r.notes:
            console.print(f"  {r.backend} {r.path} {r.variant}: {'; '.join(r.notes)}")
    for k, v in notes.items():
        console.print(f"  {k}: {v}")
    console.print(f"  HTTP goal also needs p99 < {P99_GOAL_MS:.0f} ms at 16 clients. HTTP rows are "
                  "compared with baseline+audit (the baseline plus the hash-chained audit record "
                  "the API appends in the same transaction); all other rows with baseline.")


if __name__ == "__main__":
    sys.exit(main())
