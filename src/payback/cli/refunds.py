"""``payback refunds overdue|approve|reject``: what finance must chase, and the approval queue.

Approving and rejecting are done AS a staff user (``--as EMAIL``): the refund's four-eyes rule
and the role's limit compare that user with the requester, exactly as for the API, because the
rules live in ``payback.approvals.service``. The CLI checks only that the user's role has the
``refunds:approve`` permission, as the API's route table does. Every attempt is audited with the
staff user as actor and origin ``cli``, a refused one too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from payback.actor import Actor
from payback.cli.core import (
    JsonOpt,
    _echo_json,
    _engine,
    _money,
    _print_wide,
    _utc,
    app,
    audited_write,
    mapped,
)
from payback.settings import Settings

refunds_app = typer.Typer(no_args_is_help=True,
                          help="Refunds: deadlines and the approval queue.")
app.add_typer(refunds_app, name="refunds")

APPROVE = "refunds:approve"
AsOpt = Annotated[str, typer.Option("--as", metavar="EMAIL",
                                    help="The staff user who decides (their login email).")]
_OVERDUE_FIELDS = ("id", "invoice_id", "customer_id", "seller_id", "status", "amount_minor",
                   "currency", "reason", "requested_by", "created_at", "due_at", "overdue")
_AFTER = ("id", "status", "amount_minor", "currency", "approved_by", "requested_by")


@refunds_app.command("overdue")
@mapped
def refunds_overdue(within_days: Annotated[int, typer.Option(
                        "--within-days", min=0, max=365,
                        help="Also list refunds due within this many days.")] = 0,
                    seller: Annotated[str | None, typer.Option(
                        "--seller", help="Only this seller's refunds (default: all).")] = None,
                    as_json: JsonOpt = False) -> None:
    """Unfinished refunds past their due date (LATE) or due soon, earliest first."""
    from payback.clock import SystemClock
    from payback.db import read
    from payback.refunds.service import list_overdue

    now = SystemClock().now()
    with _engine(Settings()) as engine, read(engine) as conn:
        rows = list_overdue(conn, now, due_within_days=within_days, seller_id=seller)
        numbers = _invoice_numbers(conn, {r["invoice_id"] for r in rows})
    if as_json:
        _echo_json([{k: _iso(r[k]) for k in _OVERDUE_FIELDS} for r in rows])
    elif not rows:
        typer.echo("No refund is late" + (f" or due within {within_days} days."
                                           if within_days else "."))
    else:
        _print_wide(Console(), _overdue_table(rows, numbers, within_days))


def _invoice_numbers(conn, ids: set[str]) -> dict[str, str]:
    from sqlalchemy import select

    from payback.invoicing.tables import invoices

    if not ids:
        return {}
    q = select(invoices.c.id, invoices.c.number).where(invoices.c.id.in_(ids))
    return {row.id: row.number for row in conn.execute(q)}


def _iso(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _overdue_table(rows: list[dict], numbers: dict[str, str], within_days: int) -> Table:
    title = "Refunds late" + (f" or due within {within_days} days" if within_days else "")
    table = Table(title=title)
    for name, justify in (("Refund", "left"), ("Invoice", "left"), ("Amount", "right"),
                          ("Status", "left"), ("Due (UTC)", "left"), ("", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for r in rows:
        flag = "[bold red]LATE[/]" if r["overdue"] else "due soon"
        table.add_row(escape(r["id"]), escape(numbers.get(r["invoice_id"], r["invoice_id"])),
                      _money(r["amount_minor"], r["currency"]), r["status"], _utc(r["due_at"]),
                      flag)
    return table


def _staff(email: str):
    """The staff user with this login email, as the service layer's actor (origin ``cli``)."""
    def resolve(conn) -> Actor:
        from payback.access.errors import Forbidden
        from payback.access.service import find_login
        from payback.errors import NotFound

        row = find_login(conn, email)
        if row is None:
            raise NotFound(f"no staff user with email {email}")
        if not row.active:
            raise Forbidden(f"staff user {row.email} is not active")
        return Actor(id=row.id, kind="staff", role=row.role, seller_id=row.seller_id,
                     origin="cli")
    return resolve


def _require_approve(actor: Actor) -> None:
    from payback.access.domain import effective_permissions
    from payback.access.errors import Forbidden

    if APPROVE not in effective_permissions(actor.role or ""):
        raise Forbidden(f"role {actor.role} may not approve or reject refunds "
                        f"(needs {APPROVE})")


def _decide(action: str, refund_id: str, email: str, comment: str | None) -> dict:
    from payback.approvals.service import approve_refund, reject_refund

    def run(conn, clock, actor):
        _require_approve(actor)
        if action == "approve":
            refund = approve_refund(conn, clock, refund_id, actor=actor, comment=comment,
                                    seller_id=actor.seller_id)
        else:
            refund = reject_refund(conn, clock, refund_id, actor=actor, comment=comment or "",
                                   seller_id=actor.seller_id)
        return refund, ("re", refund["id"], {k: refund[k] for k in _AFTER})

    return audited_write(Settings(), f"cli.refunds.{action}", _staff(email), run,
                         request={"refund_id": refund_id, "as": email, "comment": comment},
                         target=("re", refund_id))


@refunds_app.command("approve")
@mapped
def refunds_approve(refund_id: Annotated[str, typer.Argument(help="The refund's id (re_…).")],
                    as_email: AsOpt,
                    comment: Annotated[str | None, typer.Option(
                        help="Why (kept on the refund's history).")] = None) -> None:
    """Approve a refund waiting for approval; it is then paid out at once."""
    refund = _decide("approve", refund_id, as_email, comment)
    typer.echo(f"Refund {refund['id']} approved by {as_email}: "
               f"{_money(refund['amount_minor'], refund['currency'])}, now {refund['status']}.")


@refunds_app.command("reject")
@mapped
def refunds_reject(refund_id: Annotated[str, typer.Argument(help="The refund's id (re_…).")],
                   as_email: AsOpt,
                   comment: Annotated[str, typer.Option(
                       help="Why it is refused (required; the customer may be told).")]
                   ) -> None:
    """Reject a refund waiting for approval; its amount becomes refundable again."""
    refund = _decide("reject", refund_id, as_email, comment)
    typer.echo(f"Refund {refund['id']} rejected by {as_email}: "
               f"{_money(refund['amount_minor'], refund['currency'])}, now {refund['status']}.")
