"""``payback users …`` and ``payback keys …`` end to end through ``typer.testing.CliRunner``, on
SQLite and PostgreSQL (``PAYBACK_DATABASE_URL`` = the ``db_url`` fixture).

Covers: ``users bootstrap`` creates the first admin once and prints a password that really logs in,
then never again (nor on a database that already has staff); ``users create`` with a prompted,
given or generated password, refusing duplicates, weak passwords and unknown roles or sellers with
``error[<code>]`` and exit 2; ``users list`` never shows a hash; ``keys create`` prints a token
that authenticates with the declared role and scopes and is stored only as a digest;
``keys list`` shows prefix and status, never the secret; ``keys revoke`` stops the key and refuses
another seller's id like a missing one.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from payback import db
from payback.access import service
from payback.access.errors import Unauthenticated
from payback.access.tables import api_keys, sellers, staff_users
from payback.cli import app
from payback.clock import SystemClock

TOKEN = re.compile(r"pb_[a-z0-9]{12}_[a-z2-7]{52}")
PASSWORD = "correct horse 42 battery"


def run(db_url: str, *args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input,
                              env={"PAYBACK_DATABASE_URL": db_url, "COLUMNS": "220"})


def ok(db_url: str, *args: str, input: str | None = None):
    result = run(db_url, *args, input=input)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def refused(db_url: str, code: str, *args: str, input: str | None = None):
    result = run(db_url, *args, input=input)
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert f"error[{code}]:" in result.stderr, result.stderr
    return result


def rows(engine, table) -> list:
    with db.read(engine) as conn:
        return conn.execute(select(table)).all()


def test_bootstrap_creates_the_first_admin_once(db_url, engine):
    first = ok(db_url, "users", "bootstrap")
    assert "shown ONCE" in first.stdout
    email = re.search(r"email:\s+(\S+)", first.stdout).group(1)
    password = re.search(r"password:\s+(\S+)", first.stdout).group(1)
    assert email == "admin@payback.local" and len(password) == 24
    with db.write(engine) as conn:
        admin = service.authenticate_password(conn, SystemClock(), email, password)
    assert (admin.role, admin.seller_id, admin.kind) == ("admin", "sel_default", "staff")
    second = ok(db_url, "users", "bootstrap")
    assert "Staff users exist already: no admin created." in second.stdout
    assert password not in second.stdout
    assert [(r.email, r.role) for r in rows(engine, staff_users)] == [(email, "admin")]


def test_bootstrap_does_nothing_when_any_staff_user_exists(db_url, engine, clock):
    with db.write(engine) as conn:
        service.create_user(conn, clock, seller_id="sel_default", email="ana@shop.example",
                            name="Ana", role="viewer", password=PASSWORD)
        assert service.ensure_first_admin(conn, clock) is None
    assert "no admin created" in ok(db_url, "users", "bootstrap").stdout
    assert [r.email for r in rows(engine, staff_users)] == ["ana@shop.example"]


def test_users_create_and_list(db_url, engine):
    prompted = ok(db_url, "users", "create", "--email", "Ana@Shop.example", "--name", "Ana",
                  "--role", "agent", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert "Created staff user usr_" in prompted.stdout and "ana@shop.example" in prompted.stdout
    assert PASSWORD not in prompted.stdout
    ok(db_url, "users", "create", "--email", "bo@shop.example", "--name", "Bo", "--role",
       "auditor", "--password", PASSWORD)
    generated = ok(db_url, "users", "create", "--email", "cy@shop.example", "--name", "Cy",
                   "--role", "viewer", "--generate-password", "--json")
    made = json.loads(generated.stdout)
    assert made["role"] == "viewer" and "password_hash" not in made
    with db.write(engine) as conn:
        for email, password in (("ana@shop.example", PASSWORD), ("bo@shop.example", PASSWORD),
                                ("cy@shop.example", made["password"])):
            assert service.authenticate_password(conn, SystemClock(), email, password).name
    listed = json.loads(ok(db_url, "users", "list", "--json").stdout)
    assert [(u["email"], u["role"]) for u in listed] == [
        ("ana@shop.example", "agent"), ("bo@shop.example", "auditor"),
        ("cy@shop.example", "viewer")]
    assert all("password_hash" not in u for u in listed)
    table = ok(db_url, "users", "list").stdout
    assert "bo@shop.example" in table and "auditor" in table and "$argon2" not in table


@pytest.mark.parametrize("args, code", [
    (("--email", "dup@shop.example", "--role", "agent", "--password", PASSWORD),
     "email_taken"),
    (("--email", "new@shop.example", "--role", "agent", "--password", "short1"),
     "validation_failed"),
    (("--email", "new@shop.example", "--role", "agent", "--password", "no digits at all"),
     "validation_failed"),
    (("--email", "new@shop.example", "--role", "root", "--password", PASSWORD),
     "validation_failed"),
    (("--email", "new@shop.example", "--role", "agent", "--password", PASSWORD, "--seller",
      "sel_nope"), "not_found"),
])
def test_users_create_refusals(db_url, engine, args, code):
    ok(db_url, "users", "create", "--email", "dup@shop.example", "--name", "Dup", "--role",
       "viewer", "--password", PASSWORD)
    refused(db_url, code, "users", "create", "--name", "N", *args)
    assert [r.email for r in rows(engine, staff_users)] == ["dup@shop.example"]


def test_keys_create_list_revoke(db_url, engine):
    out = ok(db_url, "keys", "create", "--name", "shop backend", "--role", "agent",
             "--scope", "refunds:create", "--scope", "refunds:read", "--expires-in-days", "90")
    token = TOKEN.search(out.stdout).group(0)
    assert "shown ONCE" in out.stdout
    with db.write(engine) as conn:
        principal = service.authenticate_key(conn, SystemClock(), token)
    assert (principal.role, principal.scopes) == ("agent",
                                                  frozenset({"refunds:create", "refunds:read"}))
    [row] = rows(engine, api_keys)
    assert row.created_by == "cli" and row.secret_hash.startswith("sha256$")
    assert token.split("_")[2] not in row.secret_hash
    assert (row.expires_at - row.created_at).days == 90
    listed = json.loads(ok(db_url, "keys", "list", "--json").stdout)
    assert [(k["id"], k["prefix"], k["scopes"]) for k in listed] == [
        (row.id, row.prefix, ["refunds:create", "refunds:read"])]
    assert token not in json.dumps(listed) and "secret_hash" not in listed[0]
    table = ok(db_url, "keys", "list").stdout
    assert f"pb_{row.prefix}_…" in table and "active" in table
    assert token.split("_")[2] not in table
    revoked = ok(db_url, "keys", "revoke", row.id)
    assert f"Revoked API key {row.id}" in revoked.stdout
    with db.write(engine) as conn, pytest.raises(Unauthenticated):
        service.authenticate_key(conn, SystemClock(), token)
    assert "revoked" in ok(db_url, "keys", "list").stdout


def test_keys_json_output_and_refusals(db_url, engine):
    made = json.loads(ok(db_url, "keys", "create", "--name", "ops", "--role", "admin",
                         "--json").stdout)
    assert TOKEN.fullmatch(made["token"]) and made["scopes"] is None
    refused(db_url, "validation_failed", "keys", "create", "--name", "x", "--role", "viewer",
            "--scope", "refunds:create")  # a viewer cannot be scoped to what it lacks
    refused(db_url, "not_found", "keys", "revoke", "key_" + "0" * 26)
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id="sel_b", name="B",
                                             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    # the key exists, but not for seller sel_b: the same answer as a missing id, nothing revoked
    refused(db_url, "not_found", "keys", "revoke", made["id"], "--seller", "sel_b")
    assert [r.revoked_at for r in rows(engine, api_keys)] == [None]
    assert json.loads(ok(db_url, "keys", "list", "--seller", "sel_b", "--json").stdout) == []
