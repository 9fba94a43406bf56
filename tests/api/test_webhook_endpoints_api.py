"""The outbound-webhooks HTTP contract (``/v1/webhook-endpoints``), on SQLite and PostgreSQL:

- ``POST`` answers 201 with the signing secret, once: reads and lists show only ``whsec_…`` and
  the last four characters, and neither the audit trail nor a list ever holds the secret;
- bad URLs (not http(s), user and password, fragment), unknown or empty event types and unknown
  fields are 422 problems and write nothing;
- ``PATCH`` changes only what is sent (``description: null`` clears it), ``DELETE`` disables
  and keeps the endpoint and its log, ``rotate-secret`` gives a new secret once with the old one
  overlapping (0 to 168 hours);
- the delivery log of deliveries made by the real worker to a real receiver: newest first, with
  attempts, paginated, filtered by status; ``retry`` requeues a failed delivery and refuses
  another (409);
- another seller's endpoint and delivery are 404 on every route and absent from lists;
- roles: admin writes, auditor only reads, agent (and viewer, approver) are refused with 403.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from tests.integration.test_webhook_delivery import Receiver, answer, worker

from payback import db
from payback.access.tables import sellers
from payback.audit.tables import audit_records
from payback.outbox.worker import drain
from payback.webhooks.tables import webhook_endpoints

BASE = "/v1/webhook-endpoints"
BODY = {"url": "https://shop.example/payback/hooks", "event_types": ["refund.*", "payment.*"],
        "description": "shop backend"}


def endpoint_count(engine) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(webhook_endpoints)).scalar_one()


@pytest.fixture
def rx():
    receiver = Receiver()
    yield receiver
    receiver.close()


# ------------------------------------------------------------------ create, read, secrets


def test_create_shows_the_secret_once_and_reads_mask_it(client, api, engine):
    created = api._created(BASE, BODY)
    secret = created["secret"]
    assert secret.startswith("whsec_") and len(secret) >= 38
    assert created["id"].startswith("we_")
    assert (created["url"], created["event_types"], created["description"], created["enabled"],
            created["secret_hint"], created["previous_secret_expires_at"]) == (
        BODY["url"], BODY["event_types"], "shop backend", True, f"whsec_…{secret[-4:]}", None)
    assert created["created_at"] == created["updated_at"] == "2026-01-15T10:00:00Z"

    one = client.get(f"{BASE}/{created['id']}")
    listed = client.get(BASE)
    for resp in (one, listed):
        assert resp.status_code == 200, resp.text
        assert secret not in resp.text and '"secret"' not in resp.text
    assert one.json()["secret_hint"] == created["secret_hint"]
    assert [e["id"] for e in listed.json()["data"]] == [created["id"]]
    with db.read(engine) as conn:
        trail = conn.execute(select(audit_records.c.action, audit_records.c.summary)).all()
    assert ("webhook_endpoint.create" in [a for a, _ in trail])
    assert all(secret not in str(summary) for _, summary in trail)


def test_an_idempotent_replay_answers_the_same_endpoint(client, engine):
    headers = {"Idempotency-Key": "create-hook-1"}
    first = client.post(BASE, json=BODY, headers=headers)
    again = client.post(BASE, json=BODY, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    assert endpoint_count(engine) == 1


@pytest.mark.parametrize("body, code, needle", [
    ({**BODY, "url": "ftp://shop.example/hooks"}, "validation_failed", "http and https"),
    ({**BODY, "url": "https://user:pw@shop.example/hooks"}, "validation_failed", "password"),
    ({**BODY, "url": "https://shop.example/hooks#x"}, "validation_failed", "fragment"),
    ({**BODY, "url": "not a url"}, "validation_failed", "url"),
    ({**BODY, "event_types": ["refund.exploded"]}, "validation_failed", "refund.exploded"),
    ({**BODY, "event_types": ["dispute.*"]}, "validation_failed", "dispute.*"),
    ({**BODY, "event_types": []}, "validation_failed", "event_types"),
    ({**BODY, "secret": "whsec_mine"}, "unknown_field", "secret"),
    ({"event_types": ["*"]}, "missing_field", "url"),
])
def test_bad_endpoints_are_422_and_write_nothing(client, engine, problem, body, code, needle):
    resp = client.post(BASE, json=body)
    assert needle in problem(resp, 422, code)["detail"]
    assert endpoint_count(engine) == 0


# --------------------------------------------------------------- change, disable, rotate


def test_patch_changes_only_what_is_sent(client, api, clock, problem):
    ep = api._created(BASE, BODY)
    clock.advance(minutes=5)
    resp = client.patch(f"{BASE}/{ep['id']}", json={"event_types": ["refund.succeeded"]})
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert (changed["event_types"], changed["url"], changed["description"],
            changed["updated_at"]) == (["refund.succeeded"], BODY["url"], "shop backend",
                                       "2026-01-15T10:05:00Z")
    cleared = client.patch(f"{BASE}/{ep['id']}", json={"description": None, "enabled": False})
    assert (cleared.json()["description"], cleared.json()["enabled"]) == (None, False)
    assert api.get(f"{BASE}/{ep['id']}")["event_types"] == ["refund.succeeded"]
    problem(client.patch(f"{BASE}/{ep['id']}", json={}), 422, "validation_failed")
    problem(client.patch(f"{BASE}/{ep['id']}", json={"url": "mailto:a@b.example"}), 422,
            "validation_failed")
    problem(client.patch(f"{BASE}/{ep['id']}", json={"secret": "x"}), 422, "unknown_field")
    assert api.get(f"{BASE}/{ep['id']}")["url"] == BODY["url"]


def test_delete_disables_and_keeps_the_endpoint(client, api):
    ep = api._created(BASE, BODY)
    for _ in range(2):  # disabling twice is fine
        resp = client.delete(f"{BASE}/{ep['id']}")
        assert resp.status_code == 200 and resp.json()["enabled"] is False
    assert api.get(f"{BASE}/{ep['id']}")["enabled"] is False
    assert [e["id"] for e in api.get(f"{BASE}?enabled=false")["data"]] == [ep["id"]]
    assert api.get(f"{BASE}?enabled=true")["data"] == []


def test_rotate_secret_gives_a_new_secret_once_with_an_overlap(client, api, problem):
    ep = api._created(BASE, BODY)
    resp = client.post(f"{BASE}/{ep['id']}/rotate-secret", json={"overlap_hours": 48})
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["secret"] != ep["secret"] and rotated["secret"].startswith("whsec_")
    assert rotated["secret_hint"] == f"whsec_…{rotated['secret'][-4:]}"
    assert rotated["previous_secret_expires_at"] == "2026-01-17T10:00:00Z"
    shown = client.get(f"{BASE}/{ep['id']}")
    assert rotated["secret"] not in shown.text and ep["secret"] not in shown.text
    default = client.post(f"{BASE}/{ep['id']}/rotate-secret")  # no body: 24 h
    assert default.json()["previous_secret_expires_at"] == "2026-01-16T10:00:00Z"
    problem(client.post(f"{BASE}/{ep['id']}/rotate-secret", json={"overlap_hours": 169}), 422,
            "validation_failed")


# ------------------------------------------------------------------------- delivery log


def test_the_delivery_log_shows_deliveries_with_their_attempts(client, api, engine, clock,
                                                               rx):
    rx.script = [answer(500, b"try later")]
    ep = api._created(BASE, {"url": rx.url, "event_types": ["invoice.*", "payment.*"]})
    cus = api.customer()
    inv = api.invoice(cus["id"], [{"description": "Hat", "quantity": 1,
                                   "unit_price_minor": 2000, "tax_rate": "0.20"}])
    pay = api.pay(inv)
    drain(engine, clock, registry=worker())

    log = api.get(f"{BASE}/{ep['id']}/deliveries")
    assert [d["event_type"] for d in log["data"]] == ["payment.captured", "invoice.created"]
    payment, invoice = log["data"]
    assert (invoice["status"], invoice["attempt_count"], invoice["last_status_code"],
            invoice["next_attempt_at"]) == ("pending", 1, 500, "2026-01-15T10:01:00Z")
    assert [(a["status_code"], a["response_excerpt"]) for a in invoice["attempts"]] == [
        (500, "try later")]
    assert invoice["attempts"][0]["signature"].startswith("t=")
    assert (payment["status"], payment["delivered_at"]) == ("delivered", "2026-01-15T10:00:00Z")
    assert (payment["data"]["id"], invoice["data"]["id"]) == (pay["id"], inv["id"])
    assert {r["headers"]["payback-event-id"] for r in rx.requests} == {
        invoice["event_id"], payment["event_id"]}

    first = api.get(f"{BASE}/{ep['id']}/deliveries?limit=1")
    assert (first["has_more"], first["next_cursor"]) == (True, payment["id"])
    rest = api.get(f"{BASE}/{ep['id']}/deliveries?limit=1&starting_after={payment['id']}")
    assert ([d["id"] for d in rest["data"]], rest["has_more"]) == ([invoice["id"]], False)
    pending = api.get(f"{BASE}/{ep['id']}/deliveries?status=pending")
    assert [d["id"] for d in pending["data"]] == [invoice["id"]]


def test_retry_requeues_a_failed_delivery_only(client, api, engine, clock, rx, problem):
    rx.default = answer(500, b"down")
    ep = api._created(BASE, {"url": rx.url, "event_types": ["*"]})
    api.customer()
    clock.advance(days=4)  # the event is older than the retry window: one attempt, then failed
    drain(engine, clock, registry=worker())
    (failed,) = api.get(f"{BASE}/{ep['id']}/deliveries")["data"]
    assert (failed["status"], failed["attempt_count"]) == ("failed", 1)

    rx.default = answer(200)
    resp = client.post(f"{BASE}/{ep['id']}/deliveries/{failed['id']}/retry")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["next_attempt_at"]) == (
        "pending", "2026-01-19T10:00:00Z")
    problem(client.post(f"{BASE}/{ep['id']}/deliveries/{failed['id']}/retry"), 409, "conflict")
    drain(engine, clock, registry=worker())
    (done,) = api.get(f"{BASE}/{ep['id']}/deliveries")["data"]
    assert (done["status"], done["attempt_count"], len(rx.requests)) == ("delivered", 2, 2)
    problem(client.post(f"{BASE}/{ep['id']}/deliveries/{done['id']}/retry"), 409, "conflict")
    problem(client.post(f"{BASE}/{ep['id']}/deliveries/whd_00000000000000000000000000/retry"),
            404, "not_found")


# ------------------------------------------------------------------ sellers and roles


def test_another_sellers_endpoint_is_404_everywhere(client, api, engine, key_for, client_for,
                                                    problem):
    ep = api._created(BASE, BODY)
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id="sel_b", name="B",
                                             created_at=datetime(2026, 1, 1, tzinfo=UTC)))
    other = client_for(key_for("admin", seller_id="sel_b")[1])
    path = f"{BASE}/{ep['id']}"
    for resp in (other.get(path), other.patch(path, json={"description": "mine"}),
                 other.delete(path), other.post(f"{path}/rotate-secret"),
                 other.get(f"{path}/deliveries"),
                 other.post(f"{path}/deliveries/whd_00000000000000000000000000/retry")):
        assert ep["id"] in problem(resp, 404, "not_found")["detail"]
    assert other.get(BASE).json()["data"] == []
    mine = api.get(path)
    assert (mine["description"], mine["enabled"], mine["secret_hint"]) == (
        "shop backend", True, ep["secret_hint"])


@pytest.mark.parametrize("role", ["agent", "viewer", "approver"])
def test_roles_without_webhook_permissions_are_refused(api, key_for, client_for, problem, role):
    ep = api._created(BASE, BODY)
    who = client_for(key_for(role)[1])
    for resp in (who.post(BASE, json=BODY), who.get(BASE), who.get(f"{BASE}/{ep['id']}"),
                 who.patch(f"{BASE}/{ep['id']}", json={"enabled": False}),
                 who.delete(f"{BASE}/{ep['id']}"),
                 who.post(f"{BASE}/{ep['id']}/rotate-secret"),
                 who.get(f"{BASE}/{ep['id']}/deliveries")):
        assert "webhooks:" in problem(resp, 403, "forbidden")["detail"]
    assert api.get(f"{BASE}/{ep['id']}")["enabled"] is True


def test_an_auditor_reads_but_does_not_write(api, key_for, client_for, problem):
    ep = api._created(BASE, BODY)
    auditor = client_for(key_for("auditor")[1])
    assert [e["id"] for e in auditor.get(BASE).json()["data"]] == [ep["id"]]
    assert auditor.get(f"{BASE}/{ep['id']}/deliveries").json()["data"] == []
    problem(auditor.post(BASE, json=BODY), 403, "forbidden")
    problem(auditor.post(f"{BASE}/{ep['id']}/rotate-secret"), 403, "forbidden")
