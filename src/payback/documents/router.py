"""Download routes: invoices and credit notes as PDF, HTML or UBL XML.

``GET /v1/invoices/{invoice_id}/pdf|html|xml`` and ``GET /v1/credit-notes/{credit_note_id}/
pdf|html|xml``. Another seller's document is a 404 like a missing one. HTML is served with a
Content-Security-Policy that forbids scripts (the template escapes everything anyway). A credit
note's stored hash is sent as ``X-Document-SHA256``.
"""

from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool

from payback import db
from payback.api.deps import Context, context
from payback.documents import render_html, render_pdf, render_ubl
from payback.documents.model import Document
from payback.documents.service import invoice_document, load_credit_note_document

router = APIRouter(tags=["documents"])

#: format → (renderer returning bytes, media type, file extension)
FORMATS: dict[str, tuple[Callable[[Document], bytes], str, str]] = {
    "pdf": (render_pdf, "application/pdf", "pdf"),
    "html": (lambda d: render_html(d).encode("utf-8"), "text/html; charset=utf-8", "html"),
    "xml": (render_ubl, "application/xml", "xml"),
}
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


def render(doc: Document, fmt: str) -> tuple[bytes, str, str]:
    """(content, media type, file name) of a document in one format."""
    fn, media, ext = FORMATS[fmt]
    return fn(doc), media, f"{doc.number}.{ext}"


async def _download(ctx: Context, load: Callable[[Connection], Document], fmt: str) -> Response:
    def work():
        with db.read(ctx.engine) as conn:
            doc = load(conn)
        return doc, *render(doc, fmt)
    doc, content, media, filename = await run_in_threadpool(work)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if fmt == "html":
        headers["Content-Security-Policy"] = CSP
    if doc.type == "credit_note" and doc.document_sha256:
        headers["X-Document-SHA256"] = doc.document_sha256
    return Response(content=content, media_type=media, headers=headers)


def _invoice_route(fmt: str):
    async def download(invoice_id: str = Path(max_length=40), ctx: Context = Depends(context)):
        return await _download(
            ctx, lambda conn: invoice_document(conn, invoice_id, ctx.seller_id), fmt)
    download.__name__ = f"download_invoice_{fmt}"
    return download


def _credit_note_route(fmt: str):
    async def download(credit_note_id: str = Path(max_length=40),
                       ctx: Context = Depends(context)):
        return await _download(
            ctx, lambda conn: load_credit_note_document(conn, credit_note_id, ctx.seller_id),
            fmt)
    download.__name__ = f"download_credit_note_{fmt}"
    return download


for _fmt, (_fn, _media, _ext) in FORMATS.items():
    router.add_api_route(f"/invoices/{{invoice_id}}/{_fmt}", _invoice_route(_fmt),
                         methods=["GET"], response_class=Response,
                         name=f"download_invoice_{_fmt}",
                         responses={200: {"content": {_media.split(";")[0]: {}}}})
    router.add_api_route(f"/credit-notes/{{credit_note_id}}/{_fmt}", _credit_note_route(_fmt),
                         methods=["GET"], response_class=Response,
                         name=f"download_credit_note_{_fmt}",
                         responses={200: {"content": {_media.split(";")[0]: {}}}})
