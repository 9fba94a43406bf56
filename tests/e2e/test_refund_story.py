"""The refund story end to end, in a real browser against the real app over HTTP, on SQLite and
PostgreSQL.

The shop runs the demo policy (EU-CRD, 30 days; auto-approved up to 200.00 EUR, approval and
four eyes above 500.00 EUR; agents may act up to 1,000.00 EUR; 10 % store-credit bonus). Ada,
an Irish customer, bought 3 desks at 300.00 and a lamp at 50.00 + 23 % VAT (369.00 and 61.50
gross each; 1,168.50 in all), delivered yesterday, paid by card on a terminal not connected to
Payback (no gateway, so an approved refund is paid at once).

1. The agent logs in (submitting the form with Enter), skips to the content with the keyboard,
   opens the invoice from the list, previews a refund of two desks (738.00: above the
   threshold, so it needs approval by someone else) and confirms it.
2. A different person, the approver, logs in, finds it in the approvals queue and approves it;
   the timeline shows who did what (the agent and the approver, with their roles) and the two
   e-mails sent to the customer.
3. The customer opens the portal link from the invoice page, sees that refund on its way, asks
   for the lamp back and sees the new refund's status; the portal also fits a phone.

A second story: a card refund through the (sandbox) gateway fails; the refund page shows the
failure, the gateway's reason and the e-mail telling the customer what happens next.

Every page is kept as a screenshot (``screenshots/e2e/<db>/``); the staff guide shows some.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from payback import db
from payback.access.tables import DEFAULT_SELLER_ID
from payback.actor import Actor
from payback.customers.service import create_customer
from payback.demo_data import DEMO_POLICY
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.refunds.tables import refunds
from payback.sellers.service import update_seller

from .conftest import PASSWORD, REPO_ROOT

ADMIN = Actor(id="usr_setup", kind="staff", role="admin")
#: The screenshots the staff guide shows (docs/staff-guide.md).
GUIDE_IMAGES = frozenset({"03-invoice", "04-refund-form", "05-refund-preview", "07-approvals",
                          "08-refund-approved", "12-portal-phone", "21-refund-failed"})


def _policy(live) -> None:
    """The demo policy, for a shop with a name (the portal and the e-mails show it)."""
    with db.write(live.engine) as conn:
        update_seller(conn, live.clock, DEFAULT_SELLER_ID,
                      {"name": "Northwind Furniture", "email": "support@shop.example"})
        policies.set_policy(conn, live.clock, seller_id=DEFAULT_SELLER_ID, data=DEMO_POLICY,
                            actor=ADMIN)


@pytest.fixture
def shop(live, staff) -> dict:
    _policy(live)
    clock = live.clock
    with db.write(live.engine) as conn:
        cus = create_customer(conn, clock, name="Ada Lovelace", email="ada@example.com",
                              country="IE", locale="en_IE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Desk", 3, 30000, Decimal("0.23")),
                                    LineInput("Lamp", 1, 5000, Decimal("0.23"))],
                             delivered_at=clock.now() - timedelta(days=1))
        record_payment(conn, clock, inv["id"], method="card", amount_minor=116850,
                       currency="EUR",
                       card={"token": "tok_visa", "brand": "visa", "last4": "4242"})
    assert inv["total_minor"] == 116850
    return {"customer": cus, "invoice": inv}


def _log_in(page, email: str) -> None:
    """Fill the login form the way a person does; submit it by clicking."""
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _refund_rows(engine) -> list:
    with db.read(engine) as conn:
        return conn.execute(select(refunds).order_by(refunds.c.created_at, refunds.c.id)).all()


def test_agent_refund_approved_by_another_person_and_the_customer_follows_it(
        live, shop, staff, new_page, shots, worker):
    invoice = shop["invoice"]
    agent, approver = staff["agent"], staff["approver"]

    # --- 1. The agent ------------------------------------------------------------------------
    page = new_page()
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Log in to the Payback console")
    shots.take(page, "01-login")
    # The keyboard alone: the email field has the focus; type, Tab, type, Enter.
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(agent["email"])
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#current-user")).to_contain_text("Alex Morgan")
    expect(page.locator("#current-user")).to_contain_text("(agent)")
    shots.take(page, "02-dashboard")
    # The first Tab reaches the skip link; Enter moves the focus to the page's content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#main")).to_be_focused()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    page.get_by_label("Search invoices").fill("Ada")
    page.get_by_label("Search invoices").press("Enter")
    page.get_by_role("link", name=invoice["number"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {invoice['number']}")
    expect(page.locator("#invoice-refundable")).to_have_text("€1,168.50")
    portal_link = page.get_by_label("Portal link").input_value()
    assert portal_link.startswith(f"{live.url}/portal/")
    shots.take(page, "03-invoice")

    # Two of the three desks, back to the card.
    page.get_by_label("Some lines (choose quantities below)").check()
    page.get_by_label(re.compile(r"^Desk")).fill("2")
    page.get_by_role("radio", name="The original payment").check()
    page.get_by_label("Reason").select_option(label="requested by customer")
    page.get_by_label(re.compile(r"^Note")).fill("Two desks came back unused")
    shots.take(page, "04-refund-form", part=page.locator("#refund-form"))
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(page.locator("#preview-outcome")).to_have_text("Needs approval")
    expect(page.locator("#preview-amount")).to_have_text("€738.00")
    expect(page.locator("#preview-four-eyes")).to_have_text(
        "Yes: someone other than you must approve it")
    expect(preview).to_contain_text("Refund due by")
    expect(page.locator("#preview-explanations li").first).to_be_visible()
    expect(page.locator("#preview-explanations")).to_contain_text("500.00")
    shots.take(page, "05-refund-preview")
    assert _refund_rows(live.engine) == []  # a preview writes nothing

    page.get_by_role("button", name="Confirm and send for approval").click()
    expect(page.locator("#flash")).to_have_text("The refund was created.")
    expect(page.locator("#refund-status")).to_have_text("Pending approval")
    expect(page.locator("#approve-form")).to_have_count(0)  # an agent cannot approve
    [row] = _refund_rows(live.engine)
    refund_id = row.id
    assert (row.status, row.amount_minor, row.requested_by) == (
        "pending_approval", 73800, agent["id"])
    worker()  # the "refund received" e-mail
    page.reload()
    expect(page.locator('#timeline [data-message="refund_received"]')).to_contain_text("sent")
    shots.take(page, "06-refund-pending", full_page=True)
    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#flash")).to_have_text("You are logged out.")

    # --- 2. The approver, an hour later --------------------------------------------------------
    live.clock.advance(hours=1)
    page = new_page()
    page.goto("/console/approvals")
    expect(page).to_have_url(re.compile(r"/console/login"))
    _log_in(page, approver["email"])
    expect(page.get_by_role("heading", level=1)).to_have_text("Approvals")
    item = page.locator(f"#pending-{refund_id}")
    expect(item).to_contain_text("requested by Alex Morgan")
    expect(item).to_contain_text("four eyes")
    shots.take(page, "07-approvals")
    item.get_by_role("link", name=f"€738.00 on {invoice['number']}").click()
    expect(page.locator("#refund-status")).to_have_text("Pending approval")
    page.get_by_label(re.compile(r"^Comment")).first.fill("Checked the returned desks")
    page.get_by_role("button", name="Approve").click()
    expect(page.locator("#flash")).to_have_text("The refund was approved.")
    expect(page.locator("#refund-status")).to_have_text("Paid")
    worker()  # the "refund paid" e-mail
    page.reload()
    timeline = page.locator("#timeline")
    expect(timeline.locator('[data-status="requested"]')).to_contain_text(
        "Alex Morgan (alex.morgan@shop.example)")
    sent_for_approval = timeline.locator('[data-status="pending_approval"]')
    expect(sent_for_approval).to_contain_text("Alex Morgan")
    expect(sent_for_approval).to_contain_text("(agent)")
    expect(sent_for_approval).to_contain_text("2026-01-15 10:00 UTC")
    approved = timeline.locator('[data-status="approved"]')
    expect(approved).to_contain_text("Priya Shah")
    expect(approved).to_contain_text("(approver)")
    expect(approved).to_contain_text("“Checked the returned desks”")
    expect(approved).to_contain_text("2026-01-15 11:00 UTC")
    expect(timeline.locator('[data-status="succeeded"]')).to_have_count(1)
    expect(timeline.locator('[data-message="refund_paid"]')).to_contain_text("sent")
    expect(timeline.locator('[data-message="refund_paid"]')).to_contain_text(
        "ada@example.com")
    shots.take(page, "08-refund-approved", full_page=True)
    [row] = _refund_rows(live.engine)
    assert (row.status, row.approved_by) == ("succeeded", approver["id"])

    # --- 3. The customer, the next day, with the link the shop sent --------------------------------
    live.clock.advance(days=1)
    page = new_page()
    page.goto(portal_link)
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {invoice['number']}")
    yours = page.locator("table.refunds tbody tr")
    expect(yours).to_have_count(1)
    expect(yours.first).to_contain_text("€738.00")
    expect(yours.first).to_contain_text("Refunded")
    expect(yours.first).to_contain_text("Expect it between 22 January 2026 and 29 January 2026")
    shots.take(page, "09-portal-invoice", full_page=True)

    page.get_by_label(re.compile(r"^Lamp")).fill("1")
    page.get_by_label("Why are you returning them?").select_option(label="I changed my mind")
    page.get_by_role("radio", name="Back to the way I paid").check()
    page.get_by_label(re.compile(r"^Anything you would like")).fill("The lamp is too bright")
    page.get_by_role("button", name="See what I will get back").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Check your request")
    expect(page.locator("main")).to_contain_text("€61.50")
    shots.take(page, "10-portal-preview", full_page=True)
    page.get_by_role("button", name="Confirm request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Request received")
    expect(page.locator("main")).to_contain_text("Refunded")
    expect(page.locator("main")).to_contain_text("€61.50")
    shots.take(page, "11-portal-receipt", full_page=True)

    page.get_by_role("link", name=f"Back to invoice {invoice['number']}").click()
    rows = page.locator("table.refunds tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text("€61.50")
    expect(rows.nth(1)).to_contain_text("Refunded")
    # On a phone: the same page, no sideways scrolling.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shots.take(page, "12-portal-phone")

    statuses = [(r.amount_minor, r.status) for r in _refund_rows(live.engine)]
    assert statuses == [(73800, "succeeded"), (6150, "succeeded")]
    worker()
    number = invoice["number"]
    assert live.mailbox.subjects() == [
        f"We have received your refund request for invoice {number}",
        f"We have refunded €738.00 for invoice {number}",
        f"We have refunded €61.50 for invoice {number}"]  # paid at once: one e-mail


# ------------------------------------------------------------------ a card refund that fails


@pytest.fixture
def sandbox(live, tmp_path):
    """The built-in sandbox gateway on its own database, signing webhooks with the app's
    secret, installed in this process (the live server and the worker share it)."""
    from payback.gateways import registry
    from payback.gateways.sandbox import SandboxGateway

    gateway = SandboxGateway(f"sqlite:///{tmp_path / 'sandbox.db'}",
                             webhook_secret=registry.sandbox_webhook_secret(live.settings),
                             clock=live.clock, seed=7, sleep=lambda _s: None)
    registry.install(gateway)
    yield gateway
    registry.uninstall("sandbox")
    gateway.dispose()


def test_a_card_refund_the_gateway_fails_shows_the_failure_and_the_next_steps(
        live, staff, sandbox, new_page, shots, worker):
    """Grace paid 184.50 EUR with a card that has since expired, through the sandbox gateway.
    The agent refunds everything (under the auto-approve limit: paid out at once, through the
    gateway); the gateway answers "pending", then reports the failure by a signed webhook."""
    _policy(live)
    clock = live.clock
    reference = sandbox.create_payment(18450, "EUR", card="tok_expired")
    with db.write(live.engine) as conn:
        cus = create_customer(conn, clock, name="Grace Hopper", email="grace@example.com",
                              country="IE", locale="en_IE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="exclusive",
                             lines=[LineInput("Office chair", 1, 15000, Decimal("0.23"))],
                             delivered_at=clock.now() - timedelta(days=2))
        record_payment(conn, clock, inv["id"], method="card", amount_minor=18450,
                       currency="EUR", reference=reference, gateway="sandbox",
                       card={"token": "tok_expired", "brand": "visa", "last4": "0069"})

    page = new_page()
    page.goto(f"/console/invoices/{inv['id']}")
    _log_in(page, staff["agent"]["email"])  # the login form sends her back to the invoice
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Invoice {inv['number']}")
    page.get_by_label("Everything still refundable").check()
    page.get_by_label("Reason").select_option(label="requested by customer")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview-outcome")).to_have_text("Allowed")
    page.get_by_role("button", name="Confirm refund").click()
    expect(page.locator("#refund-status")).to_have_text("Processing")
    refund_id = page.url.split("/console/refunds/")[1].split("?")[0]
    gateway_table = page.locator("#gateway")
    expect(gateway_table).to_contain_text("sandbox")
    expect(gateway_table).to_contain_text("requested")
    shots.take(page, "20-refund-processing", full_page=True)

    worker()  # submits the refund to the gateway: pending there
    clock.advance(seconds=5)
    assert sandbox.advance() == 1  # the expired card: the gateway fails the refund

    def post(headers: dict[str, str], body: bytes) -> int:
        return httpx.post(f"{live.url}/gateways/sandbox/webhooks", headers=headers,
                          content=body, timeout=10).status_code
    assert sandbox.deliver_webhooks(post) >= 1
    worker()  # the customer's "refund failed" e-mail

    # Later, the agent finds the refund in the list of failed refunds.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Refunds").click()
    page.get_by_label("Status").select_option(label="Failed")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=refund_id).click()
    expect(page.locator("#refund-status")).to_have_text("Failed")
    expect(gateway_table).to_contain_text("failed")
    expect(gateway_table).to_contain_text("expired or canceled card")
    failed_mail = page.locator('#timeline [data-message="refund_failed"]')
    expect(failed_mail).to_contain_text("sent")
    expect(failed_mail).to_contain_text("grace@example.com")
    shots.take(page, "21-refund-failed", full_page=True)
    [row] = _refund_rows(live.engine)
    assert row.status == "failed" and row.method == "original_payment"
    assert live.mailbox.subjects()[-1] == (
        f"We could not pay out your refund for invoice {inv['number']}")
    # The reservation is released: the whole amount can be refunded again (the fallback).
    expect(page.get_by_role("button", name="Refund as store credit")).to_have_count(0)
    page.get_by_role("link", name=inv["number"]).click()
    expect(page.locator("#invoice-refundable")).to_have_text("€184.50")

    # An approver offers the fallback the policy allows: store credit, with one click.
    page.get_by_role("button", name="Log out").click()
    page.goto(f"{live.url}/console/refunds/{refund_id}")
    _log_in(page, staff["approver"]["email"])
    expect(page.get_by_role("heading", name="Pay another way")).to_be_visible()
    page.get_by_role("button", name="Refund as store credit").click()
    expect(page.locator("#refund-status")).to_have_text("Paid")
    rows = _refund_rows(live.engine)
    assert sorted((r.status, r.method) for r in rows) == [
        ("failed", "original_payment"), ("succeeded", "store_credit")]
    page.goto(f"{live.url}/console/refunds/{refund_id}")
    expect(page.get_by_role("heading", name="Pay another way")).to_have_count(0)


def test_the_staff_guide_shows_the_screenshots_this_module_takes():
    """docs/staff-guide.md links exactly the images GUIDE_IMAGES names, and each is there
    (``PAYBACK_UPDATE_GUIDE_IMAGES=1`` refreshes them)."""
    guide = REPO_ROOT / "docs" / "staff-guide.md"
    linked = set(re.findall(r"\]\(images/staff-guide/([0-9a-z-]+)\.png\)", guide.read_text()))
    assert linked == set(GUIDE_IMAGES)
    for name in linked:
        assert (REPO_ROOT / "docs" / "images" / "staff-guide" / f"{name}.png").is_file(), name
