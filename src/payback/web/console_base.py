"""What every staff console page gets: the logged-in user, the permission check, the CSRF check,
one-transaction audited writes, and HTML rendering with Jinja2 (autoescaped).

``console`` is the dependency of every console route behind the login. In order, it:
1. finds the session named by the cookie (none, expired, idle, revoked, or a deactivated user →
   303 to ``/console/login?next=…``);
2. on a POST, reads the form and compares its ``csrf_token`` with the session's (missing or
   wrong → 403 page, nothing runs, the refusal is audited);
3. looks the route up in ``CONSOLE_ROUTES`` and checks the user's role holds its permission
   (undeclared or missing → 403 page, audited).

A check that fails raises ``ConsoleExit`` carrying the finished HTML response; ``ConsoleRoute``
(the route class of every console router) sends it as is, and turns any other error into an
HTML page too. Writes go through ``Console.write``: the service call
and its audit record in ONE transaction, as API writes are; a ``DomainError`` is audited as a
refusal in a transaction of its own and re-raised for the page to show its message.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from payback import db
from payback.access.domain import Principal, allowed
from payback.actor import Actor
from payback.audit import service as audit
from payback.errors import DomainError
from payback.money import format_money
from payback.web import console_view, sessions
from payback.web.console_access import navigation, route_permission

log = logging.getLogger(__name__)

#: The key fields of a result kept in the audit record's "after" (as the API keeps them).
RESULT_FIELDS = ("id", "status", "number", "amount_minor", "currency", "invoice_id",
                 "customer_id", "method", "approved_by")
#: Form fields never copied into the audit trail (they are tokens, not business input).
TOKEN_FIELDS = frozenset({"csrf_token", "form_token", "login_token", "password"})
#: Messages shown after a redirect (``?flash=<key>``): fixed texts, never taken from the URL.
FLASHES = {
    "logged_out": "You are logged out.",
    "expired": "Your session has ended. Log in again to continue.",
    "refund_created": "The refund was created.",
    "refund_approved": "The refund was approved.",
    "refund_rejected": "The refund was rejected.",
    "refund_canceled": "The refund was canceled.",
}
#: Sent with every console page: no framing (clickjacking), no scripts from anywhere else, no
#: caching of pages that show customer data.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                               "script-src 'none'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ConsoleExit(Exception):
    """Stop handling the request and send this (already rendered) response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class ConsoleRoute(APIRoute):
    """A console route answers in HTML whatever happens: a check's ready-made response
    (``ConsoleExit``: a login redirect, a 403 page), an HTTP error as a page, and an unexpected
    error as a 500 page without any detail (the traceback goes to the log only; the write
    transaction, if any, was rolled back)."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except ConsoleExit as stop:
                return stop.response
            except StarletteHTTPException as exc:
                return error_page(request, exc.status_code, "The request was refused",
                                  str(exc.detail))
            except Exception:
                log.exception("console request failed: %s %s", request.method,
                              request.url.path)
                return error_page(request, 500, "Something went wrong",
                                  "An unexpected error occurred and nothing was changed. Try "
                                  "again; if it happens again, tell your administrator the "
                                  "time it happened.")
        return guarded


# ------------------------------------------------------------------------------- templates


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("payback.web", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=_money, when=_when, day=_day, words=_words)
    env.globals["labels"] = console_view
    return env


def _money(minor: int | None, currency: str | None) -> str:
    if minor is None or not currency:
        return "—"
    return format_money(int(minor), currency, "en_US")


def _instant(value: datetime | str | None) -> datetime | None:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return value


def _when(value: datetime | str | None) -> str:
    """``2026-01-15 10:00 UTC``: every time in Payback is UTC."""
    at = _instant(value)
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "—"


def _day(value: datetime | str | None) -> str:
    at = _instant(value)
    return at.strftime("%Y-%m-%d") if at else "—"


def _words(value: str | None) -> str:
    """``pending_approval`` → ``pending approval``."""
    return (value or "").replace("_", " ")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def page(request: Request, template: str, *, status: int = 200, session=None,
         **values: Any) -> HTMLResponse:
    """Render a console template with what every page shows (navigation, user, CSRF token,
    flash message)."""
    user = session.user if session is not None else None
    flash_key = request.query_params.get("flash", "")
    values.setdefault("error", None)
    values.setdefault("flash", FLASHES.get(flash_key))
    html = environment().get_template(f"console/{template}").render(
        request_path=request.url.path, user=user,
        email=session.email if session is not None else None,
        nav=navigation(user) if user is not None else [],
        csrf_token=session.csrf_token if session is not None else "",
        can=(lambda permission: allowed(user, permission)) if user is not None else
        (lambda _permission: False),
        **values)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, title: str, detail: str,
               session=None) -> HTMLResponse:
    return page(request, "error.html", status=status, session=session, title=title,
                detail=detail)


def redirect(path: str, **query: str) -> RedirectResponse:
    """A 303 (See Other): after a POST the browser GETs the target."""
    target = f"{path}?{urlencode(query)}" if query else path
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path inside the console (never another site)."""
    if (not target or not target.startswith("/console") or target.startswith("//")
            or "\\" in target or any(ord(c) < 32 for c in target)):
        return "/console"
    return target


def login_redirect(request: Request, *, expired: bool) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = here if request.method == "GET" else "/console"
    query = {"next": target, **({"flash": "expired"} if expired else {})}
    response = redirect("/console/login", **query)
    if expired:
        response.delete_cookie(sessions.SESSION_COOKIE, path=sessions.COOKIE_PATH)
    return response


# ---------------------------------------------------------------------------------- context


@dataclass
class Console:
    """One console request: who is asking, the parsed form of a POST, and the app's engine,
    clock and settings."""

    request: Request
    session: sessions.Session
    form: dict[str, str] = field(default_factory=dict)
    form_lists: dict[str, list[str]] = field(default_factory=dict)

    @property
    def user(self) -> Principal:
        return self.session.user

    @property
    def engine(self):
        return self.request.app.state.engine

    @property
    def clock(self):
        return self.request.app.state.clock

    @property
    def settings(self):
        return self.request.app.state.settings

    @property
    def actor(self) -> Actor:
        return Actor(id=self.user.id, kind="staff", role=self.user.role,
                     seller_id=self.user.seller_id, origin=client_ip(self.request),
                     request_id=getattr(self.request.state, "request_id", None))

    def can(self, permission: str) -> bool:
        return allowed(self.user, permission)

    def page(self, template: str, *, status: int = 200, **values: Any) -> HTMLResponse:
        return page(self.request, template, status=status, session=self.session, **values)

    def error(self, err: DomainError) -> HTMLResponse:
        return error_page(self.request, err.status, err.title, err.detail, self.session)

    async def read(self, call: Callable[[Connection], Any]) -> Any:
        def work():
            with db.read(self.engine) as conn:
                return call(conn)
        return await run_in_threadpool(work)

    def business_fields(self) -> dict[str, Any]:
        """The submitted form without its tokens: what the audit record keeps as the request."""
        return {k: v for k, v in self.form.items() if k not in TOKEN_FIELDS}

    def record(self, conn: Connection, action: str, *, outcome: str, object_type: str | None,
               object_id: str | None, summary: dict, at: datetime) -> None:
        """One audit record with this request's actor, origin and request id."""
        audit.record(conn, at=at, actor_id=self.user.id, actor_kind="staff",
                     actor_role=self.user.role, seller_id=self.user.seller_id, action=action,
                     object_type=object_type, object_id=object_id, outcome=outcome,
                     summary={"via": "console", **summary}, origin=client_ip(self.request),
                     request_id=getattr(self.request.state, "request_id", None))

    def record_write(self, conn: Connection, action: str, object_type: str, object_id: str,
                     result: Any, at: datetime) -> None:
        after = {k: result[k] for k in RESULT_FIELDS if isinstance(result, dict) and k in result}
        self.record(conn, action, outcome="allowed", object_type=object_type,
                    object_id=object_id, at=at,
                    summary={"params": dict(self.request.path_params),
                             "request": self.business_fields(), "after": after})

    def record_refusal(self, action: str, object_type: str | None, object_id: str | None,
                       err: DomainError, at: datetime) -> None:
        """A refused write, in a transaction of its own: the change never happened, the
        attempt did."""
        with db.write(self.engine) as conn:
            self.record(conn, action, outcome="refused", object_type=object_type,
                        object_id=object_id, at=at,
                        summary={"params": dict(self.request.path_params),
                                 "request": self.business_fields(), "code": err.code,
                                 "detail": err.detail})

    async def write(self, action: str, object_type: str, object_id: str,
                    call: Callable[[Connection], Any]) -> Any:
        """Run one service call and its audit record in one transaction; a DomainError is
        audited as a refusal and re-raised."""
        now = self.clock.now()

        def work():
            try:
                with db.write(self.engine) as conn:
                    result = call(conn)
                    self.record_write(conn, action, object_type, object_id, result, now)
                    return result
            except DomainError as err:
                self.record_refusal(action, object_type, object_id, err, now)
                raise
        return await run_in_threadpool(work)


# ------------------------------------------------------------------------------ dependency


async def console(request: Request) -> Console:
    """The dependency of every console route behind the login (see the module docstring)."""
    session = await run_in_threadpool(_current_session, request)
    if session is None:
        had_cookie = bool(request.cookies.get(sessions.SESSION_COOKIE))
        raise ConsoleExit(login_redirect(request, expired=had_cookie))
    ctx = Console(request, session)
    if request.method == "POST":
        await _read_form(ctx)
        if not sessions.same_token(ctx.form.get("csrf_token"), session.csrf_token):
            await run_in_threadpool(_refuse, ctx, "csrf_token_invalid")
            raise ConsoleExit(error_page(
                request, 403, "This form has expired",
                "The form was not sent from this console session, or the session changed "
                "since the page was opened. Nothing was changed: reload the page and try "
                "again.", session))
    template = getattr(request.scope.get("route"), "path", None) or request.url.path
    permission = route_permission(request.method, template)
    if permission is None or not allowed(session.user, permission):
        await run_in_threadpool(_refuse, ctx, f"missing_permission:{permission}")
        raise ConsoleExit(error_page(
            request, 403, "Not allowed",
            f"Your role ({session.user.role}) does not include "
            f"{permission or 'this page'}. Ask an administrator if you need it.", session))
    return ctx


async def _read_form(ctx: Console) -> None:
    form = await ctx.request.form()
    ctx.form = {k: v for k, v in form.items() if isinstance(v, str)}
    ctx.form_lists = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}


def _current_session(request: Request) -> sessions.Session | None:
    app = request.app
    now = app.state.clock.now()
    token = request.cookies.get(sessions.SESSION_COOKIE)
    if not token:
        return None
    with db.read(app.state.engine) as conn:
        found = sessions.load_session(conn, app.state.settings, token, now)
    if found is not None and found.stale:
        with db.write(app.state.engine) as conn:
            sessions.touch(conn, found, now)
    return found


def _refuse(ctx: Console, reason: str) -> None:
    """A request refused before it reached its page: audited like the API's refusals."""
    try:
        with db.write(ctx.engine) as conn:
            ctx.record(conn, f"console.{ctx.request.method.lower()}", outcome="refused",
                       object_type=None, object_id=None, at=ctx.clock.now(),
                       summary={"params": dict(ctx.request.path_params), "reason": reason,
                                "method": ctx.request.method,
                                "path": quote(ctx.request.url.path)})
    except Exception:  # noqa: BLE001 - the refusal stands whatever happens here
        log.exception("could not audit a refused console request")
