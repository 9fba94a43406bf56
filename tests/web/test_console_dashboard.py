"""The dashboard's figures against a direct computation over the refund rows, and their display,
on SQLite and PostgreSQL.

The story (the demo shop's policy; "today" is 2026-01-15, UTC):
- 2025-12-20: an EUR invoice of 100.00, paid; a 20.00 billing-error refund (paid at once) and a
  10.00 goodwill refund (goodwill needs approval: still pending, due 2026-01-03: overdue now);
- 2026-01-03: a USD invoice of 200.00, paid; a 50.00 refund (paid at once);
- 2026-01-15 10:00: an EUR invoice of 1,140.00, paid; a 60.00 lamp refund (paid at once) and a
  720.00 desk refund that waits for approval, approved at 11:00 by someone else.

So today: 2 requested, 2 approved, 2 paid, each €780.00; this month also 1 of $50.00; overdue:
1 of €10.00; refund rate this month: EUR 780 / 1,140 = 68.4 %, USD 50 / 200 = 25.0 %.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from payback import db
from payback.access.tables import DEFAULT_SELLER_ID
from payback.actor import Actor
from payback.approvals import service as approvals
from payback.clock import FixedClock
from payback.customers.service import create_customer
from payback.demo_data import DEMO_POLICY
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.invoicing.tables import invoices
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.tables import refund_events
from payback.refunds.tables import refunds as refunds_table
from payback.reports.dashboard import dashboard

AGENT = Actor(id="usr_agent_x", kind="staff", role="agent")
APPROVER = Actor(id="usr_approver_x", kind="staff", role="approver")
NOW = datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc)


def _at(*args) -> FixedClock:
    return FixedClock(datetime(*args, tzinfo=timezone.utc))


def _paid_invoice(conn, clock, cus, currency, lines):
    inv = create_invoice(conn, clock, customer_id=cus["id"], currency=currency,
                         tax_mode="exclusive", lines=lines)
    record_payment(conn, clock, inv["id"], method="bank_transfer",
                   amount_minor=inv["total_minor"], currency=currency)
    return inv


def _refund(conn, clock, inv, reason, *, amount=None, lines=(), actor=AGENT):
    kind = "lines" if lines else "amount"
    return refunds.create_refund(conn, clock, inv["id"], RefundRequest(
        kind=kind, method="original_payment", reason=reason, amount_minor=amount,
        lines=tuple(lines)), actor=actor)


@pytest.fixture
def story(engine, clock):
    assert clock.now() == NOW
    dec = _at(2025, 12, 20, 9, 0)
    with db.write(engine) as conn:
        policies.set_policy(conn, dec, seller_id=DEFAULT_SELLER_ID, data=DEMO_POLICY,
                            actor=APPROVER)
        cus = create_customer(conn, dec, name="Grace Hopper")
        old = _paid_invoice(conn, dec, cus, "EUR", [LineInput("Book", 1, 10000, Decimal(0))])
        paid = _refund(conn, dec, old, "billing_error", amount=2000)
        pending = _refund(conn, dec, old, "goodwill", amount=1000)
    jan3 = _at(2026, 1, 3, 15, 30)
    with db.write(engine) as conn:
        usd = _paid_invoice(conn, jan3, cus, "USD", [LineInput("Cable", 2, 10000, Decimal(0))])
        usd_refund = _refund(conn, jan3, usd, "requested_by_customer", amount=5000)
    with db.write(engine) as conn:
        inv = _paid_invoice(conn, clock, cus, "EUR",
                            [LineInput("Desk", 3, 30000, Decimal("0.20")),
                             LineInput("Lamp", 1, 5000, Decimal("0.20"))])
        lamp = _refund(conn, clock, inv, "requested_by_customer",
                       lines=[LineRequest(inv["lines"][1]["id"], 1)])
        desk = _refund(conn, clock, inv, "not_as_described",
                       lines=[LineRequest(inv["lines"][0]["id"], 2)])
    assert [r["status"] for r in (paid, pending, usd_refund, lamp, desk)] == [
        "succeeded", "pending_approval", "succeeded", "succeeded", "pending_approval"]
    with db.write(engine) as conn:
        approvals.approve_refund(conn, _at(2026, 1, 15, 11, 0), desk["id"], actor=APPROVER)
    return {"pending": pending, "desk": desk}


def _direct(engine, now: datetime) -> dict:
    """The dashboard's definitions, computed in Python from every refund and event row."""
    with db.read(engine) as conn:
        rows = conn.execute(select(refunds_table)).all()
        events = conn.execute(select(refund_events)).all()
        invs = conn.execute(select(invoices)).all()
    today = now.date()
    spans = {"today": (today, today), "month": (today.replace(day=1), date(2026, 1, 31))}

    def within(at, name):
        lo, hi = spans[name]
        return lo <= at.date() <= hi

    def tally(chosen):
        out = defaultdict(lambda: {"count": 0, "amount_minor": 0})
        for r in chosen:
            out[r.currency]["count"] += 1
            out[r.currency]["amount_minor"] += r.amount_minor
        return dict(out)

    def entered(status, name):
        ids = {e.refund_id for e in events if e.to_status == status and within(e.at, name)}
        return tally(r for r in rows if r.id in ids)

    periods = {name: {"requested": tally(r for r in rows if within(r.created_at, name)),
                      "approved": entered("approved", name),
                      "paid": entered("succeeded", name)} for name in spans}
    overdue = tally(r for r in rows if r.status in ("requested", "pending_approval",
                                                    "approved", "processing")
                    and r.due_at is not None and r.due_at < now)
    first = today - timedelta(days=29)
    recent = [r for r in rows if first <= r.created_at.date() <= today]
    per_day = Counter(r.created_at.date() for r in recent)
    reasons = Counter(r.reason for r in recent)
    invoiced = defaultdict(int)
    for i in invs:
        if within(i.issued_at, "month") and i.voided_at is None:
            invoiced[i.currency] += i.total_minor
    return {"periods": periods, "overdue": overdue, "per_day": per_day, "reasons": reasons,
            "invoiced": dict(invoiced)}


def test_dashboard_figures_equal_a_direct_computation(engine, story):
    with db.read(engine) as conn:
        got = dashboard(conn, now=NOW, seller_id=DEFAULT_SELLER_ID)
    want = _direct(engine, NOW)
    for name in ("today", "month"):
        for key in ("requested", "approved", "paid"):
            assert got["periods"][name][key] == want["periods"][name][key], (name, key)
    assert got["overdue"] == want["overdue"]
    assert {d["day"]: d["count"] for d in got["daily"] if d["count"]} == dict(want["per_day"])
    assert len(got["daily"]) == 30 and got["daily"][-1]["day"] == NOW.date()
    assert {r["reason"]: r["count"] for r in got["by_reason"]} == dict(want["reasons"])
    for row in got["refund_rate"]:
        paid = want["periods"]["month"]["paid"].get(row["currency"], {}).get("amount_minor", 0)
        assert row["refunded_minor"] == paid
        assert row["invoiced_minor"] == want["invoiced"][row["currency"]]
    # The same figures, worked out by hand from the story.
    eur_today = {"EUR": {"count": 2, "amount_minor": 78000}}
    assert {k: got["periods"]["today"][k] for k in ("requested", "approved", "paid")} == {
        "requested": eur_today, "approved": eur_today, "paid": eur_today}
    assert got["periods"]["month"]["paid"] == {**eur_today,
                                               "USD": {"count": 1, "amount_minor": 5000}}
    assert got["overdue"] == {"EUR": {"count": 1, "amount_minor": 1000}}
    assert [(r["currency"], r["percent"]) for r in got["refund_rate"]] == [
        ("EUR", Decimal("68.4")), ("USD", Decimal("25.0"))]
    assert [r["reason"] for r in got["by_reason"]] == [
        "requested_by_customer", "billing_error", "goodwill", "not_as_described"]


def test_dashboard_page_shows_the_figures_and_charts_with_text_alternatives(story, logged_in):
    client, _ = logged_in("viewer")
    page = client.get("/console")
    assert page.status_code == 200
    html = page.text
    requested = html.split('id="row-requested"')[1].split("</tr>")[0]
    today, month = requested.split('data-period="month"')
    assert '<span class="count">2</span> · €780.00' in today
    assert '<span class="count">2</span> · €780.00' in month
    assert '<span class="count">1</span> · $50.00' in month and "$50.00" not in today
    overdue = html.split('id="overdue-total"')[1].split("</div>")[0]
    assert '<span class="count">1</span> · €10.00' in overdue
    assert f'/console/refunds/{story["pending"]["id"]}' in html
    rate = html.split('id="refund-rate"')[1].split("</table>")[0]
    assert "68.4 %" in rate and "25.0 %" in rate and "€1,140.00" in rate
    for chart in ("chart-daily", "chart-reasons"):
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in html
        assert f'<title id="{chart}-title">' in html and f'<desc id="{chart}-desc">' in html
    daily = html.split('id="chart-daily-table"')[1].split("</table>")[0]
    assert '<th scope="row">2025-12-20</th><td>2</td>' in daily
    assert '<th scope="row">2026-01-15</th><td>2</td>' in daily
    reasons = html.split('id="chart-reasons-table"')[1].split("</table>")[0]
    assert '<th scope="row">requested by customer</th><td>2</td>' in reasons
    assert html.count('class="bar"') == 30 + 4
