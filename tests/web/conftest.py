"""Fixtures for the staff console tests: the real app on each database (the root ``engine``
fixture: SQLite and PostgreSQL) with the fixed clock, a TestClient per staff user (each has its
own cookie jar, like a browser), staff users of every role created through
``payback.access.service``, and helpers that read a page's forms the way a browser would and
submit them (so the tests drive the real HTML: labels, hidden CSRF fields, form tokens).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from payback import db
from payback.access.service import create_user
from payback.access.tables import DEFAULT_SELLER_ID
from payback.actor import Actor
from payback.api.app import create_app
from payback.customers.service import create_customer
from payback.db.schema import metadata
from payback.demo_data import DEMO_POLICY
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.settings import Settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

PASSWORD = "console test 42 password"
ADMIN_ACTOR = Actor(id="usr_setup", kind="staff", role="admin")
#: What a refused console request must leave untouched.
BUSINESS_TABLES = ("customers", "invoices", "invoice_lines", "payments", "refunds",
                   "refund_lines", "refund_tenders", "refund_events", "store_credit_wallets",
                   "store_credit_transactions", "journal_entries", "postings", "outbox_events",
                   "credit_notes", "idempotency_keys")


def console_settings(db_url: str, **overrides) -> Settings:
    return Settings(database_url=db_url, secret_key="console-test-secret",
                    public_url="http://testserver", **overrides)


@pytest.fixture
def settings(db_url) -> Settings:
    return console_settings(db_url)


@pytest.fixture
def console_app(engine, settings, clock):
    """The whole Payback app (API, portal and console) on this test's database and clock."""
    return create_app(settings, engine=engine, clock=clock)


@pytest.fixture
def client_factory(console_app) -> Callable[[], TestClient]:
    """A new browser: its own cookies; redirects are not followed (tests look at them)."""
    clients: list[TestClient] = []

    def make() -> TestClient:
        c = TestClient(console_app, follow_redirects=False)
        clients.append(c)
        return c
    yield make
    for c in clients:
        c.close()


@pytest.fixture
def anon(client_factory) -> TestClient:
    return client_factory()


@dataclass
class Staff:
    id: str
    email: str
    role: str
    password: str = PASSWORD


@pytest.fixture
def make_user(engine, clock) -> Callable[..., Staff]:
    """``make_user(role, email=None)``: a staff user of the default seller."""
    def make(role: str, email: str | None = None, name: str | None = None) -> Staff:
        email = email or f"{role}@console.test"
        with db.write(engine) as conn:
            user = create_user(conn, clock, seller_id=DEFAULT_SELLER_ID, email=email,
                               name=name or f"{role.capitalize()} Tester", role=role,
                               password=PASSWORD)
        return Staff(user["id"], email, role)
    return make


# ------------------------------------------------------------------------------ HTML forms


class _Forms(HTMLParser):
    """Collects every form: its attributes and the values a browser would submit."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.ids: dict[str, str] = {}
        self.labels_for: set[str] = set()
        self._form: dict | None = None
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if "id" in a:
            self.ids[a["id"]] = tag
        if tag == "label" and "for" in a:
            self.labels_for.add(a["for"])
        if tag == "form":
            self._form = {"attrs": a, "fields": {}, "controls": []}
            self.forms.append(self._form)
        if self._form is None:
            return
        if tag == "input":
            self._form["controls"].append(a)
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox") and "checked" not in a:
                return
            if "name" in a and kind not in ("submit", "button") and "disabled" not in a:
                self._form["fields"][a["name"]] = a.get("value", "")
        elif tag == "textarea" and "name" in a:
            self._form["controls"].append(a)
            self._textarea = a["name"]
            self._form["fields"][a["name"]] = ""
        elif tag == "select" and "name" in a:
            self._form["controls"].append(a)
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self._form["fields"][self._select] = a.get("value", "")

    def handle_data(self, data):
        if self._form is not None and self._textarea:
            self._form["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None


def parse_html(html: str) -> _Forms:
    parser = _Forms()
    parser.feed(html)
    return parser


def form_of(html: str, form_id: str) -> tuple[str, dict[str, str]]:
    """(action, fields) of the form with this id, as a browser would submit it untouched."""
    for form in parse_html(html).forms:
        if form["attrs"].get("id") == form_id:
            return form["attrs"]["action"].split("#")[0], dict(form["fields"])
    raise AssertionError(f"no form #{form_id} on the page")


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: TestClient, email: str, password: str = PASSWORD, next_path: str | None = None):
    """Open the login page, then post its form (with the pre-session token) as a browser."""
    page = client.get("/console/login", params={"next": next_path} if next_path else None)
    assert page.status_code == 200, page.text
    action, fields = form_of(page.text, "login-form")
    fields.update(email=email, password=password)
    return client.post(action, data=fields)


@pytest.fixture
def logged_in(client_factory, make_user) -> Callable[..., tuple[TestClient, Staff]]:
    """``logged_in(role)`` → (a browser logged in as a new user of that role, the user)."""
    def make(role: str, email: str | None = None) -> tuple[TestClient, Staff]:
        user = make_user(role, email)
        client = client_factory()
        response = login(client, user.email)
        assert response.status_code == 303, response.text
        return client, user
    return make


def snapshot(engine) -> dict[str, list]:
    out = {}
    with engine.connect() as conn:
        for name in BUSINESS_TABLES:
            rows = conn.execute(select(metadata.tables[name])).all()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
    return out


# ------------------------------------------------------------------------------ shop data


@pytest.fixture
def shop(engine, clock) -> dict:
    """The demo shop's policy (EU-CRD, 30 days; approval and four eyes above 500.00 EUR; agents
    may act up to 1,000.00 EUR, approvers up to 5,000.00 EUR; 10 % store-credit bonus) and one
    customer with an invoice paid by card: 3 desks at 300.00 + 20 % VAT (tax-exclusive: net
    900.00, tax 180.00, total 1,080.00) and a lamp at 50.00 + 20 % (60.00)."""
    with db.write(engine) as conn:
        policies.set_policy(conn, clock, seller_id=DEFAULT_SELLER_ID, data=DEMO_POLICY,
                            actor=ADMIN_ACTOR)
        cus = create_customer(conn, clock, name="Ada Lovelace", email="ada@example.com",
                              country="DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Desk", 3, 30000, Decimal("0.20")),
                                    LineInput("Lamp", 1, 5000, Decimal("0.20"))],
                             delivered_at=clock.now() - timedelta(days=1))
        pay = record_payment(conn, clock, inv["id"], method="card", amount_minor=114000,
                             currency="EUR",
                             card={"token": "tok_visa", "brand": "visa", "last4": "4242"})
    assert inv["total_minor"] == 114000
    return {"customer": cus, "invoice": inv, "payment": pay,
            "desk": inv["lines"][0]["id"], "lamp": inv["lines"][1]["id"]}
