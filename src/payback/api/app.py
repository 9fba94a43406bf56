"""The FastAPI application factory. Nothing is built at import time: ``create_app(settings)``
creates the engine (unless one is passed in, as tests do), registers the routers under ``/v1``
and the one error mapper."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from payback import __version__
from payback.api import problems
from payback.clock import Clock, SystemClock
from payback.access.router import router as access
from payback.api import auditing
from payback.audit.router import router as audit
from payback.credit_notes.router import router as credit_notes
from payback.customers.router import router as customers
from payback.documents.router import router as documents
from payback.db import make_engine
from payback.errors import DomainError
from payback.exports.router import router as exports
from payback.gateways import registry as gateway_registry
from payback.gateways.router import router as gateways
from payback.gateways.router import webhook_router as gateway_webhooks
from payback.invoicing.router import router as invoices
from payback.notifications.router import router as notifications
from payback.ledger.router import router as ledger
from payback.payments.router import router as payments
from payback.policies.router import router as policies
from payback.refunds.router import router as refunds
from payback.reports.router import router as reports
from payback.sellers.router import router as seller
from payback.settings import Settings
from payback.store_credit.router import router as store_credit
from payback.web.portal import router as portal
from payback.web import console
from payback.webhooks.router import receiver_router as webhook_receiver
from payback.webhooks.router import router as webhooks

ROUTERS = (customers, invoices, payments, refunds, gateways, ledger, reports, policies, audit, access,
           exports, store_credit,
           credit_notes, documents, seller, webhooks, notifications)
JSON_TYPES = ("application/json", "application/merge-patch+json")


def create_app(settings: Settings | None = None, *, engine=None,
               clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()
    app = FastAPI(title="Payback", version=__version__,
                  description="Billing whose heart is refunds done right. Amounts are integers "
                              "in minor units with an ISO 4217 currency code.")
    app.state.settings = settings
    app.state.engine = engine if engine is not None else make_engine(settings.database_url)
    app.state.clock = clock or SystemClock()
    # Inbound gateway webhooks need the gateways; they are built on first use.
    gateway_registry.configure_lazily(settings)
    app.state.on_refused = auditing.on_refused
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    # Authenticated by the gateway's signature, not by an API key: outside /v1.
    app.include_router(gateway_webhooks)
    # The demo's stand-in for a merchant's webhook receiver: checks signatures, no API key.
    app.include_router(webhook_receiver, include_in_schema=False)
    # The customer refund portal: HTML pages behind a signed link, no API key.
    app.include_router(portal)
    # The staff console (HTML, login sessions; "/" redirects to it) and the static files.
    console.install(app)
    app.mount("/static", StaticFiles(packages=[("payback.web", "static")]), name="static")
    app.add_exception_handler(DomainError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(StarletteHTTPException, problems.on_http_error)
    app.add_exception_handler(Exception, problems.on_unexpected)
    app.add_middleware(RequestGuard)
    app.get("/healthz", include_in_schema=False)(_health)
    return app


async def _health() -> dict:
    return {"status": "ok"}


class RequestGuard:
    """Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs about a millisecond per
    request): refuse an API (``/v1``) body that is not JSON (415) before any route runs, and tag every request
    and response with a request id for the logs and the audit trail."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = (headers.get(b"x-request-id", b"").decode("latin-1")[:64]
                      or uuid.uuid4().hex)
        scope.setdefault("state", {})["request_id"] = request_id
        tag = (b"x-request-id", request_id.encode("latin-1"))
        # The JSON API takes JSON only; the web console and portal (outside /v1) post forms.
        if (scope["method"] in ("POST", "PUT", "PATCH") and scope["path"].startswith("/v1/")
                and _non_json_body(headers)):
            body = problems.problem_body(415, "unsupported_media_type", "Unsupported media type",
                                         "send the body as application/json", scope["path"])
            await problems.problem_response(415, body, headers={"x-request-id": request_id})(
                scope, receive, send)
            return

        async def tagged(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), tag]
            await send(message)
        await self.app(scope, receive, tagged)


def _non_json_body(headers: dict) -> bool:
    ctype = headers.get(b"content-type", b"").decode("latin-1").split(";")[0].strip().lower()
    if ctype in JSON_TYPES:
        return False
    length = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (length is not None and length.strip() != b"0")
