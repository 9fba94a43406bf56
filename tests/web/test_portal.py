"""The customer refund portal over real HTTP (FastAPI TestClient), on SQLite and PostgreSQL.

The shop has an EU policy (the EU-CRD preset, 10 % store-credit bonus, refunds above 100.00 EUR
wait for approval); the customer (locale de_DE) bought 2 jackets at 59.50 and 3 pairs of socks at
10.00 (19 % VAT included, total 149.00), delivered two days before the fixed clock
(2026-01-15 10:00 UTC), and paid by Visa card ending 4242. Every figure below is worked out by
hand from these facts. Each test opens the portal with the invoice's signed link, as a customer
would, and checks both what the page says and what the database holds afterwards.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from payback import db
from payback.actor import Actor
from payback.api.app import create_app
from payback.audit.tables import audit_records
from payback.customers.service import create_customer
from payback.db.schema import metadata
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.payments.service import record_payment
from payback.policies import service as policies
from payback.refunds import service as refunds
from payback.refunds.domain import LineRequest, RefundRequest
from payback.refunds.tables import refunds as refunds_table
from payback.settings import Settings
from payback.web import portal_forms
from payback.web.links import portal_token
from payback.web.portal_service import WITHDRAWAL_NOTE

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

SETTINGS = Settings(secret_key="test-secret")
ADMIN = Actor("usr_admin", "staff", "admin")
POLICY = {"extends": "EU-CRD", "id": "shop-eu", "version": "2026-01-01",
          "store_credit": {"bonus_percent": 10},
          "approvals": {"auto_approve_up_to_minor": {"EUR": 10000}}}
#: Tables a refused request must leave untouched.
BUSINESS_TABLES = ("refunds", "refund_lines", "refund_tenders", "refund_events", "payments",
                   "invoice_lines", "store_credit_wallets", "store_credit_transactions",
                   "journal_entries", "postings", "outbox_events", "credit_notes",
                   "idempotency_keys")


# --- fixtures and helpers ------------------------------------------------------------------------

def _shop(engine, clock, *, policy=POLICY, name="Jonas"):
    with db.write(engine) as conn:
        if policy is not None:
            policies.set_policy(conn, clock, seller_id="sel_default", data=policy, actor=ADMIN)
        cus = create_customer(conn, clock, name=name, country="DE", locale="de_DE")
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="inclusive",
                             lines=[LineInput("Jacket", 2, 5950, Decimal("0.19")),
                                    LineInput("Socks", 3, 1000, Decimal("0.19"))],
                             delivered_at=clock.now() - timedelta(days=2))
        record_payment(conn, clock, inv["id"], method="card", amount_minor=14900,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    lines = {ln["description"]: ln["id"] for ln in inv["lines"]}
    return {"invoice": inv, "customer": cus, "lines": lines,
            "url": f"/portal/{portal_token(SETTINGS, inv['id'], now=clock.now())}"}


@pytest.fixture
def shop(engine, clock):
    return _shop(engine, clock)


@pytest.fixture
def browser(engine, clock):
    return TestClient(create_app(SETTINGS, engine=engine, clock=clock))


class _Forms(HTMLParser):
    """The forms of a page: action → hidden fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: dict[str, dict[str, str]] = {}
        self._current: dict[str, str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._current = self.forms.setdefault(a["action"], {})
        elif tag == "input" and self._current is not None and a.get("type") == "hidden":
            self._current[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def hidden(html: str, action: str) -> dict[str, str]:
    parser = _Forms()
    parser.feed(html)
    assert action in parser.forms, f"no form posting to {action}: {sorted(parser.forms)}"
    return dict(parser.forms[action])


def ask(browser, shop, *, jackets=0, socks=0, reason="requested_by_customer",
        method="original_payment", note="", consent=False, **extra):
    """Fill in the request form of the invoice page and post it to the preview step."""
    page = browser.get(shop["url"])
    data = hidden(page.text, f"{shop['url']}/preview")
    data.update({f"qty-{shop['lines']['Jacket']}": str(jackets),
                 f"qty-{shop['lines']['Socks']}": str(socks),
                 "reason": reason, "method": method, "note": note, **extra})
    if consent:
        data["consent"] = "yes"
    return browser.post(f"{shop['url']}/preview", data=data)


def confirm(browser, shop, preview):
    """Post the preview page's Confirm form (hidden fields exactly as rendered)."""
    data = hidden(preview.text, f"{shop['url']}/requests")
    return browser.post(f"{shop['url']}/requests", data=data), data


def count(engine, table) -> int:
    with db.read(engine) as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def snapshot(engine) -> dict[str, int]:
    return {name: count(engine, metadata.tables[name]) for name in BUSINESS_TABLES}


def the_refunds(engine) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(select(refunds_table))]


def audits(engine, action: str) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(audit_records).where(audit_records.c.action == action))]


# --- opening the link -----------------------------------------------------------------------------

def test_link_opens_the_invoice_with_its_lines_and_every_refund(engine, clock, shop, browser):
    page = browser.get(shop["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    number = shop["invoice"]["number"]
    assert f"Invoice {number}" in html and "149,00\xa0€" in html       # de_DE amounts
    assert "Jacket" in html and "up to 2 (119,00\xa0€ left)" in html
    assert "Socks" in html and "up to 3 (30,00\xa0€ left)" in html
    assert "You have not asked for a refund on this invoice yet." in html
    # readable on a phone, every field labelled, the link never leaks through a Referer
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert f'<label for="f-qty-{shop["lines"]["Jacket"]}">' in html
    assert '<label for="f-reason">' in html and '<label for="f-note">' in html
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert portal_forms.COOKIE in page.cookies
    # what the policy allows, in plain words: amount, method, bonus, deadlines
    assert ("If you return everything that is left, you get 149,00\xa0€ back to your Visa card "
            "ending 4242.") in html
    assert "Or, if you prefer, 163,90\xa0€ in store credit (a bonus of 14,90\xa0€)." in html
    assert "until 27. Januar 2026" in html                            # delivered 13 Jan + 14 days
    assert "The shop must refund you by 29. Januar 2026." in html

    # a refund made by the shop's staff shows up with its status and expected date
    with db.write(engine) as conn:
        refunds.create_refund(conn, clock, shop["invoice"]["id"], RefundRequest(
            kind="lines", method="original_payment", reason="product_defective",
            lines=(LineRequest(shop["lines"]["Socks"], 1),)), actor=ADMIN)
    html = browser.get(shop["url"]).text
    assert "10,00\xa0€" in html and "Refunded" in html
    # settled Thursday 15 January: a card refund shows within 5 to 10 business days
    assert "Expect it between 22. Januar 2026 and 29. Januar 2026" in html
    assert "up to 2 (20,00\xa0€ left)" in html


def test_the_stylesheet_is_served_and_bare_steps_go_back_to_the_page(shop, browser):
    css = browser.get("/portal/static/portal.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "@media (max-width" in css.text
    back = browser.get(f"{shop['url']}/preview", follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == shop["url"]


# --- asking for a refund --------------------------------------------------------------------------

def test_preview_says_amount_method_and_deadlines_in_plain_words(engine, shop, browser):
    before = snapshot(engine)
    preview = ask(browser, shop, jackets=1)
    assert preview.status_code == 200, preview.text
    html = preview.text
    assert "You will get 59,50\xa0€ back to your Visa card ending 4242." in html
    assert "If you chose store credit instead, you would get 65,45\xa0€ (a bonus of 5,95\xa0€)." \
        in html
    assert "Please send the items back by 29. Januar 2026." in html
    assert "The shop must refund you by 29. Januar 2026." in html
    assert "It is approved as soon as you confirm." in html
    assert "Returned within the 14-day withdrawal period" in html     # the policy's own words
    assert ">Confirm request</button>" in html
    assert snapshot(engine) == before                                  # a preview writes nothing

    credit = ask(browser, shop, jackets=1, method="store_credit", consent=True)
    assert credit.status_code == 200, credit.text
    assert ("You will get 65,45\xa0€ in store credit: 59,50\xa0€ plus a bonus of 5,95\xa0€, "
            "to spend on a later order.") in credit.text

    big = ask(browser, shop, jackets=2)                                # 119.00 > 100.00
    assert "The shop must approve this request before the money is sent." in big.text


def test_submit_creates_exactly_one_refund_and_a_double_submit_shows_the_same(engine, shop,
                                                                            browser):
    preview = ask(browser, shop, jackets=1, note="Too small")
    first, data = confirm(browser, shop, preview)
    assert first.status_code == 201, first.text
    second = browser.post(f"{shop['url']}/requests", data=data)        # the same form again
    assert second.status_code == 201 and second.text == first.text
    rows = the_refunds(engine)
    assert len(rows) == 1
    refund = rows[0]
    assert refund["id"] in first.text
    assert (refund["kind"], refund["amount_minor"], refund["method"], refund["note"]) == \
        ("lines", 5950, "original_payment", "Too small")
    assert refund["requested_by"] == f"customer:{shop['customer']['id']}"
    # audited like an API write, as the customer
    [record] = audits(engine, "refund.request")
    assert (record["actor_kind"], record["actor_id"], record["outcome"], record["object_id"]) == \
        ("customer", f"customer:{shop['customer']['id']}", "allowed", refund["id"])
    assert record["origin"] == "testclient"
    # the same form with its content changed is refused, not run as a new request
    reused = browser.post(f"{shop['url']}/requests", data={**data, "note": "Other text"})
    assert reused.status_code == 422 and "This form was already used" in reused.text
    assert len(the_refunds(engine)) == 1


def test_simultaneous_submits_of_one_form_create_one_refund(engine, shop, browser):
    """A double click, or a burst of identical posts: the nonce lets one through; the others
    replay it or are told it is on its way (409)."""
    data = hidden(ask(browser, shop, socks=1).text, f"{shop['url']}/requests")
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: browser.post(f"{shop['url']}/requests", data=data),
                                range(6)))
    assert {a.status_code for a in answers} <= {201, 409}
    assert any(a.status_code == 201 for a in answers)
    [refund] = the_refunds(engine)
    assert all(refund["id"] in a.text for a in answers if a.status_code == 201)


def test_refund_status_and_expected_date_are_shown_once_it_succeeds(shop, browser):
    receipt, _ = confirm(browser, shop, ask(browser, shop, socks=2))
    html = receipt.text
    assert "Request received" in html and "Refunded" in html
    assert "20,00\xa0€" in html and "Back to your Visa card ending 4242." in html
    assert "Expect it between 22. Januar 2026 and 29. Januar 2026" in html
    page = browser.get(shop["url"]).text
    assert "Refunded" in page and "Expect it between 22. Januar 2026 and 29. Januar 2026" in page


def test_a_request_above_the_limit_waits_for_approval_with_its_deadline(engine, shop, browser):
    receipt, _ = confirm(browser, shop, ask(browser, shop, jackets=2))
    assert receipt.status_code == 201
    assert "Waiting for the shop&#39;s approval" in receipt.text
    assert "Expected by 29. Januar 2026 at the latest." in receipt.text
    assert [r["status"] for r in the_refunds(engine)] == ["pending_approval"]


def test_customer_text_is_escaped_in_the_receipt(engine, shop, browser):
    note = '<script>alert("x")</script><b>bold</b>'
    preview = ask(browser, shop, socks=1, note=note)
    assert "<script>alert" not in preview.text
    receipt, _ = confirm(browser, shop, preview)
    assert receipt.status_code == 201
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in receipt.text
    assert "<script>" not in receipt.text and "<b>bold" not in receipt.text
    assert the_refunds(engine)[0]["note"] == note                     # stored as typed


def test_quantities_that_are_not_whole_or_too_many_get_a_clear_message(engine, shop, browser):
    before = snapshot(engine)
    over = ask(browser, shop, jackets=3)
    assert over.status_code == 422
    assert "You can return at most 2 of “Jacket”." in over.text
    assert 'aria-invalid="true"' in over.text and 'value="3"' in over.text  # kept to correct
    for bad in ("1.5", "-1", "two", "1e3"):
        resp = ask(browser, shop, jackets=bad)
        assert resp.status_code == 422, bad
        assert "Enter a whole number (0 or more) for “Jacket”." in resp.text
    nothing = ask(browser, shop)
    assert nothing.status_code == 422
    assert "Choose at least one item and how many you are returning." in nothing.text
    assert snapshot(engine) == before


def test_a_policy_denial_is_explained_in_the_policys_words(engine, clock, shop, browser):
    before = snapshot(engine)
    no_consent = ask(browser, shop, jackets=1, method="store_credit")
    assert no_consent.status_code == 422
    assert "store credit needs the customer&#39;s express consent" in no_consent.text
    clock.advance(days=20)                                             # window ended 27 January
    late = ask(browser, shop, jackets=1)
    assert late.status_code == 422
    assert "Outside the 14-day withdrawal period" in late.text
    assert "Traceback" not in late.text
    # a fault claim is still possible after the window
    assert ask(browser, shop, jackets=1, reason="product_defective").status_code == 200
    assert snapshot(engine) == before


# --- the withdrawal function (Directive 2023/2673) ------------------------------------------------

def test_eu_withdrawal_takes_two_steps_and_acknowledges_date_and_time(engine, shop, browser):
    page = browser.get(shop["url"])
    assert ">Withdraw from contract</button>" in page.text
    step = browser.post(f"{shop['url']}/withdraw",
                        data=hidden(page.text, f"{shop['url']}/withdraw"))
    assert step.status_code == 200
    assert ">Confirm withdrawal</button>" in step.text
    assert "You will get 149,00\xa0€ back to your Visa card ending 4242." in step.text
    assert the_refunds(engine) == []                                   # nothing until confirmed

    data = hidden(step.text, f"{shop['url']}/withdraw/confirm")
    ack = browser.post(f"{shop['url']}/withdraw/confirm", data=data)
    assert ack.status_code == 201, ack.text
    assert "We have received your withdrawal" in ack.text
    assert "2026-01-15 10:00:00 UTC" in ack.text                       # the fixed clock
    assert "15. Januar 2026, 11:00:00 MEZ" in ack.text               # de_DE, Brussels time
    assert 'datetime="2026-01-15T10:00:00+00:00"' in ack.text
    [refund] = the_refunds(engine)
    assert (refund["kind"], refund["reason"], refund["method"], refund["amount_minor"]) == \
        ("full", "requested_by_customer", "original_payment", 14900)
    assert refund["note"] == WITHDRAWAL_NOTE
    assert refund["status"] == "pending_approval"                      # 149.00 > 100.00
    assert "Expected by 29. Januar 2026 at the latest." in ack.text

    again = browser.post(f"{shop['url']}/withdraw/confirm", data=data)
    assert again.status_code == 201 and len(the_refunds(engine)) == 1
    [record] = audits(engine, "contract.withdraw")
    assert record["actor_kind"] == "customer" and record["object_id"] == refund["id"]
    # the invoice page now lists it as a withdrawal, and offers no second one
    after = browser.get(shop["url"]).text
    assert "Withdrawal from the contract" in after and ">Withdraw from contract<" not in after


def test_no_withdrawal_function_without_the_statutory_right_or_after_the_period(engine, clock,
                                                                              browser):
    us = _shop(engine, clock, policy={"extends": "US-FED", "id": "shop-us",
                                      "version": "2026-01-01"})
    page = browser.get(us["url"])
    assert page.status_code == 200 and "Withdraw from contract" not in page.text
    forced = browser.post(f"{us['url']}/withdraw",
                          data=hidden(page.text, f"{us['url']}/preview"))
    assert forced.status_code == 422 and "no statutory right to withdraw" in forced.text


def test_withdrawal_is_refused_after_the_withdrawal_period(engine, clock, shop, browser):
    page = browser.get(shop["url"])
    data = hidden(page.text, f"{shop['url']}/withdraw")
    clock.advance(days=20)
    assert "Withdraw from contract" not in browser.get(shop["url"]).text
    refused = browser.post(f"{shop['url']}/withdraw", data=data)
    assert refused.status_code == 422
    assert "Outside the 14-day withdrawal period" in refused.text
    assert the_refunds(engine) == []


# --- abuse ----------------------------------------------------------------------------------------

def test_forged_or_altered_links_get_a_403_page(engine, shop, browser):
    token = shop["url"].rsplit("/", 1)[1]
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    other_key = portal_token(Settings(secret_key="another-secret"), shop["invoice"]["id"])
    for bad in (altered, other_key, "not-a-token", "x" * 300):
        resp = browser.get(f"/portal/{bad}")
        assert resp.status_code == 403, bad
        assert resp.headers["content-type"].startswith("text/html")
        assert "This link is not valid" in resp.text and "Traceback" not in resp.text
    refused = [r for r in audits(engine, "portal.view") if r["outcome"] == "refused"]
    assert len(refused) == 4 and all(r["actor_id"] == "anonymous" for r in refused)


def test_an_expired_link_says_to_ask_the_shop_for_a_new_one(engine, clock, shop, browser):
    old = portal_token(SETTINGS, shop["invoice"]["id"], now=clock.now() - timedelta(days=31))
    resp = browser.get(f"/portal/{old}")
    assert resp.status_code == 403
    assert "This link has expired" in resp.text
    assert "Please ask the shop for a new link" in resp.text
    fresh = portal_token(SETTINGS, shop["invoice"]["id"], now=clock.now() - timedelta(days=29))
    assert browser.get(f"/portal/{fresh}").status_code == 200


def test_another_invoices_refund_is_not_found(engine, clock, shop, browser):
    other = _shop(engine, clock, policy=None, name="Someone else")
    with db.write(engine) as conn:
        theirs = refunds.create_refund(conn, clock, other["invoice"]["id"], RefundRequest(
            kind="full", method="original_payment", reason="duplicate"), actor=ADMIN)
        mine = refunds.create_refund(conn, clock, shop["invoice"]["id"], RefundRequest(
            kind="lines", method="original_payment", reason="duplicate",
            lines=(LineRequest(shop["lines"]["Socks"], 1),)), actor=ADMIN)
    assert browser.get(f"{shop['url']}/refunds/{mine['id']}").status_code == 200
    stolen = browser.get(f"{shop['url']}/refunds/{theirs['id']}")
    missing = browser.get(f"{shop['url']}/refunds/ref_{'0' * 26}")
    assert stolen.status_code == missing.status_code == 404
    assert "There is no such refund on this invoice." in stolen.text
    assert stolen.text == missing.text                                 # nothing to tell apart


def test_posts_without_valid_form_tokens_are_refused_and_change_nothing(engine, shop, browser):
    page = browser.get(shop["url"])
    good = hidden(page.text, f"{shop['url']}/preview")
    preview = ask(browser, shop, socks=1)
    confirm_form = hidden(preview.text, f"{shop['url']}/requests")
    before = snapshot(engine)
    request_fields = {k: v for k, v in confirm_form.items()
                      if k not in ("nonce", "form_token", "csrf")}
    attempts = [
        request_fields,                                                # no tokens at all
        {**confirm_form, "form_token": "0" * 64},                      # forged token
        {**confirm_form, "nonce": good["nonce"]},                      # token of another form
        {**confirm_form, "csrf": "not-the-cookie-value-at-all"},       # double submit broken
    ]
    for data in attempts:
        resp = browser.post(f"{shop['url']}/requests", data=data)
        assert resp.status_code == 403, data
        assert "This form cannot be accepted" in resp.text
    # a browser without the cookie (a cross-site post) is refused even with the right fields
    stranger = TestClient(browser.app)
    assert stranger.post(f"{shop['url']}/requests", data=confirm_form).status_code == 403
    assert stranger.post(f"{shop['url']}/withdraw/confirm", data=good).status_code == 403
    assert snapshot(engine) == before
    assert len([r for r in audits(engine, "refund.request") if r["outcome"] == "refused"]) == 5


# --- the form tokens, without a database ---------------------------------------------------------

def test_form_tokens_bind_the_link_the_nonce_and_the_cookie():
    fields = portal_forms.fields_for("k", "link-a", None)
    assert fields.new_cookie
    form = {"nonce": fields.nonce, "form_token": fields.form_token, "csrf": fields.csrf}
    assert portal_forms.check("k", "link-a", form, fields.csrf) == fields.nonce
    for key, link, cookie in (("other", "link-a", fields.csrf), ("k", "link-b", fields.csrf),
                              ("k", "link-a", None), ("k", "link-a", fields.csrf + "x")):
        with pytest.raises(portal_forms.FormRefused):
            portal_forms.check(key, link, form, cookie)
    again = portal_forms.fields_for("k", "link-a", fields.csrf)
    assert not again.new_cookie and again.nonce != fields.nonce


def test_an_unexpected_failure_is_a_plain_500_page(monkeypatch, shop, browser):
    from payback.web import portal_service

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")
    monkeypatch.setattr(portal_service, "page", broken)
    resp = browser.get(shop["url"])
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in resp.text
    assert "database on fire" not in resp.text and "Traceback" not in resp.text


def test_staff_notes_stay_internal_and_the_customers_own_words_are_shown(engine, clock, shop,
                                                                         browser):
    with db.write(engine) as conn:
        staff = refunds.create_refund(conn, clock, shop["invoice"]["id"], RefundRequest(
            kind="lines", method="original_payment", reason="duplicate",
            lines=(LineRequest(shop["lines"]["Socks"], 1),),
            note="Internal: customer was rude on the phone"), actor=ADMIN)
    page = browser.get(f"{shop['url']}/refunds/{staff['id']}")
    assert page.status_code == 200
    assert "customer was rude" not in page.text and "Your message" not in page.text
    receipt, _form = confirm(browser, shop, ask(browser, shop, jackets=1, note="Too small, sorry"))
    assert "Too small, sorry" in receipt.text
