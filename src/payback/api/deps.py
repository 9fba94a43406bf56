"""What every route gets: the engine, the clock, settings and the caller (the auth seam).

``Context.write`` runs one service call in one transaction under the request's Idempotency-Key
and renders the result; ``Context.read`` runs a read-only transaction. Routes stay one line of
parsing, one service call and one rendering.
"""

from __future__ import annotations

import pydantic_core
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Depends, Request
from fastapi.responses import Response
from sqlalchemy import Connection

from payback import db
from payback.api import idempotency
from payback.api.problems import domain_problem
from payback.clock import Clock
from payback.settings import Settings


@dataclass(frozen=True)
class Principal:
    """Who is calling. The access issue replaces ``current_principal`` with real auth."""

    id: str
    roles: tuple[str, ...]


def current_principal(request: Request) -> Principal:
    # The one seam for authentication: every route depends on this function.
    return Principal(id="anonymous", roles=("admin",))


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

    async def write(self, call: Callable[[Connection], Any], render: Callable[[Any], Any],
                    status: int = 201) -> Response:
        body_bytes = await self.request.body()
        key = self.request.headers.get("idempotency-key")
        fp = idempotency.fingerprint(self.request.method, self.request.url.path, body_bytes)

        def work(conn: Connection) -> tuple[int, bytes]:
            return status, to_json(render(call(conn)))

        def refused(err) -> tuple[int, bytes]:
            return domain_problem(err, self.request.url.path)

        from starlette.concurrency import run_in_threadpool
        code, body = await run_in_threadpool(
            idempotency.run_once, self.engine, scope=self.principal.id, key=key, fp=fp,
            now=self.clock.now(), work=work, on_domain_error=refused)
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
