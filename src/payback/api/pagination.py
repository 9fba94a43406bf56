"""Cursor pagination: ``?limit=&starting_after=<id>``; ids sort by creation (ULIDs)."""

from __future__ import annotations

from typing import Any, Callable

from fastapi import Query, Request
from pydantic import BaseModel

from payback.errors import ValidationFailed


class Page(BaseModel):
    limit: int
    starting_after: str | None


def page_params(request: Request, limit: int | None = Query(None, ge=1),
                starting_after: str | None = Query(None, max_length=40)) -> Page:
    """``limit`` defaults to ``PAYBACK_PAGE_SIZE`` and may not exceed ``PAYBACK_MAX_PAGE_SIZE``."""
    settings = request.app.state.settings
    if limit is not None and limit > settings.max_page_size:
        raise ValidationFailed(f"limit must be at most {settings.max_page_size}")
    return Page(limit=limit or settings.page_size, starting_after=starting_after)


def paginate(page: Page, fetch: Callable[..., list[dict]], render: Callable[[dict], Any]) -> Callable:
    """Wrap a list service call: fetch one extra row to learn whether there is a next page."""
    def call(conn):
        rows = fetch(conn, after=page.starting_after, limit=page.limit + 1)
        more = len(rows) > page.limit
        rows = rows[:page.limit]
        return {"object": "list", "data": [render(r) for r in rows], "has_more": more,
                "next_cursor": rows[-1]["id"] if more and rows else None}
    return call
