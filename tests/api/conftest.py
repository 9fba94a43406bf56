"""Fixtures for the HTTP contract tests: an app and a ``TestClient`` on each database, helpers that
create customers, invoices, payments and refunds through the API, and ``snapshot`` so a test can
assert that a refused request left the database exactly as it was.

Every fixture here builds on the root ``engine`` fixture, so each API test runs on SQLite and on
PostgreSQL. ``client`` authenticates as an admin API key of the default seller (``admin_token``);
``anon`` sends no credentials; ``new_key`` makes keys of other roles, scopes and sellers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, select

from payback import db
from payback.access.service import create_key
from payback.access.tables import DEFAULT_SELLER_ID
from payback.api.app import create_app
from payback.api.problems import PROBLEM_TYPE_BASE
from payback.db.schema import metadata
from payback.settings import Settings

with warnings.catch_warnings():
    # Starlette nags about its httpx-based TestClient; the client itself works as documented.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

#: The business tables a refused request must not touch (plus the invoice number series, whose
#: gaplessness also depends on refused requests writing nothing).
BUSINESS_TABLES = (
    "customers", "invoices", "invoice_lines", "payments", "refunds", "refund_lines",
    "refund_tenders", "store_credit_wallets", "store_credit_transactions", "journal_entries",
    "postings", "outbox_events", "number_series",
)
PROBLEM_FIELDS = ("type", "title", "status", "code", "detail")
PROBLEM_TYPE = "application/problem+json"


def take_snapshot(engine: Engine, *, include_idempotency: bool = False) -> dict[str, list]:
    """Full contents of every business table, each as a sorted list of rows."""
    names = BUSINESS_TABLES + (("idempotency_keys",) if include_idempotency else ())
    out: dict[str, list] = {}
    with engine.connect() as conn:
        for name in names:
            rows = conn.execute(select(metadata.tables[name])).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def row_counts(snap: dict[str, list]) -> dict[str, int]:
    return {name: len(rows) for name, rows in snap.items()}


def expect_problem(resp, status: int, code: str) -> dict:
    """Assert an RFC 9457 problem with this status and code; return its body."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].split(";")[0] == PROBLEM_TYPE, resp.headers
    body = resp.json()
    missing = [f for f in PROBLEM_FIELDS if f not in body]
    assert not missing, f"problem body lacks {missing}: {body}"
    assert body["status"] == status and body["code"] == code, body
    assert body["type"] == PROBLEM_TYPE_BASE + code, body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


class Api:
    """Thin helpers over the client: each asserts the request succeeded and returns the JSON."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def _created(self, path: str, body: dict, key: str | None = None,
                 status: int = 201) -> dict:
        headers = {"Idempotency-Key": key} if key else {}
        resp = self.client.post(path, json=body, headers=headers)
        assert resp.status_code == status, resp.text
        return resp.json()

    def customer(self, name: str = "Ada Lovelace", **extra: Any) -> dict:
        return self._created("/v1/customers", {"name": name, **extra})

    def invoice(self, customer_id: str, lines: list[dict], *, currency: str = "EUR",
                **extra: Any) -> dict:
        return self._created("/v1/invoices", {"customer_id": customer_id, "currency": currency,
                                              "lines": lines, **extra})

    def pay(self, invoice: dict, amount_minor: int | None = None, *, method: str = "card",
            **extra: Any) -> dict:
        body = {"method": method, "currency": invoice["currency"],
                "amount_minor": invoice["total_minor"] if amount_minor is None else amount_minor,
                **extra}
        if method == "card" and "card" not in extra:
            body["card"] = {"token": "tok_visa_test", "brand": "visa", "last4": "4242"}
        return self._created(f"/v1/invoices/{invoice['id']}/payments", body)

    def refund(self, invoice_id: str, body: dict, key: str | None = None) -> dict:
        return self._created(f"/v1/invoices/{invoice_id}/refunds", body, key)

    def get(self, path: str) -> dict:
        resp = self.client.get(path)
        assert resp.status_code == 200, resp.text
        return resp.json()


def build_app(settings: Settings, engine, clock):
    """The application under test, on the test's engine and fixed clock."""
    return create_app(settings, engine=engine, clock=clock)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def new_key(engine, clock, role: str = "admin", *, seller_id: str = DEFAULT_SELLER_ID,
            **kwargs: Any) -> tuple[dict, str]:
    """An API key created through the service: (key, token)."""
    with db.write(engine) as conn:
        return create_key(conn, clock, seller_id=seller_id, name=f"test {role}", role=role,
                          **kwargs)


@pytest.fixture
def app(engine, db_url, clock):
    """The FastAPI app on this test's database, with the fixed clock."""
    return build_app(Settings(database_url=db_url), engine, clock)


@pytest.fixture
def admin_token(engine, clock) -> str:
    """The token of an admin API key of the default seller (what ``client`` sends)."""
    return new_key(engine, clock, "admin")[1]


@pytest.fixture
def client(app, admin_token):
    """A client authenticated as an admin API key of the default seller."""
    with TestClient(app, headers=bearer(admin_token)) as c:
        yield c


@pytest.fixture
def anon(app):
    """A client that sends no credentials."""
    with TestClient(app) as c:
        yield c


@pytest.fixture
def make_client(app, admin_token) -> Callable[..., TestClient]:
    """A factory of extra clients over the same app (one per thread: a TestClient is not
    thread-safe); ``make_client(token)`` authenticates with another token."""
    return lambda token=admin_token: TestClient(app, headers=bearer(token))


@pytest.fixture
def key_for(engine, clock) -> Callable[..., tuple[dict, str]]:
    """``key_for(role, seller_id=…, scopes=…, expires_at=…)`` → (key, token), via the service."""
    return lambda role="admin", **kwargs: new_key(engine, clock, role, **kwargs)


@pytest.fixture
def client_for(app) -> Callable[..., TestClient]:
    """``client_for(token, app=None)``: a client that sends this API key (to this test's app, or
    to another built with ``app_with``)."""
    return lambda token, other=None: TestClient(other or app, headers=bearer(token))


@pytest.fixture
def app_with(engine, db_url, clock) -> Callable[..., Any]:
    """``app_with(**settings)``: another app on this test's database, with these settings."""
    return lambda **kw: build_app(Settings(database_url=db_url, **kw), engine, clock)


@pytest.fixture
def api(client) -> Api:
    return Api(client)


@pytest.fixture
def snapshot() -> Callable[..., dict[str, list]]:
    """``snapshot(engine)``: the full contents of all business tables, comparable with ``==``."""
    return take_snapshot


@pytest.fixture
def problem() -> Callable[..., dict]:
    """``problem(resp, status, code)``: assert an RFC 9457 problem; returns its body."""
    return expect_problem


# Lines used by several modules, with their hand-computed figures in the tests that use them.
SHOES = {"description": "Shoes", "quantity": 2, "unit_price_minor": 5000, "tax_rate": "0.20",
         "discount_minor": 1000, "sku": "SH-1", "category": "footwear"}
SOCKS = {"description": "Socks", "quantity": 3, "unit_price_minor": 1000, "tax_rate": "0.20"}
SHIPPING = {"amount_minor": 500, "tax_rate": "0.20"}


@pytest.fixture
def paid_invoice(api) -> dict:
    """A customer and an exclusive-tax EUR invoice paid in full by card.

    Shoes 2 × 50.00 − 10.00 line discount, socks 3 × 10.00, a 6.00 invoice discount (apportioned
    4.50 / 1.50), shipping 5.00, all at 20 %: net 119.00, tax 23.80, total 142.80.
    """
    cus = api.customer()
    inv = api.invoice(cus["id"], [SHOES, SOCKS], discount_minor=600, shipping=SHIPPING)
    assert inv["total_minor"] == 14280
    pay = api.pay(inv)
    return {"customer": cus, "invoice": inv, "payment": pay,
            "shoes": inv["lines"][0]["id"], "socks": inv["lines"][1]["id"],
            "shipping": inv["lines"][2]["id"]}
