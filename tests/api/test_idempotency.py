"""Idempotency-Key contract (reliability tests 1-3 of reference/reliability-tests.md, Part 4).

- same key + same body, ten times: one refund, one set of journal entries, ten byte-identical
  responses with the same status, and nothing at all written by the nine replays;
- same key + another body (or another endpoint): 422 ``idempotency_key_reused``, nothing written,
  and the original stored response still replays unchanged;
- a refused request (409 over-refund) is stored and replayed as the same 409, even after the
  state has changed so that re-running it would now succeed;
- a body refused by request validation is not stored: the same key may be retried with a fixed
  body;
- concurrent duplicates released by a barrier: exactly one refund; every other response is the
  replayed 201 or a 409 ``idempotency_in_flight``;
- keys longer than 255 characters are refused with a 422 problem (255 is accepted).
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from payback.ledger.tables import journal_entries
from payback.refunds.tables import refunds

PARTIAL = {"kind": "amount", "amount_minor": 2500, "reason": "requested_by_customer"}


def _refund_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(refunds)).scalar_one()


def _entries_for(engine, object_id: str) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(journal_entries)
                            .where(journal_entries.c.object_id == object_id)).scalar_one()


def test_same_key_same_body_ten_times_executes_once(client, engine, paid_invoice, snapshot):
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    headers = {"Idempotency-Key": "refund-seq-1"}
    first = client.post(url, json=PARTIAL, headers=headers)
    assert first.status_code == 201, first.text
    refund = first.json()
    assert refund["amount_minor"] == 2500 and refund["status"] == "succeeded"
    after_first = snapshot(engine, include_idempotency=True)
    entries = _entries_for(engine, refund["id"])
    assert entries >= 1

    replies = [client.post(url, json=PARTIAL, headers=headers) for _ in range(9)]

    assert {r.status_code for r in replies} == {201}
    assert all(r.content == first.content for r in replies)
    assert all(r.headers["content-type"] == first.headers["content-type"] for r in replies)
    assert _refund_count(engine) == 1
    assert _entries_for(engine, refund["id"]) == entries
    # The nine replays wrote nothing anywhere, not even to the key store.
    assert snapshot(engine, include_idempotency=True) == after_first
    inv = client.get(f"/v1/invoices/{paid_invoice['invoice']['id']}").json()
    assert inv["amount_refunded_minor"] == 2500
    assert inv["amount_refundable_minor"] == 14280 - 2500


def test_same_key_other_body_is_422_and_writes_nothing(client, engine, paid_invoice, snapshot,
                                                       problem):
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    headers = {"Idempotency-Key": "refund-reuse-1"}
    first = client.post(url, json=PARTIAL, headers=headers)
    assert first.status_code == 201, first.text
    before = snapshot(engine, include_idempotency=True)

    for other in ({**PARTIAL, "amount_minor": 2600}, {**PARTIAL, "currency": "EUR"},
                  {**PARTIAL, "method": "store_credit"}):
        problem(client.post(url, json=other, headers=headers), 422, "idempotency_key_reused")

    assert snapshot(engine, include_idempotency=True) == before
    replay = client.post(url, json=PARTIAL, headers=headers)
    assert replay.status_code == 201 and replay.content == first.content
    assert _refund_count(engine) == 1


def test_same_key_on_another_endpoint_is_422(client, engine, snapshot, problem):
    headers = {"Idempotency-Key": "shared-key"}
    first = client.post("/v1/customers", json={"name": "Grace"}, headers=headers)
    assert first.status_code == 201
    before = snapshot(engine, include_idempotency=True)
    resp = client.post("/v1/invoices", headers=headers, json={
        "customer_id": first.json()["id"], "currency": "EUR",
        "lines": [{"description": "x", "quantity": 1, "unit_price_minor": 100, "tax_rate": "0"}]})
    problem(resp, 422, "idempotency_key_reused")
    assert snapshot(engine, include_idempotency=True) == before


def test_refused_request_replays_the_same_409(client, api, engine, snapshot, problem):
    cus = api.customer()
    inv = api.invoice(cus["id"], [{"description": "Lamp", "quantity": 1,
                                   "unit_price_minor": 10000, "tax_rate": "0"}])
    api.pay(inv, 5000)
    url = f"/v1/invoices/{inv['id']}/refunds"
    body = {"kind": "amount", "amount_minor": 8000, "reason": "goodwill"}
    headers = {"Idempotency-Key": "over-refund-1"}
    first = client.post(url, json=body, headers=headers)
    err = problem(first, 409, "amount_exceeds_refundable")
    assert err["refundable_minor"] == 5000 and err["requested_minor"] == 8000

    again = client.post(url, json=body, headers=headers)
    assert again.status_code == 409 and again.content == first.content
    assert again.headers["content-type"].startswith("application/problem+json")

    # Once the rest is paid, 80.00 is refundable, yet the key still replays the stored refusal:
    # the request was executed once and its outcome is final.
    api.pay(inv, 5000)
    later = client.post(url, json=body, headers=headers)
    assert later.status_code == 409 and later.content == first.content
    assert _refund_count(engine) == 0
    # A new key runs it for real.
    assert api.refund(inv["id"], body, key="over-refund-2")["amount_minor"] == 8000


def test_validation_failure_is_not_stored_and_key_can_be_retried(client, paid_invoice, engine,
                                                                 snapshot, problem):
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    headers = {"Idempotency-Key": "fix-and-retry"}
    before = snapshot(engine, include_idempotency=True)
    problem(client.post(url, json={**PARTIAL, "amount_minor": "25.00"}, headers=headers),
            422, "invalid_amount")
    assert snapshot(engine, include_idempotency=True) == before
    ok = client.post(url, json=PARTIAL, headers=headers)
    assert ok.status_code == 201 and ok.json()["amount_minor"] == 2500


def test_concurrent_duplicates_execute_once(app, make_client, engine, paid_invoice, problem):
    n = 12
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    headers = {"Idempotency-Key": "refund-burst-1"}
    barrier = threading.Barrier(n)
    responses: list = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            c = make_client()  # one TestClient per thread over the same app
            barrier.wait(timeout=30)
            responses[i] = c.post(url, json=PARTIAL, headers=headers)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    created = [r for r in responses if r.status_code == 201]
    in_flight = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_flight) == n, [r.text for r in responses]
    assert created, "at least the executing request must answer 201"
    assert len({r.content for r in created}) == 1  # the one execution, replayed byte for byte
    for r in in_flight:
        problem(r, 409, "idempotency_in_flight")
    assert _refund_count(engine) == 1
    refund_id = created[0].json()["id"]
    assert created[0].json()["amount_minor"] == 2500
    # After the burst the key replays the stored 201 for everyone.
    final = make_client().post(url, json=PARTIAL, headers=headers)
    assert final.status_code == 201 and final.json()["id"] == refund_id
    inv = make_client().get(f"/v1/invoices/{paid_invoice['invoice']['id']}").json()
    assert inv["amount_refunded_minor"] == 2500


def test_key_longer_than_255_is_refused(client, paid_invoice, engine, snapshot, problem):
    url = f"/v1/invoices/{paid_invoice['invoice']['id']}/refunds"
    before = snapshot(engine, include_idempotency=True)
    body = problem(client.post(url, json=PARTIAL, headers={"Idempotency-Key": "k" * 256}),
                   422, "validation_failed")
    assert "Idempotency-Key" in body["detail"]
    assert snapshot(engine, include_idempotency=True) == before
    ok = client.post(url, json=PARTIAL, headers={"Idempotency-Key": "k" * 255})
    assert ok.status_code == 201, ok.text


def test_a_key_is_forgotten_after_the_retention_window(client, api, engine, clock):
    """Past ``PAYBACK_IDEMPOTENCY_RETENTION_HOURS`` (24 by default) a key is pruned, as Stripe
    does: the same key then runs the request afresh instead of replaying."""
    cus = api.customer()
    inv = api.invoice(cus["id"], [{"description": "Lamp", "quantity": 1,
                                   "unit_price_minor": 10000, "tax_rate": "0"}])
    api.pay(inv, 10000)
    url, headers = f"/v1/invoices/{inv['id']}/refunds", {"Idempotency-Key": "daily-1"}
    first = client.post(url, json=PARTIAL, headers=headers)
    clock.advance(hours=23, minutes=59)
    assert client.post(url, json=PARTIAL, headers=headers).content == first.content
    assert _refund_count(engine) == 1
    clock.advance(minutes=2)
    later = client.post(url, json=PARTIAL, headers=headers)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert _refund_count(engine) == 2
