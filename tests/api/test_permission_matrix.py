"""The function-level authorization matrix, GENERATED from the app's route table (reliability
test 21), on SQLite and PostgreSQL.

For every /v1 route of ``create_app(...)`` (walked at collection time, so a new route joins the
matrix by itself):
- it has an entry in ``ROUTE_PERMISSIONS`` (a new route without one fails here; the app would
  refuse it to everyone anyway);
- without credentials it answers 401 (so the route really depends on ``current_principal``);
- for an API key of every role, and for an admin key narrowed to one scope, the answer is 403
  ``forbidden`` exactly when the declared permission is not the principal's. Ids are well formed
  and bodies empty, so an allowed call ends in 404, 422, 409 or success — anything but 401, 403
  and 5xx — which shows authorization passed.

And the other way round: every entry of ``ROUTE_PERMISSIONS`` is a route of the app, or one listed
in ``AWAITING`` (declared ahead of the code that serves it), so a stale or misspelt entry shows.
"""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute

from payback.access.domain import AUTHENTICATED, ROLES, ROUTE_PERMISSIONS, Principal, allowed
from payback.api.app import create_app
from payback.settings import Settings

#: Routes declared in the table whose handlers are not in the app yet (none today).
AWAITING: frozenset = frozenset()
#: The narrow principal of the matrix: an admin key that may only read refunds.
NARROW = frozenset({"refunds:read"})
_PARAM = re.compile(r"\{([^}:]+)(:[^}]*)?\}")


def app_routes(app) -> set[tuple[str, str]]:
    """(method, full path template) of every route the app serves. FastAPI ≥ 0.13x keeps
    included routers as branches (``effective_route_contexts``) instead of copying their routes;
    the OpenAPI document is a cross-check that the walk missed nothing it lists."""
    found: set[tuple[str, str]] = set()
    for route in app.routes:
        if isinstance(route, APIRoute):
            found |= {(m, route.path) for m in route.methods}
        elif hasattr(route, "effective_route_contexts"):
            for ctx in route.effective_route_contexts():
                found |= {(m, ctx.path_format) for m in ctx.methods}
    documented = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    assert documented <= found, f"the route walk missed {sorted(documented - found)}"
    return found


def _app_for_collection():
    return create_app(Settings(database_url="sqlite://"))


V1_ROUTES = sorted(r for r in app_routes(_app_for_collection()) if r[1].startswith("/v1/"))
ROUTE_IDS = [f"{m} {p}" for m, p in V1_ROUTES]


def concrete(path: str) -> str:
    """A path with well-formed placeholder values: ids that exist nowhere, a real currency."""
    def value(match: re.Match) -> str:
        name = match.group(1)
        if name == "currency":
            return "EUR"
        return f"{name.removesuffix('_id')[:3]}_{'0' * 26}" if name.endswith("_id") else "x"
    return _PARAM.sub(value, path)


def call(client, method: str, path: str):
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, concrete(path), json=body)


def test_the_app_has_v1_routes_and_the_access_routes():
    assert len(V1_ROUTES) >= 25
    assert ("POST", "/v1/invoices/{invoice_id}/refunds") in V1_ROUTES
    assert ("GET", "/v1/me") in V1_ROUTES


def test_every_route_of_the_app_declares_its_permission():
    undeclared = [r for r in V1_ROUTES if r not in ROUTE_PERMISSIONS]
    assert not undeclared, ("routes without an entry in access.domain.ROUTE_PERMISSIONS "
                            f"(refused to everyone until declared): {undeclared}")


def test_every_declared_route_exists_or_is_awaited():
    served = set(V1_ROUTES)
    stale = sorted(set(ROUTE_PERMISSIONS) - served - AWAITING)
    assert not stale, f"ROUTE_PERMISSIONS names routes the app does not serve: {stale}"
    # An awaited route that arrived needs nothing here: it is in the matrix from now on (its
    # entry in AWAITING is merely stale and may be removed).


@pytest.fixture
def principals(key_for) -> dict[str, tuple[Principal, str]]:
    """An API key per role, plus an admin key narrowed to ``NARROW``: name → (principal, token)."""
    out = {}
    for role in ROLES:
        key, token = key_for(role)
        out[role] = (Principal(key["id"], "api_key", key["seller_id"], role, key["name"]), token)
    key, token = key_for("admin", scopes=sorted(NARROW))
    out["admin scoped to refunds:read"] = (
        Principal(key["id"], "api_key", key["seller_id"], "admin", key["name"], NARROW), token)
    return out


@pytest.mark.parametrize("method, path", V1_ROUTES, ids=ROUTE_IDS)
def test_route_needs_credentials(anon, method, path, problem):
    resp = call(anon, method, path)
    problem(resp, 401, "unauthenticated")
    assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("method, path", V1_ROUTES, ids=ROUTE_IDS)
def test_route_admits_exactly_the_declared_roles(principals, client_for, method, path):
    permission = ROUTE_PERMISSIONS.get((method, path))
    assert permission is not None, f"{method} {path} is not in ROUTE_PERMISSIONS"
    wrong = []
    for name, (principal, token) in principals.items():
        resp = call(client_for(token), method, path)
        expected_allowed = allowed(principal, permission)
        if expected_allowed:
            ok = resp.status_code not in (401, 403) and resp.status_code < 500
        else:
            ok = resp.status_code == 403 and resp.json().get("code") == "forbidden"
        if not ok:
            wrong.append(f"{name}: expected {'allowed' if expected_allowed else '403'}, got "
                         f"{resp.status_code} {resp.text[:200]}")
    assert not wrong, f"{method} {path} needs {permission}:\n" + "\n".join(wrong)
    if permission == AUTHENTICATED:
        assert all(allowed(p, permission) for p, _ in principals.values())


# ------------------------------------------------------------- BOLA (reliability test 20)

#: Path parameters that name an object of a seller, and the key of ``seller_a_world`` with one.
OBJECT_PARAMS = {"customer_id": "customer", "invoice_id": "invoice", "payment_id": "payment",
                 "refund_id": "refund", "key_id": "key", "credit_note_id": "credit_note",
                 "lot_id": "lot", "endpoint_id": "webhook_endpoint",
                 "delivery_id": "webhook_delivery"}
#: Path parameters that are not objects of a seller (the same for everyone).
SHARED_PARAMS = {"currency", "preset_id"}
#: A valid body for each POST route on an object, so that the object lookup really runs (an
#: invalid body would stop at 422 before it).
VALID_BODIES = {
    "/v1/invoices/{invoice_id}/void": None,
    "/v1/invoices/{invoice_id}/payments": {"method": "cash", "amount_minor": 100,
                                           "currency": "EUR"},
    "/v1/invoices/{invoice_id}/refunds/preview": {"kind": "amount", "amount_minor": 100,
                                                  "reason": "goodwill"},
    "/v1/invoices/{invoice_id}/refunds": {"kind": "amount", "amount_minor": 100,
                                          "reason": "goodwill"},
    "/v1/refunds/{refund_id}/approve": {"comment": "fine"},
    "/v1/refunds/{refund_id}/reject": {"comment": "no"},
    "/v1/refunds/{refund_id}/cancel": {"comment": "stop"},
    "/v1/refunds/{refund_id}/fallback": {"method": "store_credit"},
    "/v1/api-keys/{key_id}/revoke": None,
    "/v1/invoices/{invoice_id}/credit-notes": {
        "reason": "billing_error",
        "lines": [{"invoice_line_id": "il_00000000000000000000000000", "amount_minor": 100}]},
    "/v1/credit-notes/{credit_note_id}/void": {"reason": "billing_error"},
    "/v1/customers/{customer_id}/store-credit/grants": {
        "kind": "goodwill", "amount_minor": 100, "currency": "EUR", "memo": "sorry"},
    "/v1/store-credit/lots/{lot_id}/revoke": {"reason": "abuse"},
    "/v1/webhook-endpoints/{endpoint_id}": {"description": "changed"},  # the PATCH
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {"overlap_hours": 0},
    "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry": None,
}
OBJECT_ROUTES = [r for r in V1_ROUTES if set(_PARAM.findall(r[1])) and
                 {m[0] for m in _PARAM.findall(r[1])} & set(OBJECT_PARAMS)]
LIST_ROUTES = [r for r in V1_ROUTES if r[0] == "GET" and not _PARAM.search(r[1])]
MISSING = "{}_00000000000000000000000000"


@pytest.fixture
def seller_a_world(api, client, paid_invoice, engine, clock) -> dict[str, str]:
    """Objects of the default seller (A): customer, invoice, payment, a refund to store credit
    (so the customer has a EUR wallet) with its credit note, the admin key of ``client``, and a
    webhook endpoint with a delivery of that refund (fanned out, never sent)."""
    from payback.outbox.fanout import Subscribers
    from payback.outbox.worker import Registry, drain
    from payback.webhooks.delivery import fan_out

    inv = paid_invoice["invoice"]
    endpoint = api._created("/v1/webhook-endpoints", {"url": "https://shop.example/hooks",
                                                      "event_types": ["refund.*"]})
    refund = api.refund(inv["id"], {"kind": "amount", "amount_minor": 1000, "reason": "goodwill",
                                    "method": "store_credit", "consent_to_other_method": True})
    subscribers, registry = Subscribers(), Registry()
    subscribers.subscribe("*", fan_out)
    registry.register("*", subscribers)  # no webhook.deliver handler: nothing is sent
    drain(engine, clock, registry=registry)
    deliveries = client.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries").json()
    return {"customer": paid_invoice["customer"]["id"], "invoice": inv["id"],
            "payment": paid_invoice["payment"]["id"], "refund": refund["id"],
            "key": client.get("/v1/me").json()["id"],
            "credit_note": client.get("/v1/credit-notes").json()["data"][0]["id"],
            "lot": client.get(f"/v1/customers/{paid_invoice['customer']['id']}/store-credit/EUR")
            .json()["lots"][0]["id"],
            "webhook_endpoint": endpoint["id"], "webhook_delivery": deliveries["data"][0]["id"]}


@pytest.fixture
def seller_b(engine, key_for, client_for):
    from datetime import datetime, timezone

    from payback import db
    from payback.access.tables import sellers

    with db.write(engine) as conn:
        conn.execute(sellers.insert().values(id="sel_b", name="Seller B",
                                             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    return client_for(key_for("admin", seller_id="sel_b")[1])


def test_every_object_route_is_classified():
    params = {p for _, path in V1_ROUTES for p, _ in _PARAM.findall(path)}
    assert not params - set(OBJECT_PARAMS) - SHARED_PARAMS, (
        "classify these path parameters in OBJECT_PARAMS or SHARED_PARAMS")
    posts = {path for method, path in OBJECT_ROUTES if method == "POST"}
    assert not posts - set(VALID_BODIES), "give these POST routes a valid body in VALID_BODIES"


def test_another_sellers_ids_look_exactly_like_missing_ones(seller_a_world, seller_b, engine,
                                                            snapshot):
    """Seller B's admin key, with seller A's real ids and with ids that exist nowhere: the same
    status (403 or 404) and the same body but for the id, on every route that takes an object
    id; and nothing changes."""
    before = snapshot(engine, include_idempotency=True)
    wrong = []
    for method, path in OBJECT_ROUTES:
        names = [p for p, _ in _PARAM.findall(path)]

        def fill(objects: dict[str, str]) -> str:
            return _PARAM.sub(lambda m: objects.get(m.group(1), "EUR"), path)
        theirs = {n: seller_a_world[OBJECT_PARAMS[n]] for n in names if n in OBJECT_PARAMS}
        missing = {n: MISSING.format(v.split("_")[0]) for n, v in theirs.items()}
        body = VALID_BODIES.get(path) if method in ("POST", "PATCH") else None
        got = seller_b.request(method, fill(theirs), json=body)
        ref = seller_b.request(method, fill(missing), json=body)
        text = got.text
        for n in theirs:
            text = text.replace(theirs[n], missing[n])
        if got.status_code not in (403, 404) or (got.status_code, text) != (ref.status_code,
                                                                            ref.text):
            wrong.append(f"{method} {path}: theirs {got.status_code} {got.text[:160]} | "
                         f"missing {ref.status_code} {ref.text[:160]}")
    assert not wrong, "\n".join(wrong)
    assert snapshot(engine, include_idempotency=True) == before


def test_lists_never_show_another_sellers_objects(seller_a_world, seller_b):
    """Every list of seller B, even filtered by seller A's ids, holds none of them."""
    filters = {"invoice_id": seller_a_world["invoice"], "customer_id": seller_a_world["customer"],
               "object_id": seller_a_world["invoice"], "from": "2026-01-01", "to": "2027-01-01"}
    leaks = []
    for _, path in LIST_ROUTES:
        resp = seller_b.get(path, params=filters)
        assert resp.status_code < 500, (path, resp.text)
        found = [v for v in seller_a_world.values() if v in resp.text]
        if found:
            leaks.append(f"{path}: {found}")
    assert not leaks, leaks
    # and no amounts: seller B's books are empty although seller A's are not
    assert seller_b.get("/v1/ledger/trial-balance").json()["totals"] == []
    revenue = seller_b.get("/v1/reports/revenue", params=filters).json()
    assert all(not period["currencies"] for period in revenue["periods"]), revenue


# ---------------------------------------------------- mass assignment (reliability test 22)


_SPEC = _app_for_collection().openapi()
BODY_ROUTES = [(m, p) for m, p in V1_ROUTES if m in ("POST", "PUT", "PATCH")
               and "requestBody" in _SPEC["paths"][p][m.lower()]]
FORBIDDEN_FIELDS = {"seller_id": "sel_b", "tenant_id": "sel_b", "status": "succeeded",
                    "approved_by": "usr_boss", "created_at": "2020-01-01T00:00:00Z",
                    "amount_refunded_minor": 0, "fee_minor": 0, "role": None}


@pytest.mark.parametrize("method, path", BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_request_bodies_refuse_fields_they_do_not_declare(client, method, path, engine,
                                                          snapshot):
    """Mass assignment: every JSON body model refuses fields it does not declare (422
    ``unknown_field``), whatever the route, and nothing is written."""
    before = snapshot(engine, include_idempotency=True)
    spec = client.get("/openapi.json").json()["paths"][path][method.lower()]
    schema_ref = spec["requestBody"]["content"]["application/json"]["schema"].get("$ref", "")
    declared = set(client.get("/openapi.json").json()["components"]["schemas"]
                   .get(schema_ref.rsplit("/", 1)[-1], {}).get("properties", {}))
    extra = {k: v for k, v in FORBIDDEN_FIELDS.items() if k not in declared}
    resp = client.request(method, concrete(path), json=extra)
    assert resp.status_code == 422, resp.text
    codes = {e["code"] for e in resp.json().get("errors", [])}
    assert "unknown_field" in codes, resp.text
    assert snapshot(engine, include_idempotency=True) == before
