"""The FastAPI application factory. Nothing is built at import time: ``create_app(settings)``
creates the engine (unless one is passed in, as tests do), registers the routers under ``/v1``
and the one error mapper."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from payback import __version__
from payback.api import problems
from payback.clock import Clock, SystemClock
from payback.customers.router import router as customers
from payback.db import make_engine
from payback.errors import DomainError
from payback.invoicing.router import router as invoices
from payback.ledger.router import router as ledger
from payback.payments.router import router as payments
from payback.refunds.router import router as refunds
from payback.reports.router import router as reports
from payback.settings import Settings

ROUTERS = (customers, invoices, payments, refunds, ledger, reports)
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
    for router in ROUTERS:
        app.include_router(router, prefix="/v1")
    app.add_exception_handler(DomainError, problems.on_domain_error)
    app.add_exception_handler(RequestValidationError, problems.on_validation_error)
    app.add_exception_handler(StarletteHTTPException, problems.on_http_error)
    app.add_exception_handler(Exception, problems.on_unexpected)
    app.middleware("http")(_request_guard)
    app.get("/healthz", include_in_schema=False)(_health)
    return app


async def _health() -> dict:
    return {"status": "ok"}


async def _request_guard(request: Request, call_next) -> Response:
    """Refuse a body that is not JSON (415) before any route runs; tag every response with a
    request id for the logs (and, later, the audit trail)."""
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    if request.method in ("POST", "PUT", "PATCH"):
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in JSON_TYPES and await _has_body(request):
            body = problems.problem_body(415, "unsupported_media_type", "Unsupported media type",
                                         "send the body as application/json", request.url.path)
            return problems.problem_response(415, body, headers={"x-request-id": request_id})
    response = await call_next(request)
    response.headers["x-request-id"] = request_id
    return response


async def _has_body(request: Request) -> bool:
    return bool(await request.body())
