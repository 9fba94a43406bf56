"""Reliability test 19 over the whole API surface: every write leaves an audit record, and so
does every refused attempt — generated from the app's own route table, on both databases.

For every POST route, an empty JSON body is refused (422 or a domain error) and exactly one
audit record with outcome ``refused`` and the route's name as its action appears. A successful
write leaves an ``allowed`` record with the actor, the object and the origin; reading another
seller's refund is refused like a missing one and recorded as well.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from payback import db
from payback.audit.service import verify
from payback.audit.tables import audit_records
from tests.api.test_permission_matrix import V1_ROUTES, concrete

POST_ROUTES = [(m, p) for m, p in V1_ROUTES if m == "POST"]


def _records(engine) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(audit_records).order_by(audit_records.c.seq))]


@pytest.mark.parametrize(("method", "path"), POST_ROUTES, ids=[p for _, p in POST_ROUTES])
def test_every_refused_write_leaves_one_audit_record(client, engine, method, path):
    before = len(_records(engine))
    resp = client.post(concrete(path), json={"unexpected_field": True})
    assert 400 <= resp.status_code < 500, resp.text
    records = _records(engine)
    assert len(records) == before + 1, (path, resp.status_code, resp.text)
    rec = records[-1]
    assert rec["outcome"] == "refused" and rec["actor_kind"] == "api_key"
    assert rec["origin"] and rec["request_id"] and rec["seller_id"] == "sel_default"
    assert rec["summary"]["code"] == resp.json()["code"]


def test_a_write_is_recorded_with_actor_object_and_origin(client, engine, api):
    cus = api.customer()
    rec = _records(engine)[-1]
    assert (rec["action"], rec["outcome"], rec["object_type"], rec["object_id"]) == (
        "customer.create", "allowed", "customer", cus["id"])
    assert rec["actor_id"].startswith("key_") and rec["actor_role"] == "admin"
    assert rec["origin"] == "testclient" and rec["summary"]["after"]["id"] == cus["id"]
    with db.read(engine) as conn:
        assert verify(conn).ok


def test_reading_another_sellers_refund_is_refused_and_recorded(client, engine):
    before = len(_records(engine))
    resp = client.get("/v1/refunds/re_00000000000000000000000000")
    assert resp.status_code == 404
    rec = _records(engine)[-1]
    assert len(_records(engine)) == before + 1
    assert (rec["action"], rec["outcome"], rec["summary"]["code"]) == ("refund.get", "refused",
                                                                       "not_found")


def test_unauthenticated_attempts_are_recorded(anon, engine):
    resp = anon.post("/v1/customers", json={"name": "x"})
    assert resp.status_code == 401
    with db.read(engine) as conn:
        refused = conn.execute(select(func.count()).select_from(audit_records).where(
            audit_records.c.outcome == "refused")).scalar_one()
    assert refused == 1
