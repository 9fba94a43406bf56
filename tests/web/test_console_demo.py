"""``payback demo`` opens the console to a newcomer, on SQLite and PostgreSQL: it creates an agent
and a different approver (and the first admin when no staff exists), prints their passwords once
with the console's address, and those passwords really log in, each with its own role."""

from __future__ import annotations

import re

from sqlalchemy import select
from typer.testing import CliRunner

from payback import db
from payback.access.tables import staff_users
from payback.cli import app as cli

from .conftest import login

LINE = re.compile(r"^\s+(admin|agent|approver)\s+(\S+@payback\.local)\s+([A-Za-z0-9]{24})$",
                  re.MULTILINE)


def _run(db_url: str, *args: str):
    result = CliRunner().invoke(cli, list(args), env={"PAYBACK_DATABASE_URL": db_url,
                                                      "COLUMNS": "80"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_demo_prints_console_logins_that_work(db_url, engine, client_factory):
    out = _run(db_url, "demo", "--customers", "3", "--invoices", "8")
    assert "Web console: http://127.0.0.1:8000/console" in out
    logins = {role: (email, password) for role, email, password in LINE.findall(out)}
    assert set(logins) == {"admin", "agent", "approver"}  # no staff existed: admin too
    with db.read(engine) as conn:
        roles = dict(conn.execute(select(staff_users.c.email, staff_users.c.role)).all())
    assert roles == {email: role for role, (email, _pw) in logins.items()}
    for role, (email, password) in logins.items():
        client = client_factory()
        assert login(client, email, password).status_code == 303, role
        page = client.get("/console")
        assert f"({role})" in page.text
    # Run again on a seeded database: nothing new, no password printed.
    again = _run(db_url, "demo", "--if-empty")
    assert not LINE.findall(again)


def test_demo_after_bootstrap_points_to_the_admin_password_printed_before(db_url):
    boot = _run(db_url, "users", "bootstrap")
    assert "admin@payback.local" in boot
    out = _run(db_url, "demo", "--customers", "2", "--invoices", "4")
    found = {role for role, _email, _pw in LINE.findall(out)}
    assert found == {"agent", "approver"}
    assert "(password printed by `payback users bootstrap` above)" in out
    assert out.rstrip().splitlines()[-1].startswith("Next: payback serve, then log in at "
                                                    "http://127.0.0.1:8000/console")
