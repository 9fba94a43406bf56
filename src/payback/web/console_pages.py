"""Console pages that only read: the dashboard, the searchable lists (invoices, payments,
refunds, customers), the customer page with store credit, the audit log viewer and the settings
page (the active refund policy). Each route parses its query, calls read-only service functions
in one read transaction and renders a template.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from payback.audit import service as audit
from payback.errors import DomainError
from payback.policies.service import active_policy
from payback.refunds.service import list_overdue
from payback.reports.dashboard import dashboard as dashboard_figures
from payback.web import console_queries as queries
from payback.web import console_view as view
from payback.web.console_base import Console, ConsoleRoute, console
from payback.web.console_forms import cursor, parse_audit_filters

router = APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
STATUSES = tuple(view.STATUS_LABELS)


def _params(ctx: Console) -> tuple[str, str | None, int]:
    query = ctx.request.query_params
    return ((query.get("q") or "").strip()[:200], cursor(query.get("starting_after")),
            ctx.settings.page_size)


@router.get("", name="console_dashboard")
async def dashboard(ctx: Console = Depends(console)) -> Response:
    now = ctx.clock.now()

    def load(conn):
        return (dashboard_figures(conn, now=now, seller_id=ctx.user.seller_id),
                list_overdue(conn, now, seller_id=ctx.user.seller_id, limit=10))
    figures, late = await ctx.read(load)
    return ctx.page("dashboard.html", title="Dashboard", d=figures, overdue_rows=late,
                    daily_chart=view.daily_chart(figures["daily"]),
                    reason_chart=view.reason_chart(figures["by_reason"]))


@router.get("/invoices", name="console_invoices")
async def invoices(ctx: Console = Depends(console)) -> Response:
    q, after, limit = _params(ctx)
    found = await ctx.read(lambda conn: queries.search_invoices(
        conn, seller_id=ctx.user.seller_id, q=q, after=after, limit=limit))
    return ctx.page("invoices.html", title="Invoices", q=q, result=found)


@router.get("/payments", name="console_payments")
async def payments(ctx: Console = Depends(console)) -> Response:
    q, after, limit = _params(ctx)
    found = await ctx.read(lambda conn: queries.search_payments(
        conn, seller_id=ctx.user.seller_id, q=q, after=after, limit=limit))
    return ctx.page("payments.html", title="Payments", q=q, result=found)


@router.get("/refunds", name="console_refunds")
async def refunds(ctx: Console = Depends(console)) -> Response:
    q, after, limit = _params(ctx)
    status = ctx.request.query_params.get("status") or ""
    status = status if status in STATUSES else ""
    found = await ctx.read(lambda conn: queries.search_refunds(
        conn, seller_id=ctx.user.seller_id, q=q, status=status or None, after=after,
        limit=limit))
    return ctx.page("refunds.html", title="Refunds", q=q, status_filter=status, result=found,
                    statuses=view.STATUS_LABELS)


@router.get("/customers", name="console_customers")
async def customers(ctx: Console = Depends(console)) -> Response:
    q, after, limit = _params(ctx)
    found = await ctx.read(lambda conn: queries.search_customers(
        conn, seller_id=ctx.user.seller_id, q=q, after=after, limit=limit))
    return ctx.page("customers.html", title="Customers", q=q, result=found)


@router.get("/customers/{customer_id}", name="console_customer")
async def customer(customer_id: str, ctx: Console = Depends(console)) -> Response:
    try:
        bundle = await ctx.read(lambda conn: queries.customer_bundle(
            conn, customer_id, ctx.user.seller_id))
    except DomainError as err:
        return ctx.error(err)
    return ctx.page("customer.html", title=f"Customer {bundle['customer']['name']}", **bundle)


@router.get("/audit", name="console_audit")
async def audit_log(ctx: Console = Depends(console)) -> Response:
    query = ctx.request.query_params
    limit = ctx.settings.page_size
    try:
        filters = parse_audit_filters(dict(query))
    except DomainError as err:
        return ctx.page("audit.html", status=err.status, title="Audit log", error=err.detail,
                        filters=dict(query), rows=[], has_more=False, next_seq=None)
    after = query.get("after_seq") or ""
    after_seq = int(after) if after.isdigit() and len(after) < 19 else None
    rows = await ctx.read(lambda conn: audit.query(
        conn, seller_id=ctx.user.seller_id, object_id=filters.object, actor_id=filters.actor,
        action=filters.action, outcome=filters.outcome, date_from=filters.date_from,
        date_to=filters.date_to, after_seq=after_seq, limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return ctx.page("audit.html", title="Audit log", filters=filters.values, rows=rows,
                    has_more=more, next_seq=rows[-1]["seq"] if more and rows else None)


@router.get("/settings", name="console_settings")
async def settings_page(ctx: Console = Depends(console)) -> Response:
    policy = await ctx.read(lambda conn: active_policy(conn, ctx.user.seller_id))
    return ctx.page("settings.html", title="Settings",
                    sections=view.policy_sections(policy) if policy is not None else None,
                    session_hours=ctx.settings.session_hours,
                    idle_minutes=ctx.settings.session_idle_minutes)
