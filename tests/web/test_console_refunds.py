"""Requesting and deciding refunds through the console's forms, on SQLite and PostgreSQL.

The shop (see ``conftest.shop``): approval and four eyes above 500.00 EUR, agents may act up to
1,000.00 EUR; an invoice of 3 desks at 300.00 and a lamp at 50.00, + 20 % VAT, paid by card
(1,140.00). Two desks are 600.00 + 120.00 tax = 720.00: above the four-eyes threshold, within
the agent's limit.

Covers: an agent previews (the policy's decision, explanations, deadlines and four eyes are
shown; nothing is written) and confirms a partial line refund, which waits for approval; the
agent cannot approve it, nor can an approver approve a refund they requested themselves (four
eyes, a clear 403 message); another approver approves it and the timeline shows every step with
who, role, when and comment, and the messages sent to the customer; confirming twice creates ONE
refund; a tampered confirm is refused; rejecting needs a comment; a refund over the agent's limit
or over what remains is refused with its message and status; customer text is escaped; refusals
are audited like the API's.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, insert, select

from payback import db
from payback.audit.tables import audit_records
from payback.notifications.tables import notifications
from payback.refunds.tables import refund_events, refunds

from .conftest import csrf_of, form_of, snapshot


def _count_refunds(engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(refunds)).scalar_one()


def _refund_row(engine, refund_id: str):
    with db.read(engine) as conn:
        return conn.execute(select(refunds).where(refunds.c.id == refund_id)).one()


def _preview(client, shop, **fields):
    page = client.get(f"/console/invoices/{shop['invoice']['id']}")
    assert page.status_code == 200, page.text
    action, form = form_of(page.text, "refund-form")
    form.update(fields)
    return client.post(action, data=form)


def _request(client, shop, **fields) -> str:
    """Preview then confirm through the page's forms; returns the new refund's id."""
    preview = _preview(client, shop, **fields)
    assert preview.status_code == 200, preview.text
    action, form = form_of(preview.text, "confirm-form")
    done = client.post(action, data=form)
    assert done.status_code == 303, done.text
    location = done.headers["location"]
    assert location.endswith("?flash=refund_created")
    return location.split("/console/refunds/")[1].split("?")[0]


def _two_desks(shop) -> dict:
    return {"kind": "lines", f"qty_{shop['desk']}": "2", "reason": "requested_by_customer",
            "note": "Two desks came back unused"}


def test_agent_requests_a_four_eyes_refund_and_another_person_approves_it(
        engine, shop, logged_in, clock):
    agent, agent_user = logged_in("agent")
    before = snapshot(engine)
    preview = _preview(agent, shop, **_two_desks(shop))
    assert preview.status_code == 200
    html = preview.text
    assert 'id="preview-outcome">Needs approval<' in html
    assert 'id="preview-amount">€720.00<' in html
    assert "Yes: someone other than you must approve it" in html
    assert "Refund due by" in html and "<li>" in html.split('id="preview-explanations"')[1]
    assert "Confirm and send for approval" in html
    assert snapshot(engine) == before  # a preview writes nothing

    action, form = form_of(html, "confirm-form")
    done = agent.post(action, data=form)
    assert done.status_code == 303
    refund_id = done.headers["location"].split("/console/refunds/")[1].split("?")[0]
    row = _refund_row(engine, refund_id)
    assert (row.status, row.amount_minor, row.kind, row.requested_by) == (
        "pending_approval", 72000, "lines", agent_user.id)
    assert row.decision["four_eyes"] is True
    with db.read(engine) as conn:
        created = conn.execute(select(audit_records).where(
            audit_records.c.action == "refund.create")).one()
    assert (created.outcome, created.actor_id, created.actor_kind, created.actor_role,
            created.object_id, created.origin) == (
        "allowed", agent_user.id, "staff", "agent", refund_id, "testclient")
    assert created.summary["via"] == "console"
    assert created.summary["request"]["note"] == "Two desks came back unused"
    assert "csrf_token" not in created.summary["request"]
    assert "form_token" not in created.summary["request"]
    assert created.summary["after"]["status"] == "pending_approval"

    # The agent's role does not include refunds:approve.
    page = agent.get(f"/console/refunds/{refund_id}")
    assert 'id="approve-form"' not in page.text
    refused = agent.post(f"/console/refunds/{refund_id}/approve",
                         data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 403
    assert _refund_row(engine, refund_id).status == "pending_approval"

    clock.advance(hours=1)
    approver, approver_user = logged_in("approver")
    queue = approver.get("/console/approvals")
    assert f'id="pending-{refund_id}"' in queue.text and "four eyes" in queue.text
    page = approver.get(f"/console/refunds/{refund_id}")
    action, form = form_of(page.text, "approve-form")
    form["comment"] = "Checked the returned desks"
    approved = approver.post(action, data=form)
    assert approved.status_code == 303
    assert approved.headers["location"] == f"/console/refunds/{refund_id}?flash=refund_approved"
    row = _refund_row(engine, refund_id)
    assert (row.status, row.approved_by) == ("succeeded", approver_user.id)

    timeline = approver.get(approved.headers["location"]).text
    assert "The refund was approved." in timeline
    steps = timeline.split('id="timeline"')[1].split("</ol>")[0]
    assert steps.index('data-status="requested"') < steps.index('data-status="pending_approval"') \
        < steps.index('data-status="approved"') < steps.index('data-status="succeeded"')
    assert "Agent Tester (agent@console.test)" in steps and "(agent)" in steps
    assert "Approver Tester (approver@console.test)" in steps and "(approver)" in steps
    assert "“Checked the returned desks”" in steps
    assert "2026-01-15 11:00 UTC" in steps and "2026-01-15 10:00 UTC" in steps
    invoice = approver.get(f"/console/invoices/{shop['invoice']['id']}").text
    assert 'id="invoice-refunded">€720.00<' in invoice


def test_an_approver_cannot_approve_a_refund_they_requested(engine, shop, logged_in):
    approver, user = logged_in("approver")
    refund_id = _request(approver, shop, kind="amount", amount="600.00",
                         reason="requested_by_customer")
    assert _refund_row(engine, refund_id).status == "pending_approval"
    page = approver.get(f"/console/refunds/{refund_id}")
    action, form = form_of(page.text, "approve-form")
    refused = approver.post(action, data=form)
    assert refused.status_code == 403
    assert "A second person must approve this refund" in refused.text
    assert 'role="alert"' in refused.text
    assert _refund_row(engine, refund_id).status == "pending_approval"
    with db.read(engine) as conn:
        audit = conn.execute(select(audit_records).where(
            audit_records.c.action == "refund.approve")).one()
    assert (audit.outcome, audit.actor_id, audit.object_id) == ("refused", user.id, refund_id)
    assert audit.summary["code"] == "four_eyes_required"


def test_confirming_twice_creates_one_refund(engine, shop, logged_in):
    agent, _ = logged_in("agent")
    preview = _preview(agent, shop, kind="lines", **{f"qty_{shop['lamp']}": "1"},
                       reason="product_defective")
    action, form = form_of(preview.text, "confirm-form")
    first = agent.post(action, data=form)
    second = agent.post(action, data=form)  # a double click, or the browser resubmitting
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert _count_refunds(engine) == 1
    # The same one-time token with other values is refused and creates nothing.
    tampered = agent.post(action, data={**form, f"qty_{shop['lamp']}": "0",
                                        f"qty_{shop['desk']}": "1"})
    assert tampered.status_code == 422
    assert "different request" in tampered.text
    assert _count_refunds(engine) == 1
    # Without a token (no preview), nothing is created either.
    bare = agent.post(action, data={k: v for k, v in form.items() if k != "form_token"})
    assert bare.status_code == 422 and "preview the refund first" in bare.text
    assert _count_refunds(engine) == 1


def test_reject_needs_a_comment(engine, shop, logged_in):
    agent, _ = logged_in("agent")
    refund_id = _request(agent, shop, **_two_desks(shop))
    approver, _ = logged_in("approver")
    page = approver.get(f"/console/refunds/{refund_id}")
    action, form = form_of(page.text, "reject-form")
    before = snapshot(engine)
    empty = approver.post(action, data={**form, "comment": "   "})
    assert empty.status_code == 422
    assert "say why the refund is rejected" in empty.text
    assert snapshot(engine) == before
    assert _refund_row(engine, refund_id).status == "pending_approval"
    rejected = approver.post(action, data={**form, "comment": "Desks were damaged"})
    assert rejected.status_code == 303
    assert _refund_row(engine, refund_id).status == "rejected"
    timeline = approver.get(f"/console/refunds/{refund_id}").text
    assert "“Desks were damaged”" in timeline and 'data-status="rejected"' in timeline
    # From the approvals queue, a reject goes back to the queue.
    other = _request(agent, shop, kind="amount", amount="550", reason="requested_by_customer")
    queue = approver.get("/console/approvals").text
    action = f"/console/refunds/{other}/reject"
    done = approver.post(action, data={"csrf_token": csrf_of(queue), "back": "approvals",
                                       "comment": "No"})
    assert done.headers["location"] == "/console/approvals?flash=refund_rejected"


def test_refusals_are_shown_with_their_message_and_status(engine, shop, logged_in):
    agent, _ = logged_in("agent")
    before = snapshot(engine)
    over_limit = _preview(agent, shop, kind="full", reason="requested_by_customer")
    assert over_limit.status_code == 403
    assert "Above your role&#39;s refund limit" in over_limit.text
    too_much = _preview(agent, shop, kind="amount", amount="2000.00",
                        reason="requested_by_customer")
    assert too_much.status_code == 409
    assert "Amount exceeds the refundable amount" in too_much.text
    bad_amount = _preview(agent, shop, kind="amount", amount="12.345",
                          reason="requested_by_customer")
    assert bad_amount.status_code == 422 and "amount:" in bad_amount.text
    # The form keeps what was typed.
    assert 'value="12.345"' in bad_amount.text
    no_lines = _preview(agent, shop, kind="lines", reason="requested_by_customer")
    assert no_lines.status_code == 422 and "at least one line" in no_lines.text
    assert "Traceback" not in too_much.text + over_limit.text
    assert snapshot(engine) == before
    missing = agent.get("/console/invoices/inv_missing")
    assert missing.status_code == 404 and "invoice inv_missing not found" in missing.text


def test_customer_text_is_escaped(engine, shop, logged_in, clock):
    agent, _ = logged_in("agent")
    note = '<script>alert("note")</script>'
    refund_id = _request(agent, shop, kind="lines", **{f"qty_{shop['lamp']}": "1"},
                         reason="requested_by_customer", note=note)
    page = agent.get(f"/console/refunds/{refund_id}").text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#34;note&#34;)&lt;/script&gt;" in page
    from payback.customers.service import create_customer
    with db.write(engine) as conn:
        create_customer(conn, clock, name="<img src=x onerror=alert(1)>")
    listing = agent.get("/console/customers", params={"q": "<img"}).text
    assert "<img src=x" not in listing and "&lt;img src=x onerror=alert(1)&gt;" in listing


def test_store_credit_shows_the_policy_bonus_and_the_timeline_shows_messages(
        engine, shop, logged_in, clock):
    agent, _ = logged_in("agent")
    page = agent.get(f"/console/invoices/{shop['invoice']['id']}").text
    assert 'id="bonus-note">(+10 % bonus under the current policy)<' in page
    preview = _preview(agent, shop, kind="lines", **{f"qty_{shop['lamp']}": "1"},
                       method="store_credit", consent="yes", reason="requested_by_customer")
    assert 'id="preview-bonus">€6.00<' in preview.text  # 10 % of 60.00
    action, form = form_of(preview.text, "confirm-form")
    refund_id = agent.post(action, data=form).headers["location"].split("/")[3].split("?")[0]
    with db.write(engine) as conn:
        conn.execute(insert(notifications).values(
            id="ntf_test", refund_id=refund_id, customer_id=shop["customer"]["id"],
            kind="refund_paid", event_id="evt_test", locale="en_US",
            to_address="ada@example.com", subject="Your refund of €66.00 is on its way",
            body_text="-", body_html="-", status="sent",
            created_at=clock.now() + timedelta(minutes=1),
            sent_at=clock.now() + timedelta(minutes=2)))
    refund_page = agent.get(f"/console/refunds/{refund_id}").text
    steps = refund_page.split('id="timeline"')[1].split("</ol>")[0]
    assert "Message to the customer" in steps
    assert "Your refund of €66.00 is on its way · to ada@example.com" in steps
    assert steps.index('data-status="succeeded"') < steps.index('data-message="refund_paid"')
    with db.read(engine) as conn:
        moves = conn.execute(select(refund_events.c.to_status).where(
            refund_events.c.refund_id == refund_id).order_by(refund_events.c.id)).scalars()
        assert list(moves) == ["requested", "approved", "processing", "succeeded"]


def test_two_confirms_at_the_same_moment_create_one_refund(engine, shop, logged_in,
                                                           client_factory):
    from concurrent.futures import ThreadPoolExecutor

    agent, _ = logged_in("agent")
    preview = _preview(agent, shop, kind="amount", amount="100.00",
                       reason="requested_by_customer")
    action, form = form_of(preview.text, "confirm-form")
    # Two tabs of the same browser (same session cookie), each its own client (thread-safe).
    tabs = []
    for _ in range(2):
        tab = client_factory()
        tab.cookies.set("payback_session", agent.cookies.get("payback_session"),
                        path="/console")
        tabs.append(tab)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda tab: tab.post(action, data=form), tabs))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([303, 303], [303, 409]), [a.text[:300] for a in answers]
    assert _count_refunds(engine) == 1
    late = [a for a in answers if a.status_code == 409]
    if late:
        assert "in progress" in late[0].text
    # Afterwards, the same form lands on the one refund.
    again = agent.post(action, data=form)
    assert again.status_code == 303 and _count_refunds(engine) == 1


def test_refund_page_shows_the_gateway_status(engine, shop, logged_in, clock):
    from payback.gateways.tables import gateway_intents

    agent, _ = logged_in("agent")
    refund_id = _request(agent, shop, kind="lines", **{f"qty_{shop['lamp']}": "1"},
                         reason="requested_by_customer")
    with db.write(engine) as conn:
        conn.execute(insert(gateway_intents).values(
            id="gwi_test", refund_id=refund_id, payment_id=shop["payment"]["id"],
            gateway="sandbox", payment_reference="pi_test", amount_minor=6000, currency="EUR",
            idempotency_key=f"{refund_id}:1", status="failed", failure_reason="expired_card",
            created_at=clock.now(), updated_at=clock.now()))
    page = agent.get(f"/console/refunds/{refund_id}").text
    gateway = page.split('id="gateway"')[1].split("</table>")[0]
    assert "sandbox" in gateway and "failed" in gateway and "expired card" in gateway
    assert "€60.00" in gateway
