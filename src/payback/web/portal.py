"""The customer refund portal (``/portal``): server-rendered pages behind a signed, expiring link
per invoice (``payback.web.links``). No session and no JavaScript.

Routes (all under ``/portal/{token}``; the token is the signed link):

- ``GET  /``                 the invoice, its refunds with status and expected date, the request
                             form and, where the law gives one, the withdrawal function;
- ``GET  /refunds/{id}``     one refund of this invoice (any other id: 404);
- ``POST /preview``          what the request would give, in plain words, with Confirm;
- ``POST /requests``         create the refund (idempotent per form), show the receipt;
- ``POST /withdraw``         the separate "Confirm withdrawal" step;
- ``POST /withdraw/confirm`` the withdrawal itself and its acknowledgement (date and time).

Every route opens the link first (a forged or altered link: 403; an old one: 403 saying to ask
for a new one), every POST checks the form tokens (``portal_forms``: 403, nothing read or
written), and every refusal is a page with the right status, never a stack trace. Writes run once
per form: the form's nonce is the idempotency key (``payback.api.idempotency.run_once``, scope
``portal:<invoice id>``), so a double submit shows the same refund and creates nothing.
What the pages say comes from ``portal_service``; this module parses, calls and renders.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from payback import db
from payback.actor import Actor
from payback.api import idempotency
from payback.api.problems import domain_problem
from payback.errors import DomainError
from payback.secrets import secret_key
from payback.web import portal_forms as forms
from payback.web import portal_service as service
from payback.web import portal_words as words
from payback.web.links import invoice_from_token

log = logging.getLogger(__name__)
router = APIRouter(prefix="/portal", include_in_schema=False)
MAX_FIELDS = 400
#: The link token is a key: no page may leak it through a Referer, a cache or a frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
}


@lru_cache(maxsize=1)
def environment() -> Environment:
    # Autoescape on: whatever a customer typed is printed as text, never as markup.
    return Environment(loader=PackageLoader("payback.web", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@lru_cache(maxsize=1)
def _stylesheet() -> bytes:
    return resources.files("payback.web").joinpath("static/portal.css").read_bytes()


@dataclass
class Visit:
    """One request on a valid link: who, which invoice, and the form-token cookie."""

    request: Request
    token: str
    portal: service.Portal
    now: datetime
    cookie: str | None
    set_cookie: str | None = field(default=None)

    @property
    def app(self):
        return self.request.app

    @property
    def actor(self) -> Actor:
        return self.portal.actor(_origin(self.request),
                                 getattr(self.request.state, "request_id", None))

    @property
    def key(self) -> str:
        return secret_key(self.app.state.settings)

    def form(self) -> forms.FormFields:
        """Hidden fields for one more form on the page (all share one cookie value)."""
        fields = forms.fields_for(self.key, self.token, self.set_cookie or self.cookie)
        if fields.new_cookie:
            self.set_cookie = fields.csrf
        return fields

    def check(self, form: dict[str, str]) -> str:
        return forms.check(self.key, self.token, form, self.cookie)


# --- routes ---------------------------------------------------------------------------------------

@router.get("/static/portal.css", name="portal_css")
async def stylesheet() -> Response:
    return Response(_stylesheet(), media_type="text/css",
                    headers={"Cache-Control": "public, max-age=3600",
                             "X-Content-Type-Options": "nosniff"})


@router.get("/{token}", name="portal_page")
async def show(request: Request, token: str) -> Response:
    return await _visit(request, token, "portal.view", _page)


@router.get("/{token}/refunds/{refund_id}", name="portal_refund")
async def show_refund(request: Request, token: str, refund_id: str) -> Response:
    def body(v: Visit) -> Response:
        with db.read(v.app.state.engine) as conn:
            refund = service.refund_page(conn, v.portal, refund_id[:64])
        return _render(v, "portal/refund.html", refund=refund, heading="Your refund")
    return await _visit(request, token, "portal.view_refund", body)


@router.post("/{token}/preview", name="portal_preview")
async def preview(request: Request, token: str) -> Response:
    form = await _form(request)

    def body(v: Visit) -> Response:
        v.check(form)
        try:
            req = forms.parse_request(form, v.portal.invoice["lines"])
            with db.read(v.app.state.engine) as conn:
                pv = service.preview(conn, v.portal, req, v.actor, v.now)
        except forms.FormInvalid as err:
            return _page(v, errors=err.errors, values=form, status=422)
        return _render(v, "portal/preview.html", preview=pv, confirm=v.form(),
                       hidden=forms.request_fields(req))
    return await _visit(request, token, "portal.preview", body)


@router.post("/{token}/requests", name="portal_request")
async def submit(request: Request, token: str) -> Response:
    form = await _form(request)

    def body(v: Visit) -> Response:
        nonce = v.check(form)
        try:
            req = forms.parse_request(form, v.portal.invoice["lines"])
        except forms.FormInvalid as err:
            return _page(v, errors=err.errors, values=form, status=422)
        return _write_once(v, nonce, forms.fingerprint(req), "refund.request",
                           lambda conn: service.request_refund(conn, v.app.state.clock, v.portal,
                                                               req, v.actor),
                           "portal/refund.html", "Request received")
    return await _visit(request, token, "refund.request", body)


@router.post("/{token}/withdraw", name="portal_withdraw")
async def withdraw(request: Request, token: str) -> Response:
    form = await _form(request)

    def body(v: Visit) -> Response:
        v.check(form)
        with db.read(v.app.state.engine) as conn:
            offer = service.withdrawal_offer(conn, v.portal, v.actor, v.now)
        return _render(v, "portal/withdraw_confirm.html", offer=offer, confirm=v.form())
    return await _visit(request, token, "contract.withdraw_start", body)


@router.post("/{token}/withdraw/confirm", name="portal_withdraw_confirm")
async def withdraw_confirm(request: Request, token: str) -> Response:
    form = await _form(request)

    def body(v: Visit) -> Response:
        nonce = v.check(form)
        return _write_once(v, nonce, b"withdraw", "contract.withdraw",
                           lambda conn: service.withdraw(conn, v.app.state.clock, v.portal,
                                                         v.actor),
                           "portal/withdrawn.html", "Withdrawal received")
    return await _visit(request, token, "contract.withdraw", body)


@router.get("/{token}/preview", include_in_schema=False)
@router.get("/{token}/requests", include_in_schema=False)
@router.get("/{token}/withdraw", include_in_schema=False)
@router.get("/{token}/withdraw/confirm", include_in_schema=False)
async def back_to_page(token: str) -> Response:
    """A reload or bookmark of a step that only answers a form: back to the invoice page."""
    return RedirectResponse(f"/portal/{quote(token, safe='')}", status_code=303,
                            headers=SECURITY_HEADERS)


# --- the machinery --------------------------------------------------------------------------------

async def _form(request: Request) -> dict[str, str]:
    try:
        data = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except Exception:  # noqa: BLE001 - a malformed body is simply an empty form (refused later)
        return {}
    return {k: v for k, v in data.multi_items() if isinstance(v, str)}


async def _visit(request: Request, token: str, action: str,
                 body: Callable[[Visit], Response]) -> Response:
    """Open the link, run ``body`` in the thread pool, turn any refusal into a page."""
    return await run_in_threadpool(_run, request, token, action, body)


def _run(request: Request, token: str, action: str,
         body: Callable[[Visit], Response]) -> Response:
    app, visit = request.app, None
    now = app.state.clock.now()
    try:
        invoice_id = invoice_from_token(app.state.settings, token, now=now)
        with db.read(app.state.engine) as conn:
            portal = service.load(conn, invoice_id)
        visit = Visit(request, token, portal, now, request.cookies.get(forms.COOKIE))
        return body(visit)
    except DomainError as err:
        _audit_refusal(request, visit, action, err, now)
        return _error(request, visit, err.status, err.code, err.title, err.detail, err.extra)
    except Exception:
        log.exception("portal request failed")
        return _error(request, visit, 500, "internal_error", "Something went wrong",
                      "the page could not be shown; please try again in a few minutes")


def _write_once(v: Visit, nonce: str, content: bytes, action: str,
                call: Callable[[Any], dict], template: str, heading: str) -> Response:
    """Run one write at most once per form (the nonce), then show its refund."""
    engine, now = v.app.state.engine, v.now

    def work(conn) -> tuple[int, bytes]:
        refund = call(conn)
        return 201, json.dumps({"refund_id": refund["id"]}).encode()

    def refused(err: DomainError) -> tuple[int, bytes]:
        _audit_refusal(v.request, v, action, err, now)
        return domain_problem(err, v.request.url.path)

    retention = timedelta(hours=v.app.state.settings.idempotency_retention_hours)
    status, body = idempotency.run_once(
        engine, scope=f"portal:{v.portal.invoice_id}", key=nonce,
        fp=hashlib.sha256(action.encode() + b"\n" + content).hexdigest(), now=now, work=work,
        on_domain_error=refused, retention=retention)
    stored = json.loads(body)
    if status >= 400:
        return _error(v.request, v, status, stored["code"], stored["title"], stored["detail"],
                      stored)
    with db.read(engine) as conn:
        refund = service.refund_page(conn, v.portal, stored["refund_id"])
    return _render(v, template, refund=refund, heading=heading, status=status)


def _page(v: Visit, *, errors: dict | None = None, values: dict | None = None,
          status: int = 200) -> Response:
    with db.read(v.app.state.engine) as conn:
        view = service.page(conn, v.portal, v.actor, v.now)
    return _render(v, "portal/page.html", view=view, errors=errors or {}, values=values or {},
                   reasons=forms.CUSTOMER_REASONS, qty_prefix=forms.QTY_PREFIX,
                   request_form=v.form(),
                   withdraw_form=v.form() if view["withdrawal"] else None, status=status)


def _render(v: Visit | None, template: str, *, status: int = 200, **ctx: Any) -> Response:
    base = f"/portal/{v.token}" if v else None
    html = environment().get_template(template).render(
        base=base, portal=v.portal if v else None,
        invoice=service.invoice_summary(v.portal) if v else None,
        locale=(v.portal.locale if v else "en_US").replace("_", "-"), **ctx)
    response = HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)
    if v is not None and v.set_cookie:
        settings = v.app.state.settings
        response.set_cookie(forms.COOKIE, v.set_cookie, httponly=True, samesite="strict",
                            path="/portal", secure=settings.public_url.startswith("https:"),
                            max_age=settings.portal_link_days * 86400)
    return response


def _error(request: Request, v: Visit | None, status: int, code: str, title: str, detail: str,
           extra: dict | None = None) -> Response:
    extra = extra or {}
    decision = extra.get("decision") or {}
    if code in words.FRIENDLY_ERRORS:
        title, detail = words.FRIENDLY_ERRORS[code]
    return _render(v, "portal/error.html", status=status, code=code, title=title,
                   detail=detail[:1].upper() + detail[1:] if detail else "",
                   policy=words.policy_texts(decision),
                   link_days=request.app.state.settings.portal_link_days)


def _audit_refusal(request: Request, v: Visit | None, action: str, err: DomainError,
                   now: datetime) -> None:
    """Best effort: a failure to audit never changes what the customer is told."""
    actor = v.actor if v else Actor(id="anonymous", kind="customer", origin=_origin(request),
                                    request_id=getattr(request.state, "request_id", None))
    try:
        service.record_refusal(request.app.state.engine, actor=actor, action=action, err=err,
                               now=now, invoice_id=v.portal.invoice_id if v else None,
                               known=v is not None)
    except Exception:
        log.exception("could not audit a refused portal request")


def _origin(request: Request) -> str:
    return request.client.host if request.client else "unknown"
