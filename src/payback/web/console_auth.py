"""Logging in to and out of the staff console.

- ``GET /console/login`` shows the form with a fresh pre-session token, also set in a short-lived
  cookie (login CSRF: a foreign page can post the form but cannot know the token);
- ``POST /console/login`` checks that token, then the password (Argon2, outside any database
  transaction); a refusal is audited (who tried, and why, for the trail only) and answered with
  one message whatever the cause, so the page tells nobody whether an email exists or an account
  is deactivated; a success opens a server-side session and redirects to ``next`` (a console
  path only);
- ``POST /console/logout`` revokes the session at once.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from payback import db
from payback.access import service as access
from payback.access.errors import Unauthenticated
from payback.access.ratelimit import SlidingWindowLimiter
from payback.audit import service as audit
from payback.web import sessions
from payback.web.console_base import (
    Console,
    ConsoleRoute,
    client_ip,
    console,
    error_page,
    page,
    redirect,
    safe_next,
)

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
LOGIN_TOKEN_SECONDS = 3600
BAD_LOGIN = ("The email or password is not right, or the account is not active. "
             "Check them and try again.")


@router.get("/login", name="console_login_form")
async def login_form(request: Request) -> Response:
    return _login_page(request, next_path=safe_next(request.query_params.get("next")))


def _login_page(request: Request, *, next_path: str, status: int = 200,
                error: str | None = None, email: str = "") -> Response:
    token = sessions.new_token()
    response = page(request, "login.html", status=status, title="Log in", login_token=token,
                    next_path=next_path, error=error, login_email=email)
    options = sessions.cookie_options(request.app.state.settings)
    response.set_cookie(sessions.LOGIN_COOKIE, token, max_age=LOGIN_TOKEN_SECONDS,
                        **{**options, "path": "/console/login"})
    return response


@router.post("/login", name="console_login")
async def login(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email") or "").strip()[:320]
    password = str(form.get("password") or "")
    next_path = safe_next(str(form.get("next") or ""))
    if not sessions.same_token(str(form.get("login_token") or ""),
                               request.cookies.get(sessions.LOGIN_COOKIE)):
        await run_in_threadpool(_audit_failure, request, email, "login_token_invalid")
        return error_page(request, 403, "This login form has expired",
                          "Open the login page again and log in from there.")
    wait = _throttled(request, email)
    if wait is not None:
        await run_in_threadpool(_audit_failure, request, email, "rate_limited")
        minutes = max(1, -(-wait // 60))
        return error_page(request, 429, "Too many login attempts",
                          f"Wait {minutes} minute{'s' if minutes > 1 else ''}, then try again.")
    try:
        token, _user = await run_in_threadpool(_authenticate, request, email, password)
    except Unauthenticated as err:
        await run_in_threadpool(_audit_failure, request, email, None)
        return _login_page(request, next_path=next_path, status=err.status, error=BAD_LOGIN,
                           email=email)
    response = redirect(next_path)
    settings = request.app.state.settings
    response.set_cookie(sessions.SESSION_COOKIE, token, max_age=settings.session_hours * 3600,
                        **sessions.cookie_options(settings))
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/console/login")
    return response


def _throttled(request: Request, email: str) -> int | None:
    """Seconds to wait when this e-mail address or this client has tried to log in too often
    (a brake on password guessing beside Argon2's cost), else None."""
    app = request.app
    limiter = getattr(app.state, "login_limiter", None)
    if limiter is None:
        limiter = SlidingWindowLimiter.from_rate(app.state.settings.login_rate_limit,
                                                 app.state.clock)
        app.state.login_limiter = limiter
    waits = [w for w in (limiter.hit(f"email:{email.lower()}"),
                         limiter.hit(f"ip:{client_ip(request)}")) if w is not None]
    return max(waits) if waits else None


def _authenticate(request: Request, email: str, password: str):
    """Check the password (no transaction held during Argon2), then open the session, record
    the login time and audit it, in one transaction."""
    app = request.app
    clock, engine = app.state.clock, app.state.engine
    with db.read(engine) as conn:
        row = access.find_login(conn, email)
    user, _ = access.check_login(row, password, clock)
    now = clock.now()
    with db.write(engine) as conn:
        token, _session = sessions.create_session(conn, app.state.settings, user.id, now)
        access.touch(conn, clock, user)
        audit.record(conn, at=now, actor_id=user.id, actor_kind="staff", actor_role=user.role,
                     seller_id=user.seller_id, action="session.create", object_type="staff_user",
                     object_id=user.id, outcome="allowed", summary={"via": "console"},
                     origin=client_ip(request),
                     request_id=getattr(request.state, "request_id", None))
    return token, user


def _attempted(request: Request, email: str) -> tuple[str, str | None]:
    """Why a login failed and whose seller the account is, for the audit trail only (never
    shown): a seller's auditors see the failed logins on their own staff accounts."""
    with db.read(request.app.state.engine) as conn:
        row = access.find_login(conn, email)
    if row is None:
        return "unknown_email", None
    return ("inactive_user" if not row.active else "bad_password"), row.seller_id


def _audit_failure(request: Request, email: str, reason: str | None) -> None:
    app = request.app
    found, seller_id = _attempted(request, email)
    with db.write(app.state.engine) as conn:
        audit.record(conn, at=app.state.clock.now(), actor_id="anonymous", actor_kind="staff",
                     seller_id=seller_id, action="session.create", outcome="refused",
                     summary={"via": "console", "email": email, "reason": reason or found},
                     origin=client_ip(request),
                     request_id=getattr(request.state, "request_id", None))


@router.post("/logout", name="console_logout")
async def logout(ctx: Console = Depends(console)) -> Response:
    now = ctx.clock.now()

    def work() -> None:
        with db.write(ctx.engine) as conn:
            sessions.revoke(conn, ctx.session.token_hash, now)
            ctx.record(conn, "session.revoke", outcome="allowed", object_type="staff_user",
                       object_id=ctx.user.id, summary={}, at=now)
    await run_in_threadpool(work)
    response = redirect("/console/login", flash="logged_out")
    response.delete_cookie(sessions.SESSION_COOKIE, path=sessions.COOKIE_PATH)
    return response
