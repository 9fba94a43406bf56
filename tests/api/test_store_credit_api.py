"""The store-credit HTTP contract, on SQLite and PostgreSQL:

- ``POST /v1/customers/{id}/store-credit/grants``: goodwill/promotional credit, 201 with the lot,
  booked Dr 6300 / Cr 2300; agents may, viewers and auditors may not (403); bad bodies (refund
  kind, zero amount, naive or past expiry, unknown fields) are 422 and write nothing; an
  Idempotency-Key replay grants once; another seller's customer is 404;
- the wallet (``/store-credit/{currency}``) shows its lots and each transaction's lot;
- ``POST /v1/store-credit/lots/{id}/revoke``: goodwill 200 and the cost reversed; refund credit
  409 ``store_credit_not_revocable`` with nothing written; another seller's lot 404;
- ``GET .../store-credit/{currency}/statement?from&to``: opening, running and closing balances;
  a reversed period is 422.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import func, select

from payback import db
from payback.access.tables import sellers
from payback.store_credit.tables import lots

SHIRT = {"description": "Shirt", "quantity": 1, "unit_price_minor": 5000, "tax_rate": "0.20"}


def grant_body(**extra) -> dict:
    return {"kind": "goodwill", "amount_minor": 1500, "currency": "EUR",
            "memo": "late delivery", **extra}


def grants_url(customer_id: str) -> str:
    return f"/v1/customers/{customer_id}/store-credit/grants"


def lot_count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(lots)).scalar_one()


def accounts(api) -> dict[str, int]:
    """Balances (on each account's normal side) of the EUR trial balance, which must balance."""
    tb = api.get("/v1/ledger/trial-balance?currency=EUR")
    assert tb["totals"][0]["balanced"]
    return {a["account_code"]: a["balance_minor"] for a in tb["accounts"]
            if a["currency"] == "EUR"}


def test_grant_returns_the_lot_and_books_a_cost(client, api):
    cus = api.customer()
    lot = api._created(grants_url(cus["id"]), grant_body(
        kind="promotional", expires_at="2026-03-01T00:00:00Z"))
    assert (lot["kind"], lot["amount_minor"], lot["remaining_minor"], lot["currency"],
            lot["customer_id"], lot["expires_at"], lot["closed_at"]) == (
        "promotional", 1500, 1500, "EUR", cus["id"], "2026-03-01T00:00:00Z", None)
    wallet = api.get(f"/v1/customers/{cus['id']}/store-credit/EUR")
    assert wallet["balance_minor"] == 1500
    assert [(t["kind"], t["amount_minor"], t["lot_id"], t["memo"])
            for t in wallet["transactions"]] == [("promotional", 1500, lot["id"], "late delivery")]
    assert [x["id"] for x in wallet["lots"]] == [lot["id"]]
    acc = accounts(api)
    assert (acc["6300"], acc["2300"]) == (1500, 1500)


def test_agents_may_grant_viewers_and_auditors_may_not(client, api, key_for, client_for,
                                                       problem, engine):
    cus = api.customer()
    for role in ("viewer", "auditor"):
        problem(client_for(key_for(role)[1]).post(grants_url(cus["id"]), json=grant_body()),
                403, "forbidden")
    assert lot_count(engine) == 0
    resp = client_for(key_for("agent")[1]).post(grants_url(cus["id"]), json=grant_body())
    assert resp.status_code == 201 and resp.json()["amount_minor"] == 1500


def test_bad_grants_are_422_and_write_nothing(client, api, engine, snapshot, problem):
    cus = api.customer()
    before = snapshot(engine)
    for body, code in ((grant_body(kind="refund"), "validation_failed"),
                       (grant_body(amount_minor=0), "invalid_amount"),
                       (grant_body(amount_minor="15.00"), "invalid_amount"),
                       (grant_body(expires_at="2027-01-01T00:00:00"), "validation_failed"),
                       (grant_body(expires_at="2026-01-15T09:59:59Z"), "validation_failed"),
                       (grant_body(memo=""), "validation_failed"),
                       (grant_body(seller_id="sel_other"), "unknown_field"),
                       ({"kind": "goodwill", "amount_minor": 100, "currency": "EUR"},
                        "missing_field")):
        problem(client.post(grants_url(cus["id"]), json=body), 422, code)
    assert snapshot(engine) == before and lot_count(engine) == 0


def test_a_replayed_grant_grants_once(client, api, engine):
    cus = api.customer()
    first = api._created(grants_url(cus["id"]), grant_body(), key="grant-1")
    again = api._created(grants_url(cus["id"]), grant_body(), key="grant-1")
    assert again == first
    assert lot_count(engine) == 1
    assert api.get(f"/v1/customers/{cus['id']}/store-credit/EUR")["balance_minor"] == 1500


def test_another_sellers_customer_and_lot_look_missing(client, api, engine, key_for, client_for,
                                                       problem):
    cus = api.customer()
    lot = api._created(grants_url(cus["id"]), grant_body())
    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id="sel_b", name="Seller B",
                                             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    other = client_for(key_for("admin", seller_id="sel_b")[1])
    problem(other.post(grants_url(cus["id"]), json=grant_body()), 404, "not_found")
    problem(other.post(f"/v1/store-credit/lots/{lot['id']}/revoke", json={"reason": "x"}),
            404, "not_found")
    problem(other.get(f"/v1/customers/{cus['id']}/store-credit/EUR/statement"), 404, "not_found")
    assert lot_count(engine) == 1


def test_revoke_goodwill_but_not_refund_credit(client, api, paid_invoice, engine, snapshot,
                                               problem):
    cus, inv = paid_invoice["customer"], paid_invoice["invoice"]
    api.refund(inv["id"], {"kind": "full", "method": "store_credit", "reason": "goodwill",
                           "consent_to_other_method": True})
    goodwill = api._created(grants_url(cus["id"]), grant_body(amount_minor=2000))
    wallet = api.get(f"/v1/customers/{cus['id']}/store-credit/EUR")
    refund_lot = next(x for x in wallet["lots"] if x["kind"] == "refund")
    assert (refund_lot["amount_minor"], wallet["balance_minor"]) == (14280, 16280)

    before = snapshot(engine)
    body = problem(client.post(f"/v1/store-credit/lots/{refund_lot['id']}/revoke",
                               json={"reason": "changed our mind"}),
                   409, "store_credit_not_revocable")
    assert "customer's money" in body["detail"]
    assert snapshot(engine) == before

    resp = client.post(f"/v1/store-credit/lots/{goodwill['id']}/revoke",
                       json={"reason": "granted twice"})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["remaining_minor"], resp.json()["closed_at"]) == (
        0, "2026-01-15T10:00:00Z")
    wallet = api.get(f"/v1/customers/{cus['id']}/store-credit/EUR")
    assert wallet["balance_minor"] == 14280
    assert wallet["transactions"][-1]["kind"] == "revocation"
    assert wallet["transactions"][-1]["amount_minor"] == -2000
    acc = accounts(api)
    assert (acc.get("6300", 0), acc["2300"]) == (0, 14280)
    problem(client.post(f"/v1/store-credit/lots/{goodwill['id']}/revoke",
                        json={"reason": "again"}), 409, "store_credit_nothing_left")
    problem(client.post(f"/v1/store-credit/lots/{goodwill['id']}/revoke", json={}),
            422, "missing_field")


def test_statement_over_a_period(client, api, clock, problem):
    cus = api.customer()
    api._created(grants_url(cus["id"]), grant_body(amount_minor=5000))          # 15 Jan
    clock.advance(days=20)
    inv = api.invoice(cus["id"], [SHIRT])                                       # 60.00 incl. tax
    assert inv["total_minor"] == 6000
    api.pay(inv, 2500, method="store_credit")                                   # 4 Feb
    clock.advance(days=1)
    api._created(grants_url(cus["id"]), grant_body(kind="promotional", amount_minor=700))
    url = f"/v1/customers/{cus['id']}/store-credit/EUR/statement"
    feb = api.get(url + "?from=2026-02-01&to=2026-02-05")
    assert (feb["from"], feb["to"]) == ("2026-02-01T00:00:00Z", "2026-02-05T00:00:00Z")
    assert (feb["opening_balance_minor"], feb["closing_balance_minor"]) == (5000, 2500)
    assert [(t["kind"], t["amount_minor"], t["balance_minor"], t["lot_kind"])
            for t in feb["transactions"]] == [("spend", -2500, 2500, "goodwill")]
    whole = api.get(url)
    assert [(t["kind"], t["balance_minor"]) for t in whole["transactions"]] == [
        ("goodwill", 5000), ("spend", 2500), ("promotional", 3200)]
    assert (whole["opening_balance_minor"], whole["closing_balance_minor"],
            whole["from"]) == (0, 3200, None)
    assert whole["totals_by_kind"] == {"goodwill": 5000, "promotional": 700, "spend": -2500}
    problem(client.get(url + "?from=2026-02-05&to=2026-02-01"), 422, "validation_failed")
    problem(client.get(f"/v1/customers/{cus['id']}/store-credit/USD/statement"),
            404, "not_found")
