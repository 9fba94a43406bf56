"""HTTP routes for the accounting exports: the caller's seller's journal over ``[from, to)`` as
Beancount text or as a CSV journal, sent as a file download. Permission ``ledger:read`` (an
export is the ledger in another format). A reversed or empty range is a 422 problem."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from payback import db
from payback.api.deps import Context, context
from payback.exports import service

router = APIRouter(tags=["exports"])

MEDIA_TYPES = {"beancount": "text/plain; charset=utf-8",
               "csv": "text/csv; charset=utf-8; header=present"}


async def _download(ctx: Context, fmt: str, date_from: date, date_to: date) -> Response:
    from starlette.concurrency import run_in_threadpool

    service.check_range(date_from, date_to)  # refuse before opening a transaction

    def work() -> str:
        with db.read(ctx.engine) as conn:
            return service.export(conn, fmt, date_from, date_to, seller_id=ctx.seller_id)
    text = await run_in_threadpool(work)
    name = f"payback-journal-{ctx.seller_id}-{date_from}-{date_to}.{fmt}"
    return Response(content=text.encode("utf-8"), media_type=MEDIA_TYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/exports/journal.beancount", response_class=Response)
async def journal_beancount(date_from: date = Query(alias="from"),
                            date_to: date = Query(alias="to"),
                            ctx: Context = Depends(context)):
    return await _download(ctx, "beancount", date_from, date_to)


@router.get("/exports/journal.csv", response_class=Response)
async def journal_csv(date_from: date = Query(alias="from"), date_to: date = Query(alias="to"),
                      ctx: Context = Depends(context)):
    return await _download(ctx, "csv", date_from, date_to)
