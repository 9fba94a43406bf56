"""Authentication, authorization and the refund rate limit at the HTTP edge.

``require_principal(request)`` (behind ``deps.current_principal``, which every route depends on):

1. authenticate — ``Authorization: Bearer pb_<prefix>_<secret>`` (an API key) or
   ``Authorization: Basic base64(email:password)`` (a staff account, for API use; the web console
   will bring sessions). Missing or bad credentials → 401 ``unauthenticated`` with
   ``WWW-Authenticate: Bearer``; every kind of bad key gives the same body;
2. authorize — the matched route's (method, path template) is looked up in
   ``access.domain.ROUTE_PERMISSIONS``: no entry → 403 (default deny); the principal's role (and
   key scopes) lack the permission → 403 ``forbidden``;
3. rate-limit refund creation per principal → 429 ``rate_limited`` with ``Retry-After``.

Each refusal calls ``app.state.on_refused(request, principal_or_None, code)`` when the app has
one (the audit trail), after putting an internal reason on ``request.state.refusal_reason``
(e.g. ``revoked``, ``expired``, ``missing_permission:refunds:approve``) that is never sent to
the caller. The principal is put on ``request.state.principal``.

Object-level checks (the caller's seller) are the services' job: this module only knows routes.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading

from fastapi import Request
from starlette.exceptions import HTTPException

from payback import db
from payback.access import domain, service
from payback.access.domain import Principal
from payback.access.errors import Forbidden, RateLimited, Unauthenticated
from payback.access.ratelimit import SlidingWindowLimiter
from payback.errors import DomainError

log = logging.getLogger(__name__)
CHALLENGE = {"WWW-Authenticate": "Bearer"}
NO_CREDENTIALS = ("authentication required: send 'Authorization: Bearer <API key>' or HTTP Basic "
                  "staff credentials")
_limiter_lock = threading.Lock()


def require_principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    principal = None
    try:
        principal = authenticate(request)
        authorize(request, principal)
        rate_limit(request, principal)
    except DomainError as err:
        _report_refusal(request, principal, err)
        raise as_http_error(err) from None
    request.state.principal = principal
    return principal


# ------------------------------------------------------------------------- authentication


def parse_authorization(header: str | None) -> tuple[str, object] | None:
    """("bearer", token) or ("basic", (email, password)); None when absent. Raises
    Unauthenticated for a header that is present but unusable."""
    if not header or not header.strip():
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        return "bearer", value
    if scheme == "basic" and value:
        try:
            email, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            email, sep, password = "", "", ""
        if sep and email:
            return "basic", (email, password)
        raise Unauthenticated(service.BAD_CREDENTIALS)
    raise Unauthenticated(NO_CREDENTIALS)


def authenticate(request: Request) -> Principal:
    try:
        parsed = parse_authorization(request.headers.get("authorization"))
    except Unauthenticated:
        request.state.refusal_reason = "malformed_authorization"
        raise
    if parsed is None:
        request.state.refusal_reason = "no_credentials"
        raise Unauthenticated(NO_CREDENTIALS)
    engine, clock = request.app.state.engine, request.app.state.clock
    scheme, value = parsed
    try:
        # Checked in a read transaction; only a stale last-used stamp costs a (short) write.
        if scheme == "bearer":
            with db.read(engine) as conn:
                principal, stale = service.verify_key(conn, clock, value)
        else:
            email, password = value
            with db.read(engine) as conn:
                row = service.find_login(conn, email)
            principal, stale = service.check_login(row, password, clock)  # Argon2: no conn held
    except Unauthenticated:
        request.state.refusal_reason = _why(engine, clock, scheme, value)
        raise
    if stale:
        with db.write(engine) as conn:
            service.touch(conn, clock, principal)
    return principal


def _why(engine, clock, scheme: str, value) -> str:
    if scheme == "basic":
        return "bad_password"  # unknown email or wrong password: not told apart, even here
    with db.read(engine) as conn:
        return f"{service.refusal_reason(conn, clock, value)}_key"


# -------------------------------------------------------------------------- authorization


def route_template(request: Request) -> str | None:
    """The matched route's full path template, e.g. ``/v1/invoices/{invoice_id}/refunds``.

    ``scope["route"].path`` is the template as the route's own router declares it; FastAPI ≥
    0.13x no longer copies included routes, so it lacks the include prefix (``/v1``). The prefix
    is the part of the request path before the segments the template matched (a template
    segment matches exactly one path segment: we use no ``{…:path}`` parameters, and if one were
    added its template would come out wrong, be missing from the table, and be denied)."""
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    path = request.scope["path"]
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root):]
    parts = path.split("/")
    keep = len(parts) - len(template.split("/")) + 1
    return "/".join(parts[:keep]) + template if keep >= 1 else None


def authorize(request: Request, principal: Principal) -> None:
    template = route_template(request)
    permission = domain.route_permission(request.method, template) if template else None
    if permission is None:
        request.state.refusal_reason = "route_not_declared"
        raise Forbidden(f"{request.method} {template or request.url.path} is not open to anyone")
    if not domain.allowed(principal, permission):
        request.state.refusal_reason = f"missing_permission:{permission}"
        raise Forbidden(f"your role ({principal.role}) or key scopes do not include {permission}")


# ------------------------------------------------------------------------------ rate limit


def refund_limiter(app) -> SlidingWindowLimiter:
    """The app's refund-creation limiter, built on first use from its settings and clock."""
    limiter = getattr(app.state, "refund_limiter", None)
    if limiter is None:
        with _limiter_lock:
            limiter = getattr(app.state, "refund_limiter", None)
            if limiter is None:
                limiter = SlidingWindowLimiter.from_rate(app.state.settings.refund_rate_limit,
                                                         app.state.clock)
                app.state.refund_limiter = limiter
    return limiter


def rate_limit(request: Request, principal: Principal) -> None:
    if (request.method, route_template(request)) != domain.REFUND_CREATE_ROUTE:
        return
    wait = refund_limiter(request.app).hit(principal.id)
    if wait is not None:
        request.state.refusal_reason = "refund_rate_limit"
        raise RateLimited(f"too many refunds requested; retry in {wait} seconds", wait)


# -------------------------------------------------------------------------------- refusals


def as_http_error(err: DomainError) -> HTTPException:
    """The problem+json error the app's HTTP error handler renders, with the right headers."""
    headers = None
    if isinstance(err, Unauthenticated):
        headers = CHALLENGE
    elif isinstance(err, RateLimited):
        headers = {"Retry-After": str(err.retry_after)}
    return HTTPException(err.status, detail=err.detail, headers=headers)


def _report_refusal(request: Request, principal: Principal | None, err: DomainError) -> None:
    hook = getattr(request.app.state, "on_refused", None)
    if hook is None:
        return
    try:
        hook(request, principal, err.code)
    except Exception:  # the caller is refused anyway; the failure is logged, not raised
        log.exception("could not record a refused request in the audit trail")
