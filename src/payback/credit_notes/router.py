"""HTTP routes for credit notes: list, get, issue an adjustment, void one. Downloads of the
rendered documents are in ``payback.documents.router``."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query

from payback.api.deps import Context, context
from payback.api.pagination import Page, page_params, paginate
from payback.credit_notes import schemas, service

router = APIRouter(tags=["credit notes"])
CreditNoteId = Path(max_length=40)


@router.get("/credit-notes", response_model=schemas.CreditNoteList)
async def list_credit_notes(page: Page = Depends(page_params),
                            invoice_id: str | None = Query(None, max_length=40),
                            kind: Literal["refund", "adjustment", "void"] | None = None,
                            ctx: Context = Depends(context)):
    def fetch(conn, **kw):
        return service.list_credit_notes(conn, invoice_id=invoice_id, kind=kind,
                                         seller_id=ctx.seller_id, **kw)
    return await ctx.read(paginate(page, fetch, schemas.CreditNoteSummaryOut.model_validate),
                          lambda x: x)


@router.get("/credit-notes/{credit_note_id}", response_model=schemas.CreditNoteOut)
async def get_credit_note(credit_note_id: str = CreditNoteId, ctx: Context = Depends(context)):
    return await ctx.read(lambda conn: service.get_credit_note(conn, credit_note_id,
                                                               ctx.seller_id),
                          schemas.CreditNoteOut.model_validate)


@router.post("/invoices/{invoice_id}/credit-notes", status_code=201,
             response_model=schemas.CreditNoteOut)
async def create_credit_note(body: schemas.AdjustmentCreate,
                             invoice_id: str = Path(max_length=40),
                             ctx: Context = Depends(context)):
    """Issue an adjustment credit note (no money moves): it reduces what the customer owes."""
    return await ctx.write(lambda conn: service.create_adjustment(
        conn, ctx.clock, invoice_id, body.to_domain(), actor=ctx.actor,
        seller_id=ctx.seller_id), schemas.CreditNoteOut.model_validate)


@router.post("/credit-notes/{credit_note_id}/void", status_code=201,
             response_model=schemas.CreditNoteOut)
async def void_credit_note(body: schemas.VoidCreate, credit_note_id: str = CreditNoteId,
                           ctx: Context = Depends(context)):
    """Void an adjustment: issues a new credit note of kind ``void`` that reverses it."""
    return await ctx.write(lambda conn: service.void_credit_note(
        conn, ctx.clock, credit_note_id, reason=body.reason, memo=body.memo, actor=ctx.actor,
        seller_id=ctx.seller_id), schemas.CreditNoteOut.model_validate)
