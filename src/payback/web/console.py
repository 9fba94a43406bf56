"""The staff console: server-rendered pages under ``/console`` for support agents, approvers,
auditors and administrators (FastAPI routes + Jinja2 templates, no JavaScript build step).

The console is split by concern:
- ``console_access``: ``CONSOLE_ROUTES``, the ONE table of which permission each page needs
  (the API's permission names), and the navigation derived from it;
- ``console_base``: the per-request context (session, CSRF and permission checks, audited
  one-transaction writes, rendering);
- ``sessions``: server-side login sessions and CSRF tokens;
- ``console_auth``: login and logout;
- ``console_pages``: read-only pages (dashboard, lists, customer, audit log, settings);
- ``console_refunds``: the invoice page and refund form, the refund page, approvals.

``install(app)`` adds the routes and ``/`` → ``/console``; every console route answers in HTML
(``console_base.ConsoleRoute``), also when a check fails or something breaks. Business rules
stay in the services: the console calls the same functions as the API.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import RedirectResponse

from payback.web import console_auth, console_pages, console_refunds
from payback.web.console_access import CONSOLE_ROUTES, NAV, PUBLIC_ROUTES

__all__ = ["CONSOLE_ROUTES", "NAV", "PUBLIC_ROUTES", "install", "router"]

router = APIRouter(include_in_schema=False)
for _part in (console_auth.router, console_pages.router, console_refunds.router):
    router.include_router(_part)


async def _home() -> RedirectResponse:
    return RedirectResponse("/console", status_code=303)


def install(app: FastAPI) -> None:
    """Serve the console on ``app`` (the static files are mounted by the app factory)."""
    app.include_router(router)
    app.get("/", include_in_schema=False)(_home)
