"""``payback policy …``, ``payback refunds …``, the audit records of every CLI write, and the
demo's policy and approval queue, end to end through ``typer.testing.CliRunner`` on SQLite and
PostgreSQL (``PAYBACK_DATABASE_URL`` = the ``db_url`` fixture).

Covers: ``policy load`` of a YAML file (unquoted date version) or a JSON file makes it the active
policy, stores the plain mapping and an ``allowed`` audit record with origin ``cli``; a file below
the statutory floor (EU window of 10 days), with an unknown key, or a duplicate version exits 2
with its code, stores nothing and leaves a ``refused`` record; ``policy show``, ``presets`` and
``preset``; ``refunds overdue`` shows a pending refund as "due soon" within 14 days and as LATE
once its due date has passed, with exact formatted amounts; ``refunds approve`` by a second
person settles the refund and is audited with the approver as actor; the requester of a
four-eyes refund gets ``four_eyes_required``, an agent ``forbidden``, an unknown email
``not_found``, each refused and recorded with nothing changed; ``refunds reject`` releases the
reserved amount; ``users``/``keys`` writes are audited without any password or token; the demo
stores its policy, an agent and a queue of refunds waiting for four-eyes approval.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from payback import db
from payback.access import service as access
from payback.actor import Actor
from payback.audit.service import query as audit_query
from payback.audit.service import verify
from payback.audit.tables import audit_records
from payback.cli import app
from payback.clock import FixedClock, SystemClock
from payback.customers.service import create_customer
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice, get_invoice
from payback.payments.service import record_payment
from payback.policies import list_presets
from payback.policies.tables import merchant_policies
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.tables import refunds as refunds_table

PASSWORD = "correct horse 42 battery"
POLICY_YAML = """\
extends: EU-CRD
id: shop-eu
version: 2026-01-01          # unquoted: YAML reads a date, the stored body keeps the string
window: {days: 30}
approvals:
  auto_approve_up_to_minor: {EUR: 20000}
  require_approval_above_minor: {EUR: 50000}
  four_eyes_above_minor: {EUR: 50000}
role_limits_minor:
  agent: {EUR: 100000}
"""
STORED_BODY = {"extends": "EU-CRD", "id": "shop-eu", "version": "2026-01-01",
               "window": {"days": 30},
               "approvals": {"auto_approve_up_to_minor": {"EUR": 20000},
                             "require_approval_above_minor": {"EUR": 50000},
                             "four_eyes_above_minor": {"EUR": 50000}},
               "role_limits_minor": {"agent": {"EUR": 100000}}}


def run(db_url: str, *args: str):
    return CliRunner().invoke(app, list(args),
                              env={"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "220"})


def ok(db_url: str, *args: str):
    result = run(db_url, *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def refused(db_url: str, code: str, *args: str):
    result = run(db_url, *args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert result.stderr.startswith(f"error[{code}]: "), result.stderr
    assert result.stdout == ""
    return result


def audit_rows(engine, action: str) -> list[dict]:
    with db.read(engine) as conn:
        return audit_query(conn, action=action, limit=100)


def assert_chain_intact(engine) -> None:
    with db.read(engine) as conn:
        assert verify(conn).ok


def _table_row(output: str, first_cell: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row starting with {first_cell!r} in:\n{output}")


# ---------------------------------------------------------------------------------- policy


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "shop-eu.yaml"
    path.write_text(POLICY_YAML, encoding="utf-8")
    return path


def test_policy_load_makes_the_file_the_active_policy(db_url, engine, policy_file):
    assert "No refund policy is configured for sel_default." in ok(
        db_url, "policy", "show").stdout
    out = ok(db_url, "policy", "load", str(policy_file)).stdout
    assert out == ("Policy shop-eu version 2026-01-01 is now active for sel_default "
                   "(extends EU-CRD).\n")
    with db.read(engine) as conn:
        (row,) = conn.execute(select(merchant_policies)).all()
    assert (row.policy_id, row.version, row.active, row.created_by) == (
        "shop-eu", "2026-01-01", True, "cli")
    assert row.body == STORED_BODY  # the plain mapping, not the merged policy

    shown = json.loads(ok(db_url, "policy", "show", "--json").stdout)
    assert shown["active"] is True
    policy = shown["policy"]
    assert (policy["id"], policy["version"], policy["extends"]) == ("shop-eu", "2026-01-01",
                                                                     "EU-CRD")
    assert policy["window"]["days"] == 30
    assert policy["refund_deadline"]["days"] == 14  # inherited from EU-CRD
    assert policy["approvals"]["four_eyes_above_minor"] == {"EUR": 50000}
    assert "Active policy shop-eu version 2026-01-01 of sel_default:" in ok(
        db_url, "policy", "show").stdout

    (rec,) = audit_rows(engine, "cli.policy.load")
    assert (rec["outcome"], rec["origin"], rec["actor_kind"], rec["actor_id"],
            rec["object_type"], rec["object_id"]) == ("allowed", "cli", "cli", "cli", "policy",
                                                      "shop-eu")
    assert rec["summary"]["after"]["body"] == STORED_BODY
    assert rec["summary"]["request"] == {"file": str(policy_file), "seller": "sel_default"}
    assert_chain_intact(engine)


def test_policy_load_of_a_json_file(db_url, engine, tmp_path):
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({**STORED_BODY, "version": "2026-02-01"}), encoding="utf-8")
    out = ok(db_url, "policy", "load", str(path)).stdout
    assert "Policy shop-eu version 2026-02-01 is now active" in out
    with db.read(engine) as conn:
        assert conn.execute(select(merchant_policies.c.version)).scalars().all() == [
            "2026-02-01"]


def test_policy_below_the_statutory_floor_is_refused_and_audited(db_url, engine, tmp_path):
    path = tmp_path / "stingy.yaml"
    path.write_text(POLICY_YAML.replace("days: 30", "days: 10"), encoding="utf-8")
    result = refused(db_url, "policy_below_statutory_floor", "policy", "load", str(path))
    assert "window.days 10 is below the statutory 14 days" in result.stderr
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(merchant_policies)).scalar() == 0
    (rec,) = audit_rows(engine, "cli.policy.load")
    assert (rec["outcome"], rec["origin"], rec["object_type"]) == ("refused", "cli", "policy")
    assert rec["summary"]["code"] == "policy_below_statutory_floor"
    assert "window.days 10" in rec["summary"]["detail"]
    assert "No refund policy is configured" in ok(db_url, "policy", "show").stdout
    assert_chain_intact(engine)


def test_policy_with_an_unknown_key_or_a_taken_version_is_refused(db_url, engine, tmp_path,
                                                                  policy_file):
    typo = tmp_path / "typo.yaml"
    typo.write_text(POLICY_YAML + "refund_windw: 30\n", encoding="utf-8")
    result = refused(db_url, "policy_invalid", "policy", "load", str(typo))
    assert "refund_windw: unknown field" in result.stderr
    not_a_mapping = tmp_path / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n", encoding="utf-8")
    refused(db_url, "policy_invalid", "policy", "load", str(not_a_mapping))

    ok(db_url, "policy", "load", str(policy_file))
    again = refused(db_url, "conflict", "policy", "load", str(policy_file))
    assert "version 2026-01-01 already exists" in again.stderr
    with db.read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(merchant_policies)).scalar() == 1
    outcomes = [r["outcome"] for r in audit_rows(engine, "cli.policy.load")]
    assert outcomes == ["refused", "refused", "allowed", "refused"]


def test_missing_policy_file_is_a_usage_error(db_url, tmp_path):
    result = run(db_url, "policy", "load", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_policy_presets(db_url):
    listed = json.loads(ok(db_url, "policy", "presets", "--json").stdout)
    assert [p["id"] for p in listed] == list(list_presets())
    eu = next(p for p in listed if p["id"] == "EU-CRD")
    assert (eu["jurisdiction"], eu["version"]) == ("EU", "2026-06-19")
    assert _table_row(ok(db_url, "policy", "presets").stdout, "UK-CRA")[:3] == [
        "UK-CRA", "UK", "2015-10-01"]

    preset = json.loads(ok(db_url, "policy", "preset", "EU-CRD", "--json").stdout)
    assert (preset["window"]["days"], preset["refund_deadline"]["days"]) == (14, 14)
    text = ok(db_url, "policy", "preset", "AU-ACL").stdout
    assert text.startswith("id: AU-ACL\n") and "change_of_mind: false" in text
    assert "presets: AU-ACL, EU-CRD" in refused(db_url, "not_found", "policy", "preset",
                                                "XX-NOPE").stderr


# ----------------------------------------------------------------------- refunds: fixtures


@pytest.fixture
def staff(engine, clock):
    """An agent, two approvers and a viewer; returns email -> user id."""
    people = {"ana@shop.example": "agent", "bo@shop.example": "approver",
              "cy@shop.example": "approver", "dee@shop.example": "viewer"}
    ids = {}
    with db.write(engine) as conn:
        for email, role in people.items():
            user = access.create_user(conn, clock, seller_id="sel_default", email=email,
                                      name=email.split("@")[0].title(), role=role,
                                      password=PASSWORD)
            ids[email] = user["id"]
    return ids


@pytest.fixture
def shop(db_url, engine, policy_file, staff):
    """The shop-eu policy active (approval above 200.00 EUR, four eyes above 500.00 EUR)."""
    ok(db_url, "policy", "load", str(policy_file))
    return staff


def _actor(staff: dict, email: str, role: str) -> Actor:
    return Actor(id=staff[email], kind="staff", role=role, origin="test")


def _paid_invoice(engine, clock) -> dict:
    """EUR 2 × 400.00 at 25 % tax-exclusive: net 800.00 + tax 200.00 = 1,000.00, paid by card."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name="Ada Lovelace", country="DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Desk lamp", 2, 40000, Decimal("0.25"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=100000,
                       currency="EUR", card={"token": "tok_1", "brand": "visa", "last4": "4242"})
    return inv


def _pending_refund(engine, clock, actor: Actor, amount: int = 60000) -> tuple[dict, dict]:
    inv = _paid_invoice(engine, clock)
    with db.write(engine) as conn:
        refund = refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            "amount", "original_payment", "requested_by_customer", amount_minor=amount),
            actor=actor)
    assert refund["status"] == "pending_approval"
    return inv, refund


def _status(engine, refund_id: str) -> tuple[str, str | None]:
    with db.read(engine) as conn:
        row = conn.execute(select(refunds_table.c.status, refunds_table.c.approved_by)
                           .where(refunds_table.c.id == refund_id)).one()
    return row.status, row.approved_by


# ---------------------------------------------------------------------- refunds overdue


def test_overdue_lists_due_soon_and_late_refunds(db_url, engine, shop):
    now = SystemClock().now()  # the CLI reads the real clock
    agent = _actor(shop, "ana@shop.example", "agent")
    recent_inv, recent = _pending_refund(engine, FixedClock(now - timedelta(days=5)), agent)
    old_inv, old = _pending_refund(engine, FixedClock(now - timedelta(days=40)), agent, 45000)
    assert now < recent["due_at"] <= now + timedelta(days=14)
    assert old["due_at"] < now

    soon = json.loads(ok(db_url, "refunds", "overdue", "--within-days", "14", "--json").stdout)
    assert [(r["id"], r["overdue"], r["amount_minor"], r["status"]) for r in soon] == [
        (old["id"], True, 45000, "pending_approval"),
        (recent["id"], False, 60000, "pending_approval")]
    assert soon[1]["due_at"] == recent["due_at"].isoformat()

    table = ok(db_url, "refunds", "overdue", "--within-days", "14").stdout
    assert "Refunds late or due within 14 days" in table
    assert _table_row(table, old["id"]) == [
        old["id"], old_inv["number"], "€450.00", "pending_approval",
        old["due_at"].strftime("%Y-%m-%d %H:%M:%S"), "LATE"]
    assert _table_row(table, recent["id"]) == [
        recent["id"], recent_inv["number"], "€600.00", "pending_approval",
        recent["due_at"].strftime("%Y-%m-%d %H:%M:%S"), "due soon"]

    late_only = json.loads(ok(db_url, "refunds", "overdue", "--json").stdout)
    assert [r["id"] for r in late_only] == [old["id"]]
    other_seller = json.loads(ok(db_url, "refunds", "overdue", "--within-days", "14",
                                 "--seller", "sel_nobody", "--json").stdout)
    assert other_seller == []


def test_overdue_with_nothing_due(db_url):
    assert ok(db_url, "refunds", "overdue").stdout == "No refund is late.\n"
    assert ok(db_url, "refunds", "overdue", "--within-days", "7").stdout == (
        "No refund is late or due within 7 days.\n")


# ---------------------------------------------------------------- refunds approve / reject


def test_a_second_person_approves_and_the_cli_audits_it(db_url, engine, clock, shop):
    inv, refund = _pending_refund(engine, clock, _actor(shop, "ana@shop.example", "agent"))
    assert refund["decision"]["four_eyes"] is True
    out = ok(db_url, "refunds", "approve", refund["id"], "--as", "bo@shop.example",
             "--comment", "Checked the return").stdout
    assert out == (f"Refund {refund['id']} approved by bo@shop.example: €600.00, "
                   "now succeeded.\n")
    assert _status(engine, refund["id"]) == ("succeeded", shop["bo@shop.example"])
    with db.read(engine) as conn:
        after = get_invoice(conn, inv["id"])
        events = refunds.get_refund(conn, refund["id"])["events"]
    assert (after["amount_refunded_minor"], after["amount_refundable_minor"]) == (60000, 40000)
    approved = next(e for e in events if e["to_status"] == "approved")
    assert (approved["actor_id"], approved["actor_role"], approved["comment"]) == (
        shop["bo@shop.example"], "approver", "Checked the return")

    (rec,) = audit_rows(engine, "cli.refunds.approve")
    assert (rec["outcome"], rec["origin"], rec["actor_kind"], rec["actor_id"],
            rec["actor_role"], rec["object_type"], rec["object_id"]) == (
        "allowed", "cli", "staff", shop["bo@shop.example"], "approver", "re", refund["id"])
    assert rec["summary"]["after"]["status"] == "succeeded"
    assert rec["summary"]["after"]["amount_minor"] == 60000
    assert_chain_intact(engine)


def test_the_requester_cannot_approve_a_four_eyes_refund(db_url, engine, clock, shop):
    bo = _actor(shop, "bo@shop.example", "approver")
    _, refund = _pending_refund(engine, clock, bo)
    result = refused(db_url, "four_eyes_required", "refunds", "approve", refund["id"],
                     "--as", "bo@shop.example")
    assert shop["bo@shop.example"] in result.stderr
    assert _status(engine, refund["id"]) == ("pending_approval", None)
    (rec,) = audit_rows(engine, "cli.refunds.approve")
    assert (rec["outcome"], rec["actor_id"], rec["origin"], rec["object_id"]) == (
        "refused", shop["bo@shop.example"], "cli", refund["id"])
    assert rec["summary"]["code"] == "four_eyes_required"
    # another approver may
    ok(db_url, "refunds", "approve", refund["id"], "--as", "cy@shop.example")
    assert _status(engine, refund["id"]) == ("succeeded", shop["cy@shop.example"])


@pytest.mark.parametrize("email, code", [("ana@shop.example", "forbidden"),
                                         ("dee@shop.example", "forbidden"),
                                         ("nobody@shop.example", "not_found")])
def test_who_may_not_approve_is_refused_and_recorded(db_url, engine, clock, shop, email, code):
    _, refund = _pending_refund(engine, clock, _actor(shop, "ana@shop.example", "agent"))
    result = refused(db_url, code, "refunds", "approve", refund["id"], "--as", email)
    if code == "forbidden":
        assert "needs refunds:approve" in result.stderr
    assert _status(engine, refund["id"]) == ("pending_approval", None)
    (rec,) = audit_rows(engine, "cli.refunds.approve")
    assert (rec["outcome"], rec["origin"], rec["summary"]["code"]) == ("refused", "cli", code)
    assert rec["actor_id"] == shop.get(email, "cli")  # an unknown email: the CLI is the actor
    assert rec["summary"]["request"]["as"] == email


def test_reject_releases_the_reserved_amount(db_url, engine, clock, shop):
    inv, refund = _pending_refund(engine, clock, _actor(shop, "ana@shop.example", "agent"))
    with db.read(engine) as conn:
        assert get_invoice(conn, inv["id"])["amount_refundable_minor"] == 40000
    missing = run(db_url, "refunds", "reject", refund["id"], "--as", "bo@shop.example")
    assert missing.exit_code == 2 and "--comment" in missing.output  # a reason is required
    out = ok(db_url, "refunds", "reject", refund["id"], "--as", "bo@shop.example",
             "--comment", "Goods never came back").stdout
    assert out == (f"Refund {refund['id']} rejected by bo@shop.example: €600.00, "
                   "now rejected.\n")
    with db.read(engine) as conn:
        assert get_invoice(conn, inv["id"])["amount_refundable_minor"] == 100000
        events = refunds.get_refund(conn, refund["id"])["events"]
    assert events[-1]["comment"] == "Goods never came back"
    refused(db_url, "invalid_transition", "refunds", "approve", refund["id"], "--as",
            "cy@shop.example")
    assert [r["outcome"] for r in audit_rows(engine, "cli.refunds.reject")] == ["allowed"]
    assert [r["outcome"] for r in audit_rows(engine, "cli.refunds.approve")] == ["refused"]


# ------------------------------------------------------------- users and keys are audited


def test_users_and_keys_writes_are_audited_without_secrets(db_url, engine):
    boot = ok(db_url, "users", "bootstrap").stdout
    admin_password = boot.split("password:")[1].split()[0]
    ok(db_url, "users", "bootstrap")  # nothing to do: nothing recorded
    ok(db_url, "users", "create", "--email", "eve@shop.example", "--name", "Eve", "--role",
       "approver", "--password", PASSWORD)
    key = json.loads(ok(db_url, "keys", "create", "--name", "shop", "--role", "agent",
                        "--json").stdout)
    ok(db_url, "keys", "revoke", key["id"])
    refused(db_url, "validation_failed", "users", "create", "--email", "weak@shop.example",
            "--name", "Weak", "--role", "agent", "--password", "short1")

    with db.read(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(
            select(audit_records).order_by(audit_records.c.seq))]
    assert [(r["action"], r["outcome"], r["object_type"]) for r in rows] == [
        ("cli.users.bootstrap", "allowed", "usr"), ("cli.users.create", "allowed", "usr"),
        ("cli.keys.create", "allowed", "key"), ("cli.keys.revoke", "allowed", "key"),
        ("cli.users.create", "refused", None)]
    assert all((r["origin"], r["actor_kind"], r["actor_id"], r["actor_role"]) ==
               ("cli", "cli", "cli", "admin") for r in rows)
    assert rows[2]["object_id"] == rows[3]["object_id"] == key["id"]
    assert rows[1]["summary"]["after"]["email"] == "eve@shop.example"
    dumped = json.dumps([r["summary"] for r in rows])
    for secret in (admin_password, PASSWORD, "short1", key["token"],
                   key["token"].rsplit("_", 1)[1]):
        assert secret not in dumped
    assert_chain_intact(engine)


# ------------------------------------------------------------------------------------ demo


def test_demo_stores_its_policy_and_an_approval_queue(db_url, engine):
    out = ok(db_url, "demo", "--seed", "3", "--customers", "12", "--invoices", "120").stdout
    assert _table_row(out, "policies") == ["policies", "1"]
    # the first admin, the demo agent and the demo approver
    assert _table_row(out, "staff users") == ["staff users", "3"]
    queued = int(_table_row(out, "refunds pending approval")[1])
    assert 1 <= queued <= 3
    with db.read(engine) as conn:
        (policy,) = conn.execute(select(merchant_policies)).all()
        agent = access.find_login(conn, "agent@payback.local")
        pending = conn.execute(select(refunds_table).where(
            refunds_table.c.status == "pending_approval")).all()
    assert (policy.policy_id, policy.version, policy.active) == ("payback-demo", "2026-01-01",
                                                                 True)
    assert policy.body["extends"] == "EU-CRD"
    assert policy.body["store_credit"] == {"bonus_percent": 10}
    assert policy.body["approvals"]["auto_approve_up_to_minor"]["EUR"] == 20000
    assert policy.body["approvals"]["require_approval_above_minor"]["EUR"] == 50000
    assert policy.body["approvals"]["four_eyes_above_minor"]["EUR"] == 50000
    assert agent.role == "agent"
    assert len(pending) == queued
    thresholds = policy.body["approvals"]["four_eyes_above_minor"]
    for r in pending:
        assert r.requested_by == agent.id and r.approved_by is None
        assert r.amount_minor > thresholds[r.currency]
        assert r.amount_minor <= policy.body["role_limits_minor"]["agent"][r.currency]
        assert r.decision["four_eyes"] is True and r.decision["outcome"] == "needs_approval"
        assert r.policy_id == "payback-demo" and r.created_at < datetime(2027, 1, 1, tzinfo=UTC)
    # the agent filled the queue; the demo agent may not approve, an admin may
    first = sorted(pending, key=lambda r: r.id)[0]
    refused(db_url, "forbidden", "refunds", "approve", first.id, "--as", "agent@payback.local")
    assert "demo not seeded" in ok(db_url, "demo", "--if-empty").stdout
