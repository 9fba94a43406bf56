"""Logging in to the staff console, sessions and their end, on SQLite and PostgreSQL.

Covers: a login opens a server-side session (the cookie is random, HttpOnly, SameSite=Lax,
scoped to /console; the table stores only its SHA-256) and lands on ``next``; a wrong password,
an unknown email and a deactivated account get the same message, open no session and are
audited with the reason; the login form refuses a post without its pre-session token (login
CSRF); pages without a session redirect to the login with ``next``; sessions end after
``session_hours`` and after ``session_idle_minutes`` without activity (activity keeps them
alive); logout and deactivation end a session at once; ``Secure`` is set when the public URL is
HTTPS; ``next`` never leads outside the console.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import select, update

from payback import db
from payback.access.tables import staff_users
from payback.api.app import create_app
from payback.audit.tables import audit_records
from payback.web.tables import web_sessions

from .conftest import PASSWORD, console_settings, form_of, login


def _sessions(engine) -> list:
    with db.read(engine) as conn:
        return conn.execute(select(web_sessions)).all()


def _audit(engine, action: str) -> list:
    with db.read(engine) as conn:
        return conn.execute(select(audit_records).where(audit_records.c.action == action)
                            .order_by(audit_records.c.seq)).all()


def test_login_opens_a_server_side_session_and_lands_on_next(engine, anon, make_user, clock,
                                                             settings):
    user = make_user("agent")
    response = login(anon, user.email, next_path="/console/refunds?status=requested")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/refunds?status=requested"
    cookie = next(h for h in response.headers.get_list("set-cookie")
                  if h.startswith("payback_session="))
    token = cookie.split(";")[0].split("=", 1)[1]
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/console" in flags
    assert "secure" not in flags  # served over http in this test
    (row,) = _sessions(engine)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert row.user_id == user.id and row.revoked_at is None
    assert row.created_at == clock.now()
    assert row.expires_at == clock.now() + timedelta(hours=settings.session_hours)
    page = anon.get("/console")
    assert page.status_code == 200
    assert "Agent Tester" in page.text and 'id="logout"' in page.text
    (record,) = _audit(engine, "session.create")
    assert (record.actor_id, record.outcome, record.actor_role) == (user.id, "allowed", "agent")


def test_wrong_password_unknown_email_and_deactivated_user_are_refused_alike(
        engine, anon, make_user):
    user = make_user("agent")
    gone = make_user("viewer", "gone@console.test")
    with db.write(engine) as conn:
        conn.execute(update(staff_users).where(staff_users.c.id == gone.id).values(active=False))
    answers = [login(anon, user.email, "wrong password 1"),
               login(anon, "nobody@console.test", PASSWORD),
               login(anon, gone.email, PASSWORD)]
    for response in answers:
        assert response.status_code == 401
        assert "The email or password is not right" in response.text
        assert "payback_session=" not in response.headers.get("set-cookie", "")
    assert _sessions(engine) == []
    reasons = [r.summary["reason"] for r in _audit(engine, "session.create")]
    assert reasons == ["bad_password", "unknown_email", "inactive_user"]
    assert all(r.outcome == "refused" for r in _audit(engine, "session.create"))
    assert PASSWORD not in str([r.summary for r in _audit(engine, "session.create")])
    assert anon.get("/console").status_code == 303


def test_login_form_without_its_pre_session_token_is_refused(engine, anon, client_factory,
                                                             make_user):
    user = make_user("admin")
    page = anon.get("/console/login")
    action, fields = form_of(page.text, "login-form")
    fields.update(email=user.email, password=PASSWORD)
    # A foreign page can post the fields but has neither the cookie nor its token.
    attacker = client_factory()
    forged = attacker.post(action, data=fields)
    assert forged.status_code == 403
    wrong = anon.post(action, data={**fields, "login_token": "guessed"})
    assert wrong.status_code == 403
    assert _sessions(engine) == []
    assert anon.post(action, data=fields).status_code == 303


def test_pages_need_a_session_and_redirect_to_login_with_next(anon):
    response = anon.get("/console/invoices", params={"q": "INV"})
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=%2Fconsole%2Finvoices%3Fq%3DINV"
    assert anon.get("/").headers["location"] == "/console"
    posted = anon.post("/console/refunds/re_x/approve", data={"csrf_token": "x"})
    assert posted.status_code == 303 and posted.headers["location"].startswith("/console/login")


def test_next_never_leaves_the_console(anon, make_user):
    user = make_user("viewer")
    for target in ("https://evil.example/", "//evil.example/console", "/v1/refunds",
                   "/console\\@evil"):
        response = login(anon, user.email, next_path=target)
        assert response.headers["location"] == "/console", target


def test_session_ends_after_its_lifetime_even_when_active(engine, logged_in, clock, settings):
    client, _ = logged_in("viewer")
    for _ in range(settings.session_hours * 2 - 1):
        clock.advance(minutes=30)
        assert client.get("/console").status_code == 200
    clock.advance(minutes=31)
    response = client.get("/console/refunds")
    assert response.status_code == 303
    assert response.headers["location"].endswith("flash=expired")
    assert "Your session has ended" in client.get(response.headers["location"]).text


def test_idle_session_ends_and_activity_keeps_it_alive(logged_in, clock, settings):
    client, _ = logged_in("viewer")
    idle = settings.session_idle_minutes
    clock.advance(minutes=idle - 5)
    assert client.get("/console").status_code == 200  # activity: the idle timer restarts
    clock.advance(minutes=idle - 5)
    assert client.get("/console").status_code == 200
    clock.advance(minutes=idle)
    assert client.get("/console").status_code == 303


def test_logout_revokes_the_session_at_once(engine, logged_in, client_factory):
    client, user = logged_in("agent")
    cookie = client.cookies.get("payback_session")
    page = client.get("/console")
    action, fields = form_of(page.text, "logout-form")
    response = client.post(action, data=fields)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?flash=logged_out"
    (row,) = _sessions(engine)
    assert row.revoked_at is not None
    # The old cookie, replayed by anyone, opens nothing.
    replay = client_factory()
    replay.cookies.set("payback_session", cookie, path="/console")
    assert replay.get("/console").status_code == 303
    assert [r.actor_id for r in _audit(engine, "session.revoke")] == [user.id]


def test_deactivating_a_user_ends_their_session(engine, logged_in):
    client, user = logged_in("approver")
    assert client.get("/console").status_code == 200
    with db.write(engine) as conn:
        conn.execute(update(staff_users).where(staff_users.c.id == user.id).values(active=False))
    assert client.get("/console").status_code == 303


def test_cookies_are_secure_when_the_console_is_served_over_https(engine, db_url, clock,
                                                                  make_user):
    from .conftest import TestClient

    user = make_user("viewer")
    app = create_app(console_settings(db_url).model_copy(
        update={"public_url": "https://pay.example"}), engine=engine, clock=clock)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        page = client.get("/console/login")
        assert "secure" in page.headers["set-cookie"].lower()
        response = login(client, user.email)
        assert response.status_code == 303
        cookie = next(h for h in response.headers.get_list("set-cookie")
                      if h.startswith("payback_session="))
        assert "secure" in cookie.lower()


def test_login_attempts_are_throttled_per_email_then_the_window_passes(engine, anon, make_user,
                                                                      clock):
    """Ten attempts per e-mail (and per client) in 15 minutes; the eleventh is refused with 429
    without checking the password, even when it is right, and audited."""
    user = make_user("agent")
    for n in range(10):
        assert login(anon, user.email, f"guess {n}").status_code == 401
    blocked = login(anon, user.email, PASSWORD)
    assert blocked.status_code == 429
    assert "Too many login attempts" in blocked.text
    assert _sessions(engine) == []
    assert _audit(engine, "session.create")[-1].summary["reason"] == "rate_limited"
    clock.advance(minutes=16)
    assert login(anon, user.email, PASSWORD).status_code == 303
