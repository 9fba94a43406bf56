"""What every route gets: the engine, the clock, settings and the caller (the auth seam).

``Context.write`` runs one service call in one transaction under the request's Idempotency-Key
and renders the result; ``Context.read`` runs a read-only transaction. Routes stay one line of
parsing, one service call and one rendering.
"""

from __future__ import annotations

import pydantic_core
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from payback import db
from payback.api import auditing, idempotency
from payback.api.problems import domain_problem
from payback.actor import Actor
from payback.clock import Clock
from payback.settings import Settings


from payback.access.domain import Principal  # re-exported: the type of the caller


def current_principal(request: Request) -> Principal:
    """The one seam for authentication: every route depends on this function. Authenticates
    (API key or staff Basic), checks the route's permission, rate-limits refund creation and
    puts the principal on ``request.state.principal``; see ``payback.api.auth``. Sync on
    purpose: FastAPI runs it in the thread pool (database and Argon2 work)."""
    from payback.api.auth import require_principal

    return require_principal(request)


@dataclass
class Context:
    request: Request
    principal: Principal

    @property
    def engine(self):
        return self.request.app.state.engine

    @property
    def clock(self) -> Clock:
        return self.request.app.state.clock

    @property
    def settings(self) -> Settings:
        return self.request.app.state.settings

    @property
    def seller_id(self) -> str:
        """Every object a route reads or writes must belong to this seller."""
        return self.principal.seller_id

    @property
    def actor(self) -> Actor:
        client = self.request.client
        return Actor(id=self.principal.id, kind=self.principal.kind, role=self.principal.role,
                     seller_id=self.principal.seller_id,
                     origin=client.host if client else "unknown",
                     request_id=getattr(self.request.state, "request_id", None))

    async def write(self, call: Callable[[Connection], Any], render: Callable[[Any], Any],
                    status: int = 201) -> Response:
        body_bytes = await self.request.body()
        key = self.request.headers.get("idempotency-key")
        fp = idempotency.fingerprint(self.request.method, self.request.url.path, body_bytes)

        now = self.clock.now()

        def work(conn: Connection) -> tuple[int, bytes]:
            result = call(conn)
            body = to_json(render(result))
            # Last statement of the transaction: the audit chain's lock is held briefly.
            auditing.record_write(conn, self.request, self.principal, body_bytes, result, now)
            return status, body

        def refused(err) -> tuple[int, bytes]:
            auditing.record_refusal(self.engine, self.request, self.principal, body_bytes, err,
                                    now)
            return domain_problem(err, self.request.url.path)

        from starlette.concurrency import run_in_threadpool
        code, body = await run_in_threadpool(
            idempotency.run_once, self.engine, scope=self.principal.id, key=key, fp=fp,
            now=now, work=work, on_domain_error=refused,
            retention=timedelta(hours=self.settings.idempotency_retention_hours))
        media = "application/problem+json" if code >= 400 else "application/json"
        return Response(content=body, status_code=code, media_type=media)

    async def read(self, call: Callable[[Connection], Any], render: Callable[[Any], Any]) -> Response:
        from starlette.concurrency import run_in_threadpool

        def work() -> bytes:
            with db.read(self.engine) as conn:
                return to_json(render(call(conn)))
        return Response(content=await run_in_threadpool(work), media_type="application/json")


def to_json(value: Any) -> bytes:
    """Serialise a response: Pydantic models (also nested in lists and dicts), ISO 8601 UTC
    timestamps, decimals as strings. Deterministic, so a replayed response is byte-identical."""
    return pydantic_core.to_json(value, by_alias=True)


def context(request: Request, principal: Principal = Depends(current_principal)) -> Context:
    return Context(request, principal)
