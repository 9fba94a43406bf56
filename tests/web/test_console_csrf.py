"""CSRF protection of the console's forms, on SQLite and PostgreSQL.

A POST must carry the session's own CSRF token in its form: without it, with a wrong one, or
with another session's, the answer is a 403 page, nothing in the database changes, and the
refusal is audited.
"""

from __future__ import annotations

from sqlalchemy import select

from payback import db
from payback.actor import Actor
from payback.audit.tables import audit_records
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest

from .conftest import csrf_of, snapshot

REQUESTER = Actor(id="usr_requester", kind="staff", role="agent")


def test_a_post_without_the_sessions_csrf_token_changes_nothing(engine, clock, shop,
                                                                logged_in):
    with db.write(engine) as conn:
        pending = refunds.create_refund(conn, clock, shop["invoice"]["id"], RefundRequest(
            kind="amount", method="original_payment", reason="requested_by_customer",
            amount_minor=60000), actor=REQUESTER)
    approver, user = logged_in("approver")
    other, _ = logged_in("admin")
    others_token = csrf_of(other.get("/console").text)
    own_token = csrf_of(approver.get("/console").text)
    assert others_token != own_token
    before = snapshot(engine)
    path = f"/console/refunds/{pending['id']}/approve"
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"},
                 {"csrf_token": others_token}):
        response = approver.post(path, data={**data, "comment": "ok"})
        assert response.status_code == 403, data
        assert "This form has expired" in response.text
    confirm = approver.post(f"/console/invoices/{shop['invoice']['id']}/refunds",
                            data={"kind": "full", "reason": "duplicate", "form_token": "t"})
    assert confirm.status_code == 403
    logout = approver.post("/console/logout")
    assert logout.status_code == 403
    assert snapshot(engine) == before
    assert approver.get("/console").status_code == 200  # still logged in
    with db.read(engine) as conn:
        refusals = conn.execute(select(audit_records).where(
            audit_records.c.actor_id == user.id, audit_records.c.outcome == "refused")).all()
    assert len(refusals) == 6
    assert {r.summary["reason"] for r in refusals} == {"csrf_token_invalid"}
    # With its own token, the same approval goes through.
    done = approver.post(path, data={"csrf_token": own_token})
    assert done.status_code == 303
