"""Console pages that request and decide refunds: the invoice page with its refund form
(preview, then confirm), the refund page with its timeline, the approvals queue, and the approve,
reject and cancel actions.

Every write calls the same service function as the API (``create_refund``, ``approve_refund``,
``reject_refund``, ``cancel_refund``) in one transaction with its audit record. Confirming a
refund is idempotent: the preview page embeds a one-time form token, and the confirm runs under
the API's idempotency machinery (``payback.api.idempotency.run_once``) with that token as the
key, so a double click, a reload or a resubmitted form creates ONE refund and lands on it.
"""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from payback.access.errors import RateLimited
from payback.api import idempotency
from payback.api.auth import refund_limiter
from payback.approvals import service as approvals
from payback.gateways import flow as gateway_flow
from payback.errors import DomainError, ValidationFailed
from payback.invoicing.service import get_invoice
from payback.policies.service import active_policy
from payback.refunds import lifecycle
from payback.refunds.domain import REASONS
from payback.refunds.service import create_refund, preview_refund
from payback.web import console_queries as queries
from payback.web import console_view as view
from payback.web.console_base import Console, ConsoleRoute, console, redirect
from payback.web.console_forms import (
    blank_refund_values,
    parse_comment,
    parse_refund,
    refund_values,
)
from payback.web.links import portal_url
from payback.web.sessions import new_token

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
FORM_TOKEN_MAX = 100


# ------------------------------------------------------------------------------ invoice page


async def _invoice_page(ctx: Console, invoice_id: str, *, values: dict | None = None,
                        preview: dict | None = None, form_token: str | None = None,
                        error: str | None = None, status: int = 200) -> Response:
    def load(conn):
        return (queries.invoice_bundle(conn, invoice_id, ctx.user.seller_id),
                active_policy(conn, ctx.user.seller_id))
    try:
        bundle, policy = await ctx.read(load)
    except DomainError as err:
        return ctx.error(err)
    inv = bundle["invoice"]
    return ctx.page(
        "invoice.html", status=status, title=f"Invoice {inv['number']}", **bundle,
        cur=inv["currency"],
        values=values or blank_refund_values(inv["lines"]), preview=preview,
        form_token=form_token, error=error, reasons=REASONS, bonus=view.bonus_percent(policy),
        portal_link=portal_url(ctx.settings, invoice_id),
        line_names={ln["id"]: ln["description"] for ln in inv["lines"]})


def _message(err: DomainError) -> str:
    return f"{err.title}: {err.detail}"


@router.get("/invoices/{invoice_id}", name="console_invoice")
async def invoice(invoice_id: str, ctx: Console = Depends(console)) -> Response:
    return await _invoice_page(ctx, invoice_id)


async def _lines_and_currency(ctx: Console, invoice_id: str) -> tuple[list[dict], str]:
    inv = await ctx.read(lambda conn: get_invoice(conn, invoice_id, ctx.user.seller_id))
    return inv["lines"], inv["currency"]


@router.post("/invoices/{invoice_id}/refunds/preview", name="console_preview_refund")
async def preview(invoice_id: str, ctx: Console = Depends(console)) -> Response:
    """What the refund would be and what the policy decides; writes nothing."""
    try:
        lines, currency = await _lines_and_currency(ctx, invoice_id)
    except DomainError as err:
        return ctx.error(err)
    values = refund_values(ctx.form, lines)
    now = ctx.clock.now()
    try:
        form = parse_refund(ctx.form, currency, lines)
        result = await ctx.read(lambda conn: preview_refund(
            conn, invoice_id, form.request, actor=ctx.actor, seller_id=ctx.user.seller_id,
            now=now))
    except DomainError as err:
        return await _invoice_page(ctx, invoice_id, values=values, error=_message(err),
                                   status=err.status)
    return await _invoice_page(ctx, invoice_id, values=form.values, preview=result,
                               form_token=new_token())


@router.post("/invoices/{invoice_id}/refunds", name="console_create_refund")
async def confirm(invoice_id: str, ctx: Console = Depends(console)) -> Response:
    """Create the previewed refund, once per form token."""
    try:
        lines, currency = await _lines_and_currency(ctx, invoice_id)
    except DomainError as err:
        return ctx.error(err)
    values = refund_values(ctx.form, lines)
    try:
        form = parse_refund(ctx.form, currency, lines)
        token = _form_token(ctx)
        _rate_limit(ctx)
        status, body = await run_in_threadpool(_create_once, ctx, invoice_id, form, token)
    except DomainError as err:
        return await _invoice_page(ctx, invoice_id, values=values, error=_message(err),
                                   status=err.status)
    outcome = json.loads(body)
    if status == 201:
        return redirect(f"/console/refunds/{outcome['id']}", flash="refund_created")
    return await _invoice_page(ctx, invoice_id, values=values, status=status,
                               error=f"{outcome['title']}: {outcome['detail']}")


def _form_token(ctx: Console) -> str:
    token = ctx.form.get("form_token", "")
    if not token or len(token) > FORM_TOKEN_MAX or not token.isprintable():
        raise ValidationFailed("form: preview the refund first, then confirm it")
    return token


def _rate_limit(ctx: Console) -> None:
    """The API's per-principal limit on refund creation applies to the console too."""
    wait = refund_limiter(ctx.request.app).hit(ctx.user.id)
    if wait is not None:
        raise RateLimited(f"too many refunds requested; retry in {wait} seconds", wait)


def _create_once(ctx: Console, invoice_id: str, form, token: str) -> tuple[int, bytes]:
    now = ctx.clock.now()
    canonical = json.dumps(ctx.business_fields(), sort_keys=True).encode()
    fp = idempotency.fingerprint("POST", ctx.request.url.path, canonical)

    def work(conn) -> tuple[int, bytes]:
        refund = create_refund(conn, ctx.clock, invoice_id, form.request, actor=ctx.actor,
                               seller_id=ctx.user.seller_id)
        ctx.record_write(conn, "refund.create", "refund", refund["id"], refund, now)
        return 201, json.dumps({"id": refund["id"], "status": refund["status"]}).encode()

    def refused(err: DomainError) -> tuple[int, bytes]:
        ctx.record_refusal("refund.create", "invoice", invoice_id, err, now)
        return err.status, json.dumps({"code": err.code, "title": err.title,
                                       "detail": err.detail}).encode()

    return idempotency.run_once(
        ctx.engine, scope=ctx.user.id, key=f"console:{token}", fp=fp, now=now, work=work,
        on_domain_error=refused,
        retention=timedelta(hours=ctx.settings.idempotency_retention_hours))


# ------------------------------------------------------------------------------- refund page


async def _refund_page(ctx: Console, refund_id: str, *, error: str | None = None,
                       status: int = 200, comment: str = "") -> Response:
    try:
        bundle = await ctx.read(lambda conn: queries.refund_bundle(
            conn, refund_id, ctx.user.seller_id))
    except DomainError as err:
        return ctx.error(err)
    current = bundle["refund"]["status"]
    nxt = lifecycle.TRANSITIONS.get(current, frozenset())
    return ctx.page("refund.html", status=status, title=f"Refund {refund_id}", **bundle,
                    error=error, comment=comment,
                    may_decide="approved" in nxt and ctx.can("refunds:approve"),
                    may_cancel=current in lifecycle.RELEASABLE and ctx.can("refunds:cancel"),
                    fallbacks=_fallbacks(ctx, bundle))


def _fallbacks(ctx: Console, bundle: dict) -> list[str]:
    """The fallbacks offered after the gateway failed this refund (its refund.failed event
    names them), when the user may decide them; none once a fallback refund exists."""
    refund = bundle["refund"]
    if refund["status"] != "failed" or not ctx.can("refunds:approve"):
        return []
    if bundle.get("fallback_refund_id"):
        return []
    return list(bundle.get("fallback_options") or ())


@router.get("/refunds/{refund_id}", name="console_refund")
async def refund(refund_id: str, ctx: Console = Depends(console)) -> Response:
    return await _refund_page(ctx, refund_id)


@router.get("/approvals", name="console_approvals")
async def approvals_queue(ctx: Console = Depends(console)) -> Response:
    rows = await ctx.read(lambda conn: queries.pending_approvals(conn, ctx.user.seller_id))
    return ctx.page("approvals.html", title="Approvals", rows=rows)


async def _decide(ctx: Console, refund_id: str, action: str, call, flash: str) -> Response:
    try:
        await ctx.write(action, "refund", refund_id, call)
    except DomainError as err:
        return await _refund_page(ctx, refund_id, error=_message(err), status=err.status,
                                  comment=ctx.form.get("comment", "")[:2000])
    if ctx.form.get("back") == "approvals":
        return redirect("/console/approvals", flash=flash)
    return redirect(f"/console/refunds/{refund_id}", flash=flash)


@router.post("/refunds/{refund_id}/approve", name="console_approve_refund")
async def approve(refund_id: str, ctx: Console = Depends(console)) -> Response:
    def call(conn):
        return approvals.approve_refund(conn, ctx.clock, refund_id, actor=ctx.actor,
                                        comment=parse_comment(ctx.form, required=False),
                                        seller_id=ctx.user.seller_id)
    return await _decide(ctx, refund_id, "refund.approve", call, "refund_approved")


@router.post("/refunds/{refund_id}/reject", name="console_reject_refund")
async def reject(refund_id: str, ctx: Console = Depends(console)) -> Response:
    def call(conn):
        return approvals.reject_refund(conn, ctx.clock, refund_id, actor=ctx.actor,
                                       comment=parse_comment(ctx.form, required=True),
                                       seller_id=ctx.user.seller_id)
    return await _decide(ctx, refund_id, "refund.reject", call, "refund_rejected")


@router.post("/refunds/{refund_id}/cancel", name="console_cancel_refund")
async def cancel(refund_id: str, ctx: Console = Depends(console)) -> Response:
    def call(conn):
        return approvals.cancel_refund(conn, ctx.clock, refund_id, actor=ctx.actor,
                                       comment=parse_comment(ctx.form, required=False),
                                       seller_id=ctx.user.seller_id)
    return await _decide(ctx, refund_id, "refund.cancel", call, "refund_canceled")


@router.post("/refunds/{refund_id}/fallback", name="console_fallback_refund")
async def fallback(refund_id: str, ctx: Console = Depends(console)) -> Response:
    """After a gateway failure: pay by store credit or a manual payout (same service as the
    API's POST /v1/refunds/{id}/fallback)."""
    method = ctx.form.get("method", "")
    created: dict = {}

    def call(conn):
        created.update(gateway_flow.fallback_refund(conn, ctx.clock, refund_id, method=method,
                                                    actor=ctx.actor,
                                                    seller_id=ctx.user.seller_id))
        return created
    try:
        await ctx.write("refund.fallback", "refund", refund_id, call)
    except DomainError as err:
        return await _refund_page(ctx, refund_id, error=_message(err), status=err.status)
    return redirect(f"/console/refunds/{created['id']}", flash="refund_created")
