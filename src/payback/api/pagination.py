"""Cursor pagination: ``?limit=&starting_after=<id>``; ids sort by creation (ULIDs)."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Query
from pydantic import BaseModel


class Page(BaseModel):
    limit: int
    starting_after: str | None


def page_params(limit: int = Query(50, ge=1, le=200),
                starting_after: str | None = Query(None, max_length=40)) -> Page:
    return Page(limit=limit, starting_after=starting_after)


def paginate(page: Page, fetch: Callable[..., list[dict]], render: Callable[[dict], Any]) -> Callable:
    """Wrap a list service call: fetch one extra row to learn whether there is a next page."""
    def call(conn):
        rows = fetch(conn, after=page.starting_after, limit=page.limit + 1)
        more = len(rows) > page.limit
        rows = rows[:page.limit]
        return {"object": "list", "data": [render(r) for r in rows], "has_more": more,
                "next_cursor": rows[-1]["id"] if more and rows else None}
    return call
