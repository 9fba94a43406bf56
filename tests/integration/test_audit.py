"""The audit trail on real SQLite and PostgreSQL (``payback.audit.service``, its API routes and
``payback audit verify|list``).

Covers, on both databases unless noted:
- records appended with ``record`` inside transactions read back hash-exact and verify; a business
  write and its record commit together; a transaction that rolls back leaves neither, and the next
  record chains to the last committed one (a PostgreSQL sequence gap is not a break);
- concurrent appends (10 threads × 20 transactions; SQLite threads share the engine through
  ``payback.db.write``, PostgreSQL threads each hold their own connection) make one unbroken,
  unforked chain of 200;
- tamper detection: a row edited, or deleted, directly in the database (on PostgreSQL bypassing
  the append-only trigger as a superuser would) is named by ``verify`` and by
  ``payback audit verify`` (exit status 3); an intact trail exits 0;
- PostgreSQL only: an ordinary UPDATE or DELETE is refused by the trigger; an application role
  granted only SELECT and INSERT (the grants docs/audit.md prescribes) can append and verify but
  can neither UPDATE, DELETE, TRUNCATE nor switch the trigger off;
- secrets and card numbers never reach the table; bad arguments write nothing; client-supplied
  text is clipped to its column;
- the query filters (seller, object, actor, action, outcome, time range, cursor) and the API:
  ``GET /v1/audit`` is limited to the caller's seller and pages by ``seq``,
  ``GET /v1/audit/verify`` reports the first broken record;
- ``payback audit list`` as a table and as JSON.
"""

from __future__ import annotations

import json
import os
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, exc, select, text
from typer.testing import CliRunner

from payback.api.app import create_app
from payback.api.deps import current_principal
from payback.audit import service
from payback.audit.domain import GENESIS, VerifyResult
from payback.audit.tables import audit_records
from payback.cli import app as cli
from payback.customers.service import create_customer
from payback.customers.tables import customers
from payback.db import is_sqlite, read, write
from payback.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

T0 = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)
VISA = "4111111111111111"


def rec(conn, i: int = 0, **over) -> dict:
    """Append one ordinary record (the i-th of a test) in ``conn``'s transaction."""
    kw = dict(at=T0 + timedelta(minutes=i), actor_id="usr_ada", actor_kind="staff",
              actor_role="agent", seller_id="sel_default", action="refund.create",
              object_type="refund", object_id=f"re_{i}", outcome="allowed",
              summary={"after": {"amount_minor": 1000 + i}}, origin="203.0.113.7",
              request_id=f"req_{i}")
    kw.update(over)
    return service.record(conn, **kw)


def append(engine: Engine, n: int, start: int = 1, **over) -> list[dict]:
    out = []
    for i in range(start, start + n):
        with write(engine) as conn:
            out.append(rec(conn, i, **over))
    return out


def verify(engine: Engine) -> VerifyResult:
    with read(engine) as conn:
        return service.verify(conn, batch=7)  # a small batch exercises the streaming


def all_rows(engine: Engine) -> list[dict]:
    with read(engine) as conn:
        return [dict(r._mapping) for r in
                conn.execute(select(audit_records).order_by(audit_records.c.seq))]


def tamper(engine: Engine, sql: str, **params) -> None:
    """Change the table directly, as an attacker with database access would. On PostgreSQL the
    append-only trigger is bypassed for this transaction only (a superuser's power)."""
    with engine.begin() as conn:
        if not is_sqlite(conn):
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(sql), params)


def run_cli(db_url: str, *args: str):
    return CliRunner().invoke(cli, ["audit", *args],
                              env={"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "220"})


# ------------------------------------------------------------------------- append and verify


def test_records_read_back_exactly_and_verify(engine):
    written = append(engine, 25)
    rows = all_rows(engine)
    assert rows == written  # every column, incl. the aware UTC timestamp and the summary
    assert rows[0]["prev_hash"] == GENESIS
    assert [r["prev_hash"] for r in rows[1:]] == [r["hash"] for r in rows[:-1]]
    assert verify(engine) == VerifyResult(True, 25, None, None, rows[-1]["hash"])


def test_empty_trail_verifies(engine):
    assert verify(engine) == VerifyResult(True, 0, None, None, GENESIS)


def test_write_and_its_record_commit_together_and_roll_back_together(engine, clock):
    with write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada")
        rec(conn, 1, action="customer.create", object_type="customer", object_id=cus["id"])
    with pytest.raises(RuntimeError), write(engine) as conn:
        create_customer(conn, clock, name="Grace")
        rec(conn, 2, action="customer.create")
        raise RuntimeError("the caller fails after recording")
    with read(engine) as conn:
        names = conn.execute(select(customers.c.name)).scalars().all()
    assert names == ["Ada"]
    assert [r["action"] for r in all_rows(engine)] == ["customer.create"]
    after = append(engine, 1, start=3)[0]
    rows = all_rows(engine)
    assert after["prev_hash"] == rows[0]["hash"]
    assert verify(engine).ok and verify(engine).checked == 2


def test_rolled_back_records_leave_no_trace_and_no_break(engine):
    append(engine, 3)
    for i in range(4, 7):
        with pytest.raises(RuntimeError), write(engine) as conn:
            rec(conn, i)
            raise RuntimeError("rolled back")
    append(engine, 2, start=7)
    rows = all_rows(engine)
    assert [r["object_id"] for r in rows] == ["re_1", "re_2", "re_3", "re_7", "re_8"]
    if not is_sqlite(engine):
        assert rows[3]["seq"] == 7  # PostgreSQL burnt seq 4-6: a gap, not a break
    assert verify(engine) == VerifyResult(True, 5, None, None, rows[-1]["hash"])


# ------------------------------------------------------------------------------ concurrency

THREADS, PER_THREAD = 10, 20


def _appender(engine: Engine, n: int, gun: threading.Barrier, errors: list) -> None:
    try:
        if is_sqlite(engine):
            gun.wait()
            for k in range(PER_THREAD):
                with write(engine) as conn:
                    rec(conn, n * 100 + k, actor_id=f"usr_{n}")
                    time.sleep(0.001)  # hold the transaction open after appending
            return
        with engine.connect() as conn:  # opened before the start gun: a real race
            gun.wait()
            for k in range(PER_THREAD):
                with conn.begin():
                    rec(conn, n * 100 + k, actor_id=f"usr_{n}")
                    conn.execute(text("SELECT pg_sleep(0.001)"))
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append(e)


def test_concurrent_appends_make_one_unbroken_chain(engine):
    gun, errors = threading.Barrier(THREADS), []
    threads = [threading.Thread(target=_appender, args=(engine, n, gun, errors))
               for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    rows = all_rows(engine)
    assert len(rows) == THREADS * PER_THREAD
    assert len({r["prev_hash"] for r in rows}) == len(rows)  # no two share a predecessor
    assert {r["actor_id"] for r in rows} == {f"usr_{n}" for n in range(THREADS)}
    assert verify(engine) == VerifyResult(True, 200, None, None, rows[-1]["hash"])


# --------------------------------------------------------------------------- tamper detection


def test_edited_row_is_named_by_verify_and_the_cli(engine, db_url):
    append(engine, 10)
    intact = run_cli(db_url, "verify")
    assert intact.exit_code == 0, intact.output
    assert intact.stdout.splitlines()[0] == "audit trail intact: 10 records"
    tamper(engine, "UPDATE audit_records SET summary = :s WHERE seq = 4",
           s=json.dumps({"after": {"amount_minor": 1}}))
    result = verify(engine)
    assert (result.ok, result.first_broken_seq, result.checked) == (False, 4, 4)
    broken = run_cli(db_url, "verify")
    assert broken.exit_code == 3, broken.output
    assert broken.stdout.strip() == ("audit trail BROKEN at record #4: content does not match "
                                     "its hash (the record was edited)")


@pytest.mark.parametrize("column, value", [("actor_id", "usr_mallory"), ("outcome", "refused"),
                                           ("at", "2026-01-15 09:00:00")])
def test_every_edited_column_is_detected(engine, column, value):
    append(engine, 5)
    if column == "at" and not is_sqlite(engine):
        value = "2026-01-15 09:00:00+00"
    tamper(engine, f"UPDATE audit_records SET {column} = :v WHERE seq = 2", v=value)
    assert verify(engine).first_broken_seq == 2


def test_deleted_row_is_named_at_the_next_record(engine, db_url):
    append(engine, 10)
    if is_sqlite(engine):
        tamper(engine, "DELETE FROM audit_records WHERE seq = 6")
    else:  # the other way a superuser gets past the trigger; DDL is transactional
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_records DISABLE TRIGGER "
                              "audit_records_append_only"))
            conn.execute(text("DELETE FROM audit_records WHERE seq = 6"))
            conn.execute(text("ALTER TABLE audit_records ENABLE TRIGGER "
                              "audit_records_append_only"))
    result = verify(engine)
    assert (result.ok, result.first_broken_seq) == (False, 7)
    assert "record #5" in result.reason
    out = run_cli(db_url, "verify")
    assert out.exit_code == 3
    assert out.stdout.startswith("audit trail BROKEN at record #7: prev_hash does not match")


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_trigger_refuses_update_and_delete(engine):
    append(engine, 3)
    before = all_rows(engine)
    for sql in ("UPDATE audit_records SET outcome = 'refused' WHERE seq = 2",
                "DELETE FROM audit_records WHERE seq = 2"):
        with pytest.raises(exc.IntegrityError, match="audit_records is append-only"):
            with engine.begin() as conn:
                conn.execute(text(sql))
    assert all_rows(engine) == before
    assert verify(engine).ok


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_application_role_can_only_append_and_read(engine):
    """The grants of docs/audit.md: the application's role has SELECT and INSERT, nothing else,
    so it can neither change a record nor switch the trigger off."""
    role = f"payback_app_test_{os.getpid()}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" NOLOGIN'))
        conn.execute(text(f'GRANT SELECT, INSERT ON audit_records TO "{role}"'))
        conn.execute(text(f'GRANT USAGE ON SEQUENCE audit_records_seq_seq TO "{role}"'))
    try:
        with engine.begin() as conn:
            conn.execute(text(f'SET LOCAL ROLE "{role}"'))
            rec(conn, 1)
            assert service.verify(conn).checked == 1
        for sql in ("UPDATE audit_records SET outcome = 'refused'",
                    "DELETE FROM audit_records", "TRUNCATE audit_records",
                    "SET LOCAL session_replication_role = replica",
                    "ALTER TABLE audit_records DISABLE TRIGGER audit_records_append_only"):
            with pytest.raises(exc.ProgrammingError, match="permission denied|must be owner"):
                with engine.begin() as conn:
                    conn.execute(text(f'SET LOCAL ROLE "{role}"'))
                    conn.execute(text(sql))
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    assert verify(engine) == VerifyResult(True, 1, None, None, all_rows(engine)[0]["hash"])


# ------------------------------------------------------------------------- redaction, checks


def test_secrets_and_card_numbers_never_reach_the_table(engine):
    with write(engine) as conn:
        written = rec(conn, 1, action="user.create", summary={
            "after": {"email": "ada@example.com", "password": "hunter2-very-secret",
                      "api_key_secret": "pbk_s3cr3t_value", "note": f"card {VISA} refunded"},
            "headers": {"Authorization": "Bearer tok_abcdef"}})
    expected = {"after": {"email": "ada@example.com", "note": "card ************1111 refunded"},
                "headers": {}}
    assert written["summary"] == expected
    assert all_rows(engine)[0]["summary"] == expected
    with read(engine) as conn:
        raw = conn.execute(text("SELECT CAST(summary AS TEXT) FROM audit_records")).scalar_one()
    for secret in ("hunter2", "pbk_s3cr3t", "tok_abcdef", VISA):
        assert secret not in raw
    assert verify(engine).ok


@pytest.mark.parametrize("bad, message", [
    ({"outcome": "maybe"}, "outcome must be one of"),
    ({"actor_kind": "robot"}, "actor_kind must be one of"),
    ({"at": datetime(2026, 1, 15, 10, 0)}, "timezone-aware"),
    ({"action": "x" * 61}, "action is longer than 60"),
    ({"origin": ""}, "needs origin"),
])
def test_bad_arguments_write_nothing(engine, bad, message):
    with pytest.raises(ValueError, match=message), write(engine) as conn:
        rec(conn, 1, **bad)
    assert all_rows(engine) == []


def test_client_supplied_text_is_clipped_to_its_column(engine):
    with write(engine) as conn:
        rec(conn, 1, request_id="r" * 500, origin="o" * 100, object_id="re_" + "9" * 60)
    row = all_rows(engine)[0]
    assert (len(row["request_id"]), len(row["origin"]), len(row["object_id"])) == (64, 64, 40)
    assert verify(engine).ok


# ------------------------------------------------------------------------------- queries


@pytest.fixture
def varied(engine) -> list[dict]:
    """Eight records: two sellers, three actors, two actions, all three outcomes, an hour
    apart from 10:00."""
    specs = [("sel_default", "usr_ada", "refund.create", "allowed"),
             ("sel_default", "usr_bob", "refund.approve", "refused"),
             ("sel_other", "usr_eve", "refund.create", "allowed"),
             ("sel_default", "usr_ada", "refund.approve", "allowed"),
             ("sel_default", "usr_ada", "refund.create", "error"),
             ("sel_other", "usr_eve", "refund.approve", "refused"),
             ("sel_default", "usr_bob", "refund.create", "allowed"),
             ("sel_default", "usr_ada", "refund.create", "allowed")]
    out = []
    for i, (seller, actor, action, outcome) in enumerate(specs):
        with write(engine) as conn:
            out.append(rec(conn, i * 60, seller_id=seller, actor_id=actor, action=action,
                           outcome=outcome, object_id=f"re_{i % 3}"))
    return out


def seqs(rows: list[dict]) -> list[int]:
    return [r["seq"] for r in rows]


def test_query_filters(engine, varied):
    s = seqs(varied)
    with read(engine) as conn:
        def q(**kw) -> list[int]:
            return seqs(service.query(conn, **kw))
        assert q() == s
        assert q(seller_id="sel_other") == [s[2], s[5]]
        assert q(object_id="re_1") == [s[1], s[4], s[7]]
        assert q(actor_id="usr_bob") == [s[1], s[6]]
        assert q(action="refund.approve", seller_id="sel_default") == [s[1], s[3]]
        assert q(outcome="refused") == [s[1], s[5]]
        assert q(outcome="error") == [s[4]]
        assert q(date_from=T0 + timedelta(hours=2), date_to=T0 + timedelta(hours=5)) == s[2:5]
        assert q(after_seq=s[5]) == s[6:]
        assert q(limit=3) == s[:3]
        assert q(actor_id="usr_ada", after_seq=s[0], limit=2) == [s[3], s[4]]


@dataclass(frozen=True)
class SellerPrincipal:
    id: str
    roles: tuple[str, ...]
    seller_id: str | None


@pytest.fixture
def client_for(engine, db_url, clock):
    """``client_for(seller_id)``: an API client whose caller is bound to that seller."""
    app = create_app(Settings(database_url=db_url), engine=engine, clock=clock)

    def make(seller_id: str | None) -> TestClient:
        app.dependency_overrides[current_principal] = \
            lambda: SellerPrincipal("usr_auditor", ("auditor",), seller_id)
        return TestClient(app)
    return make


def test_api_lists_only_the_callers_seller_page_by_page(client_for, varied):
    client, s = client_for("sel_default"), seqs(varied)
    first = client.get("/v1/audit", params={"limit": 4}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [r["seq"] for r in first["data"]] == [s[0], s[1], s[3], s[4]]
    assert first["next_cursor"] == str(s[4])
    second = client.get("/v1/audit", params={"limit": 4, "starting_after": s[4]}).json()
    assert [r["seq"] for r in second["data"]] == [s[6], s[7]]
    assert (second["has_more"], second["next_cursor"]) == (False, None)
    row = first["data"][0]
    assert row == {**{k: varied[0][k] for k in row if k != "at"}, "at": "2026-01-15T10:00:00Z"}
    other = client_for("sel_other").get("/v1/audit", params={"object_id": "re_2"}).json()
    assert [r["seq"] for r in other["data"]] == [s[2], s[5]]


def test_api_filters_and_time_range(client_for, varied):
    client, s = client_for("sel_default"), seqs(varied)
    got = client.get("/v1/audit", params={"actor_id": "usr_ada", "action": "refund.create",
                                          "from": "2026-01-15T12:00:00Z",
                                          "to": "2026-01-15T17:00:00"}).json()
    assert [r["seq"] for r in got["data"]] == [s[4]]
    refused = client.get("/v1/audit", params={"outcome": "refused"}).json()
    assert [r["seq"] for r in refused["data"]] == [s[1]]
    bad = client.get("/v1/audit", params={"outcome": "maybe"})
    assert bad.status_code == 422
    assert bad.headers["content-type"].startswith("application/problem+json")


def test_api_verify_names_the_first_broken_record(client_for, engine, varied):
    client = client_for(None)
    assert client.get("/v1/audit/verify").json() == {
        "ok": True, "checked": 8, "first_broken_seq": None, "reason": None,
        "last_hash": varied[-1]["hash"]}
    tamper(engine, "UPDATE audit_records SET action = 'refund.cancel' WHERE seq = :s",
           s=varied[2]["seq"])
    body = client.get("/v1/audit/verify").json()
    assert (body["ok"], body["first_broken_seq"], body["checked"]) == (False, varied[2]["seq"], 3)
    assert body["last_hash"] == varied[1]["hash"]


# ----------------------------------------------------------------------------------- CLI list


def test_cli_list_as_json_and_as_a_table(db_url, varied):
    out = run_cli(db_url, "list", "--actor", "usr_bob", "--json")
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert [r["seq"] for r in rows] == [varied[1]["seq"], varied[6]["seq"]]
    assert rows[0]["at"] == "2026-01-15T11:00:00.000000Z"
    assert rows[0]["hash"] == varied[1]["hash"]
    table = run_cli(db_url, "list", "--object-id", "re_1", "--limit", "2")
    assert table.exit_code == 0, table.output
    lines = [ln for ln in table.stdout.splitlines() if "refund re_1" in ln]
    assert len(lines) == 2
    assert "staff:usr_bob" in lines[0] and "refused" in lines[0] and "11:00:00" in lines[0]
    assert "staff:usr_ada" in lines[1] and "error" in lines[1] and "14:00:00" in lines[1]
    empty = run_cli(db_url, "list", "--actor", "nobody")
    assert (empty.exit_code, empty.stdout.strip()) == (0, "No audit records match.")
