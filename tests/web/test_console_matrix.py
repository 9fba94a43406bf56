"""The console's route table against every role, generated from ``CONSOLE_ROUTES``, on SQLite
and PostgreSQL.

For each role, one logged-in user walks every declared route: a GET page answers 200 exactly
when the role holds the page's permission and 403 otherwise; a POST carrying the session's valid
CSRF token answers 403 for a role without the permission (and changes nothing), and is let
through (anything but 403 or a server error) for a role with it. The navigation shows exactly
the pages the role may open. Every console route the app serves is declared (default deny).
"""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from payback import db
from payback.access.domain import ROLE_PERMISSIONS, Principal, allowed
from payback.actor import Actor
from payback.api.app import create_app
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.settings import Settings
from payback.web.console import CONSOLE_ROUTES, NAV, PUBLIC_ROUTES
from payback.web.console_access import navigation

from .conftest import csrf_of, snapshot

ROLES = sorted(ROLE_PERMISSIONS)
REQUESTER = Actor(id="usr_requester", kind="staff", role="agent")
# Logout ends the session: it is walked last.
ROUTES = sorted(CONSOLE_ROUTES, key=lambda r: (r[1] == "/console/logout", r[0], r[1]))


def _served_routes() -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves under /console (included routers
    are branches in FastAPI ≥ 0.13x: walk their ``effective_route_contexts``)."""
    app = create_app(Settings(database_url="sqlite://", secret_key="x"))
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            found |= {(m, route.path) for m in route.methods}
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                found |= {(m, ctx.path_format) for m in ctx.methods}
    return {(m, p) for m, p in found
            if m != "HEAD" and (p == "/console" or p.startswith("/console/"))}


def test_every_console_route_is_declared_and_every_declared_route_exists():
    served = _served_routes()
    assert served - set(CONSOLE_ROUTES) - PUBLIC_ROUTES == set(), "undeclared console routes"
    assert set(CONSOLE_ROUTES) - served == set(), "CONSOLE_ROUTES names routes not served"
    assert {("GET", path) for _label, path in NAV} <= set(CONSOLE_ROUTES)


@pytest.fixture
def objects(engine, clock, shop) -> dict[str, str]:
    """Ids for the path parameters: the shop's invoice and customer, and a refund of 600.00
    EUR that waits for approval (requested by another agent)."""
    with db.write(engine) as conn:
        refund = refunds.create_refund(conn, clock, shop["invoice"]["id"], RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=60000), actor=REQUESTER)
    assert refund["status"] == "pending_approval"
    return {"invoice_id": shop["invoice"]["id"], "customer_id": shop["customer"]["id"],
            "refund_id": refund["id"]}


@pytest.mark.parametrize("role", ROLES)
def test_each_route_answers_by_the_role_permission(role, engine, logged_in, objects):
    client, user = logged_in(role)
    principal = Principal(id=user.id, kind="staff", seller_id="sel_default", role=role,
                          name="x")
    token = None
    for method, template in ROUTES:
        path = template.format(**objects)
        holds = allowed(principal, CONSOLE_ROUTES[(method, template)])
        if method == "GET":
            response = client.get(path)
            assert response.status_code == (200 if holds else 403), (role, path)
            if holds:
                token = csrf_of(response.text)
            continue
        assert token, "a GET page must have given the session's CSRF token first"
        before = snapshot(engine) if not holds else None
        response = client.post(path, data={"csrf_token": token})
        if holds:
            assert response.status_code not in (403, 500), (role, path, response.text[:500])
        else:
            assert response.status_code == 403, (role, path)
            assert "Not allowed" in response.text
            assert snapshot(engine) == before, (role, path)


@pytest.mark.parametrize("role", ROLES)
def test_navigation_shows_exactly_the_pages_the_role_may_open(role, logged_in):
    client, user = logged_in(role)
    page = client.get("/console/customers")  # every role may read customers
    assert page.status_code == 200
    principal = Principal(id=user.id, kind="staff", seller_id="sel_default", role=role,
                          name="x")
    shown = navigation(principal)
    menu = page.text.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    for label, path in NAV:
        link = f'<a href="{path}"'
        assert (link in menu) == ((label, path) in shown), (role, path)
    for _label, path in shown:
        assert client.get(path).status_code == 200
