"""Authentication, key management, seller isolation and the refund rate limit over HTTP, on SQLite
and PostgreSQL.

Covers: no credentials → 401 problem with ``WWW-Authenticate: Bearer`` and nothing written;
malformed, unknown, wrong-secret, revoked and expired keys and bad Basic credentials → the same
401 body, with the internal reason handed to the audit hook only; HTTP Basic for staff (wrong
password and unknown email alike; inactive users refused); ``last_used_at`` / ``last_login_at``
kept to the minute; ``/v1/me``; API keys created over HTTP (token once, digest only at rest,
scopes checked, no Idempotency-Key, no mass assignment, no privilege escalation); revocation;
staff accounts over HTTP; seller isolation of key ids (404 like a missing id, no side effect);
the refund rate limit (429 + Retry-After, per principal, the window slides, preview not counted);
undeclared routes denied; the refusal hook sees every refusal and cannot turn one into a 500.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime, timedelta, timezone

import pytest
from fastapi import Depends
from sqlalchemy import func, select

from payback import db
from payback.access import service
from payback.access.domain import ROLE_PERMISSIONS
from payback.access.tables import api_keys, sellers, staff_users
from payback.api.deps import Context, context
from payback.refunds.tables import refunds

TOKEN = re.compile(r"^pb_[a-z0-9]{12}_[a-z2-7]{52}$")
SELLER_B = "sel_b"
PASSWORD = "correct horse 42 battery"


def basic(email: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def add_seller(engine, seller_id: str = SELLER_B) -> None:
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id=seller_id, name="Seller B",
                                             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))


def add_user(engine, clock, role: str = "agent", email: str = "ana@shop.example",
             seller_id: str = "sel_default") -> dict:
    with db.write(engine) as conn:
        return service.create_user(conn, clock, seller_id=seller_id, email=email, name="Ana",
                                   role=role, password=PASSWORD)


def key_row(engine, key_id: str):
    with db.read(engine) as conn:
        return conn.execute(select(api_keys).where(api_keys.c.id == key_id)).one()


def count(engine, table) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


@pytest.fixture
def refused(app) -> list[tuple]:
    """Every call of the app's refusal hook: (principal id or None, code, internal reason)."""
    calls: list[tuple] = []

    def hook(request, principal, code):
        calls.append((principal.id if principal else None, code,
                      getattr(request.state, "refusal_reason", None)))
    app.state.on_refused = hook
    return calls


# ------------------------------------------------------------------------ authentication


def test_no_credentials_is_a_401_problem_and_writes_nothing(anon, engine, snapshot, problem,
                                                            refused):
    before = snapshot(engine, include_idempotency=True)
    for resp in (anon.get("/v1/customers"), anon.post("/v1/customers", json={"name": "Eve"}),
                 anon.get("/v1/me"),
                 anon.get("/v1/customers", headers={"Authorization": "Bearer "})):
        body = problem(resp, 401, "unauthenticated")
        assert resp.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in body["detail"]
    assert snapshot(engine, include_idempotency=True) == before
    assert refused == [(None, "unauthenticated", "no_credentials")] * 3 + [
        (None, "unauthenticated", "malformed_authorization")]


def test_every_bad_key_gets_the_same_401(app, anon, engine, clock, key_for, problem, refused):
    good_key, good = key_for("admin")
    revoked_key, revoked = key_for("admin")
    _, expired = key_for("admin", expires_at=clock.now() + timedelta(hours=1))
    with db.write(engine) as conn:
        service.revoke_key(conn, clock, seller_id="sel_default", key_id=revoked_key["id"])
    prefix = good_key["prefix"]
    assert anon.get("/v1/me", headers={"Authorization": f"Bearer {expired}"}).status_code == 200
    clock.advance(hours=1)  # expires_at == now: expired from that instant
    cases = {
        "malformed_key": ["pb_short", "sk_live_123", good[:-1], good + "a", good.upper(),
                          f"pb_{prefix}_{'!' * 52}"],
        "unknown_key": [f"pb_{'z' * 12}_{'a' * 52}"],
        "wrong_secret_key": [f"pb_{prefix}_{'a' * 52}"],
        "revoked_key": [revoked],
        "expired_key": [expired],
    }
    bodies = set()
    for reason, tokens in cases.items():
        for token in tokens:
            refused.clear()
            resp = anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            problem(resp, 401, "unauthenticated")
            assert resp.headers["www-authenticate"] == "Bearer"
            bodies.add(resp.content)
            assert refused == [(None, "unauthenticated", reason)], token
    for header in ("Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(),
                   "Token abc", "Bearer" + "x"):
        resp = anon.get("/v1/me", headers={"Authorization": header})
        problem(resp, 401, "unauthenticated")
        if header.startswith("Basic"):
            bodies.add(resp.content)
    assert len(bodies) == 1, bodies  # one body for every bad credential: no oracle
    assert b'"detail":"invalid credentials"' in bodies.pop()
    assert anon.get("/v1/me", headers={"Authorization": f"Bearer {good}"}).status_code == 200


def test_staff_basic_auth(anon, engine, clock, problem, refused):
    user = add_user(engine, clock, role="agent")
    me = anon.get("/v1/me", headers=basic("ANA@shop.example ", PASSWORD))  # email: any case
    assert me.status_code == 200, me.text
    assert me.json() == {"id": user["id"], "kind": "staff", "seller_id": "sel_default",
                         "role": "agent", "name": "Ana", "scopes": None,
                         "permissions": sorted(ROLE_PERMISSIONS["agent"])}
    created = anon.post("/v1/customers", json={"name": "Bo"}, headers=basic(user["email"],
                                                                              PASSWORD))
    assert created.status_code == 201, created.text
    problem(anon.get("/v1/ledger/entries", headers=basic(user["email"], PASSWORD)),
            403, "forbidden")
    wrong = anon.get("/v1/me", headers=basic(user["email"], PASSWORD + "x"))
    unknown = anon.get("/v1/me", headers=basic("nobody@shop.example", PASSWORD))
    problem(wrong, 401, "unauthenticated")
    assert wrong.content == unknown.content
    assert [r[2] for r in refused[-2:]] == ["bad_password", "bad_password"]
    with db.write(engine) as conn:
        conn.execute(staff_users.update().values(active=False))
    problem(anon.get("/v1/me", headers=basic(user["email"], PASSWORD)), 401, "unauthenticated")


def test_last_used_and_last_login_are_kept_to_the_minute(anon, engine, clock, key_for):
    key, token = key_for("viewer")
    add_user(engine, clock, role="viewer")
    assert key_row(engine, key["id"]).last_used_at is None
    first = clock.now()
    for _ in range(2):
        assert anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert anon.get("/v1/me", headers=basic("ana@shop.example", PASSWORD)).status_code == 200
    assert key_row(engine, key["id"]).last_used_at == first
    clock.advance(seconds=59)
    anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert key_row(engine, key["id"]).last_used_at == first  # less than a minute: no write
    clock.advance(seconds=1)
    anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    anon.get("/v1/me", headers=basic("ana@shop.example", PASSWORD))
    assert key_row(engine, key["id"]).last_used_at == first + timedelta(minutes=1)
    with db.read(engine) as conn:
        assert conn.execute(select(staff_users.c.last_login_at)).scalar_one() \
            == first + timedelta(minutes=1)


def test_authenticate_key_in_the_service_always_records_the_use(engine, clock, key_for):
    key, token = key_for("agent", scopes=["refunds:read"])
    with db.write(engine) as conn:
        principal = service.authenticate_key(conn, clock, token)
    assert (principal.id, principal.kind, principal.role, principal.scopes) == \
        (key["id"], "api_key", "agent", frozenset({"refunds:read"}))
    assert key_row(engine, key["id"]).last_used_at == clock.now()


# ------------------------------------------------------------------------------ API keys


def test_create_key_over_http_shows_the_token_once_and_stores_a_digest(client, client_for,
                                                                         engine, clock):
    resp = client.post("/v1/api-keys", json={"name": "shop backend", "role": "agent",
                                             "scopes": ["refunds:read", "refunds:create"]})
    assert resp.status_code == 201, resp.text
    created = resp.json()
    token = created["token"]
    assert TOKEN.match(token)
    assert token.split("_")[1] == created["prefix"]
    assert created["scopes"] == ["refunds:create", "refunds:read"]
    assert created["role"] == "agent" and created["revoked_at"] is None
    assert created["created_by"] == client.get("/v1/me").json()["id"]
    me = client_for(token).get("/v1/me").json()
    assert me["permissions"] == ["refunds:create", "refunds:read"]
    assert me["scopes"] == ["refunds:create", "refunds:read"]
    listed = [k for k in client.get("/v1/api-keys").json()["data"] if k["id"] == created["id"]]
    # the same key, now used once, and without its token
    assert listed == [{**{k: v for k, v in created.items() if k != "token"},
                       "last_used_at": "2026-01-15T10:00:00Z"}]
    assert created["last_used_at"] is None
    row = key_row(engine, created["id"])
    secret = token.split("_")[2]
    assert row.secret_hash.startswith("sha256$") and len(row.secret_hash) == 7 + 64
    assert all(secret not in str(value) for value in row)  # the secret is nowhere at rest


def test_create_key_refusals(client, engine, problem):
    before = count(engine, api_keys)
    body = problem(client.post("/v1/api-keys", json={"name": "x", "role": "agent",
                                                     "scopes": ["ledger:read", "refunds:nuke"]}),
                   422, "validation_failed")
    assert "'refunds:nuke'" in body["detail"] and "'ledger:read'" in body["detail"]
    problem(client.post("/v1/api-keys", json={"name": "x", "role": "root"}), 422,
            "validation_failed")
    body = problem(client.post("/v1/api-keys", json={"name": "x", "role": "agent"},
                               headers={"Idempotency-Key": "k-1"}), 422, "validation_failed")
    assert "Idempotency-Key" in body["detail"]
    for extra in ({"seller_id": "sel_other"}, {"revoked_at": None}, {"created_by": "usr_x"},
                  {"secret_hash": "sha256$00"}, {"last_used_at": "2026-01-01T00:00:00Z"}):
        problem(client.post("/v1/api-keys", json={"name": "x", "role": "agent", **extra}),
                422, "unknown_field")
    past = problem(client.post("/v1/api-keys", json={"name": "x", "role": "agent",
                                                     "expires_at": "2026-01-15T09:00:00Z"}),
                   422, "validation_failed")
    assert "expires_at" in past["detail"]
    naive = problem(client.post("/v1/api-keys", json={"name": "x", "role": "agent",
                                                      "expires_at": "2027-01-15T09:00:00"}),
                    422, "validation_failed")
    assert "time zone" in naive["detail"]
    assert count(engine, api_keys) == before


def test_a_narrow_key_cannot_mint_a_wider_one(key_for, client_for, problem, engine):
    _, narrow = key_for("admin", scopes=["keys:manage", "refunds:read"])
    c = client_for(narrow)
    before = count(engine, api_keys)
    problem(c.post("/v1/api-keys", json={"name": "escalate", "role": "admin"}), 403,
            "forbidden")
    problem(c.post("/v1/api-keys", json={"name": "viewer", "role": "viewer"}), 403,
            "forbidden")  # a whole viewer reads customers; this key cannot
    problem(c.post("/v1/users", json={"email": "x@y.example", "name": "X", "role": "viewer",
                                      "password": PASSWORD}), 403, "forbidden")
    assert count(engine, api_keys) == before
    ok = c.post("/v1/api-keys", json={"name": "reader", "role": "viewer",
                                      "scopes": ["refunds:read"]})
    assert ok.status_code == 201, ok.text


def test_revoke_over_http(client, client_for, key_for, clock, problem):
    key, token = key_for("agent")
    assert client_for(token).get("/v1/me").status_code == 200
    resp = client.post(f"/v1/api-keys/{key['id']}/revoke")
    assert resp.status_code == 200, resp.text
    revoked_at = resp.json()["revoked_at"]
    assert revoked_at == "2026-01-15T10:00:00Z"
    problem(client_for(token).get("/v1/me"), 401, "unauthenticated")
    clock.advance(minutes=5)
    again = client.post(f"/v1/api-keys/{key['id']}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked_at  # first time kept


def test_another_sellers_key_ids_look_missing(engine, clock, key_for, client_for, problem):
    add_seller(engine)
    a_key, a_token = key_for("admin")
    _, b_token = key_for("admin", seller_id=SELLER_B)
    b = client_for(b_token)
    assert b.get("/v1/me").json()["seller_id"] == SELLER_B
    assert [k["seller_id"] for k in b.get("/v1/api-keys").json()["data"]] == [SELLER_B]
    theirs = problem(b.post(f"/v1/api-keys/{a_key['id']}/revoke"), 404, "not_found")
    missing_id = "key_" + "0" * 26
    missing = problem(b.post(f"/v1/api-keys/{missing_id}/revoke"), 404, "not_found")
    assert theirs["detail"].replace(a_key["id"], "<id>") == \
        missing["detail"].replace(missing_id, "<id>")
    assert key_row(engine, a_key["id"]).revoked_at is None  # no side effect
    assert client_for(a_token).get("/v1/me").status_code == 200
    add_user(engine, clock, email="a@shop.example")
    assert b.get("/v1/users").json()["data"] == []


# ------------------------------------------------------------------------- staff accounts


def test_create_and_list_users_over_http(client, anon, engine, problem):
    body = {"email": "Finance@Shop.example", "name": "Fin", "role": "approver",
            "password": PASSWORD}
    resp = client.post("/v1/users", json=body)
    assert resp.status_code == 201, resp.text
    user = resp.json()
    assert set(user) == {"id", "seller_id", "email", "name", "role", "active", "created_at",
                         "last_login_at"}
    assert (user["email"], user["role"], user["active"]) == ("finance@shop.example", "approver",
                                                             True)
    assert client.get("/v1/users").json()["data"] == [user]
    me = anon.get("/v1/me", headers=basic("finance@shop.example", PASSWORD)).json()
    assert (me["id"], me["role"]) == (user["id"], "approver")
    problem(client.post("/v1/users", json=body), 409, "email_taken")
    short = problem(client.post("/v1/users", json={**body, "email": "s@shop.example",
                                                   "password": "short1"}),
                    422, "validation_failed")
    assert "at least 12 characters" in short["detail"]
    letters = problem(client.post("/v1/users", json={**body, "email": "l@shop.example",
                                                     "password": "only letters here"}),
                      422, "validation_failed")
    assert "letters and digits" in letters["detail"]
    for extra in ({"active": False}, {"seller_id": SELLER_B}, {"password_hash": "x"}):
        problem(client.post("/v1/users", json={**body, "email": "m@shop.example", **extra}),
                422, "unknown_field")
    problem(client.post("/v1/users", json={**body, "email": "i@shop.example"},
                        headers={"Idempotency-Key": "u-1"}), 422, "validation_failed")
    assert count(engine, staff_users) == 1
    with db.read(engine) as conn:
        stored = conn.execute(select(staff_users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


# ----------------------------------------------------------------------------- rate limit


def test_refund_creation_is_rate_limited_per_principal(app_with, client_for, key_for,
                                                       paid_invoice, engine, clock, problem,
                                                       refused):
    limited = app_with(refund_rate_limit="3/minute")
    limited.state.on_refused = lambda req, p, code: refused.append((p and p.id, code))
    agent_key, agent = key_for("agent")
    _, other = key_for("agent")
    c = client_for(agent, limited)
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    body = {"kind": "amount", "amount_minor": 100, "reason": "goodwill"}
    for _ in range(5):  # preview is not counted
        assert c.post(url + "/preview", json=body).status_code == 200
    assert [c.post(url, json=body).status_code for _ in range(3)] == [201, 201, 201]
    resp = c.post(url, json=body)
    problem(resp, 429, "rate_limited")
    assert resp.headers["retry-after"] == "60"
    assert refused[-1] == (agent_key["id"], "rate_limited")
    assert count(engine, refunds) == 3  # the refused call did nothing
    assert client_for(other, limited).post(url, json=body).status_code == 201  # per principal
    clock.advance(seconds=45)
    assert c.post(url, json=body).headers["retry-after"] == "15"
    clock.advance(seconds=15)
    assert c.post(url, json=body).status_code == 201  # the window slid
    assert count(engine, refunds) == 5
    with db.read(engine) as conn:
        total = conn.execute(select(func.sum(refunds.c.amount_minor))).scalar_one()
    assert total == 500


# --------------------------------------------------------------------- authorization edge


def test_an_undeclared_route_is_denied_to_everyone(app, client, anon, problem, refused):
    @app.get("/v1/not-declared-anywhere")
    async def undeclared(ctx: Context = Depends(context)):
        return {"secret": True}

    body = problem(client.get("/v1/not-declared-anywhere"), 403, "forbidden")
    assert "not open to anyone" in body["detail"]
    assert refused[-1][1:] == ("forbidden", "route_not_declared")
    problem(anon.get("/v1/not-declared-anywhere"), 401, "unauthenticated")


def test_a_failing_refusal_hook_does_not_turn_a_401_into_a_500(app, anon, problem):
    def broken(request, principal, code):
        raise RuntimeError("audit store down")
    app.state.on_refused = broken
    problem(anon.get("/v1/customers"), 401, "unauthenticated")


def test_forbidden_reaches_the_hook_with_the_principal(key_for, client_for, problem, refused):
    viewer_key, viewer = key_for("viewer")
    problem(client_for(viewer).post("/v1/customers", json={"name": "Eve"}), 403, "forbidden")
    assert refused == [(viewer_key["id"], "forbidden", "missing_permission:customers:write")]
