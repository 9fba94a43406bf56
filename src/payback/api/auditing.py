"""The audit trail's view of HTTP: every write and every refused attempt leaves a record.

- A write that succeeds is recorded inside its own transaction (``record_write``), as the last
  statement, so the change and its record commit together.
- A write refused by a domain rule (over-refund, invalid transition, four eyes...) is recorded in
  a transaction of its own (``record_refusal``): the business change never happened, but the
  attempt did.
- A request refused before it reached a route (no or bad credentials, missing permission, rate
  limit) is recorded by ``on_refused``, which the app installs as ``app.state.on_refused``.

The action is the route's name (``create_refund``, ``approve_refund``...); the summary holds the
path parameters, the request body with secrets and card numbers redacted, and the result's key
fields (the "after"); for status changes the refund's events carry the "before".
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import Request
from sqlalchemy import Connection

from payback import db
from payback.audit import service as audit
from payback.errors import DomainError
from payback.ids import PREFIXES

log = logging.getLogger(__name__)
RESULT_FIELDS = ("id", "status", "number", "amount_minor", "currency", "invoice_id",
                 "customer_id", "method", "approved_by", "version", "active")


_TYPES_BY_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}


def _action(request: Request) -> str:
    """``approve_refund`` → ``refund.approve``: object first, then the verb."""
    route = request.scope.get("route")
    name = getattr(route, "name", None)
    if not name:
        return f"{request.method} {request.url.path}"
    verb, _, noun = name.partition("_")
    return f"{noun}.{verb}" if noun else verb


def _object(request: Request, result: Any) -> tuple[str | None, str | None]:
    if isinstance(result, dict) and isinstance(result.get("id"), str) and "_" in result["id"]:
        prefix = result["id"].split("_", 1)[0]
        return _TYPES_BY_PREFIX.get(prefix, prefix), result["id"]
    for name, value in request.path_params.items():
        return name.removesuffix("_id"), str(value)
    return None, None


def _actor_fields(request: Request, principal) -> dict:
    client = request.client
    return {"actor_id": principal.id if principal else "anonymous",
            "actor_kind": principal.kind if principal else "api_key",
            "actor_role": principal.role if principal else None,
            "seller_id": principal.seller_id if principal else None,
            "origin": client.host if client else "unknown",
            "request_id": getattr(request.state, "request_id", None)}


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return "<not JSON>"


def record_write(conn: Connection, request: Request, principal, body: bytes, result: Any,
                 at) -> None:
    object_type, object_id = _object(request, result)
    after = {k: result[k] for k in RESULT_FIELDS if isinstance(result, dict) and k in result}
    audit.record(conn, at=at, action=_action(request), object_type=object_type,
                 object_id=object_id, outcome="allowed",
                 summary={"params": dict(request.path_params), "request": _body(body),
                          "after": after}, **_actor_fields(request, principal))


def record_refusal(engine, request: Request, principal, body: bytes, err: DomainError,
                   at) -> None:
    object_type, object_id = _object(request, None)
    with db.write(engine) as conn:
        audit.record(conn, at=at, action=_action(request), object_type=object_type,
                     object_id=object_id, outcome="refused",
                     summary={"params": dict(request.path_params), "request": _body(body),
                              "code": err.code, "detail": err.detail},
                     **_actor_fields(request, principal))


def on_refused(request: Request, principal, code: str) -> None:
    """Installed as ``app.state.on_refused``: authentication, permission and rate-limit
    refusals. Runs in the thread pool (the auth dependency is sync)."""
    app = request.app
    with db.write(app.state.engine) as conn:
        audit.record(conn, at=app.state.clock.now(), action=_action(request),
                     object_type=None, object_id=None, outcome="refused",
                     summary={"params": dict(request.path_params), "code": code,
                              "reason": getattr(request.state, "refusal_reason", None),
                              "method": request.method, "path": request.url.path},
                     **_actor_fields(request, principal))


async def record_handler_refusal(request: Request, code: str, detail: str) -> None:
    """A request refused by the error handlers: a domain rule on a read (for example another
    seller's id, which looks missing), or a body that failed validation (mass assignment,
    malformed JSON). Best effort: a failure to audit never changes the response."""
    from starlette.concurrency import run_in_threadpool

    app = request.app
    principal = getattr(request.state, "principal", None)

    def write() -> None:
        with db.write(app.state.engine) as conn:
            audit.record(conn, at=app.state.clock.now(), action=_action(request),
                         object_type=None, object_id=None, outcome="refused",
                         summary={"params": dict(request.path_params), "code": code,
                                  "detail": detail[:500], "method": request.method,
                                  "path": request.url.path},
                         **_actor_fields(request, principal))
    try:
        await run_in_threadpool(write)
    except Exception:  # noqa: BLE001 - the refusal stands whatever happens here
        log.exception("could not audit a refused request")
