"""The console's reading pages and their HTML, on SQLite and PostgreSQL.

Covers: the lists search by number, name, email and id, and page by id (keyset) with no row
lost or repeated; the invoice page shows lines with what remains refundable, payments, refunds,
credit notes and the customer's portal link; the customer page shows store credit with its
history; the audit log viewer filters by actor, action, object, outcome and dates; the settings
page shows the active policy in words; every page is usable without a mouse or a big screen
(language, viewport, skip link to ``<main id="main">``, one ``h1``, a ``role="status"`` region,
and a label for every form control); the stylesheet is served.
"""

from __future__ import annotations

import re

from payback import db
from payback.actor import Actor
from payback.customers.service import create_customer
from payback.store_credit.service import grant_credit
from payback.web.links import invoice_from_token

from .conftest import TestClient, console_settings, login, parse_html

ADMIN = Actor(id="usr_setup", kind="staff", role="admin")


def _ids_in(html: str, pattern: str) -> list[str]:
    return re.findall(pattern, html)


def test_lists_search_and_page_without_losing_or_repeating_rows(engine, db_url, clock,
                                                                 make_user):
    from payback.api.app import create_app

    with db.write(engine) as conn:
        made = [create_customer(conn, clock, name=f"Zed Number {i}",
                                email=f"zed{i}@example.com")["id"] for i in range(5)]
        create_customer(conn, clock, name="Someone Else", email="else@example.com")
    user = make_user("viewer")
    app = create_app(console_settings(db_url, page_size=2), engine=engine, clock=clock)
    with TestClient(app, follow_redirects=False) as client:
        assert login(client, user.email).status_code == 303
        seen, url, pages = [], "/console/customers?q=ZED", 0
        while url:
            page = client.get(url)
            assert page.status_code == 200
            rows = _ids_in(page.text, r'href="/console/customers/(cus_[a-z0-9]+)"')
            assert 1 <= len(rows) <= 2
            seen += rows
            pages += 1
            nxt = re.search(r'id="next-page" rel="next" href="([^"]+)"', page.text)
            url = nxt.group(1).replace("&amp;", "&") if nxt else None
        assert pages == 3 and sorted(seen) == sorted(made) and len(set(seen)) == 5
        assert seen == sorted(seen, reverse=True)  # newest (largest id) first
        by_email = client.get("/console/customers", params={"q": "zed3@EXAMPLE"}).text
        assert _ids_in(by_email, r'href="/console/customers/(cus_[a-z0-9]+)"') == [made[3]]
        by_id = client.get("/console/customers", params={"q": made[1]}).text
        assert _ids_in(by_id, r'href="/console/customers/(cus_[a-z0-9]+)"') == [made[1]]
        nothing = client.get("/console/customers", params={"q": "100%_"}).text
        assert 'id="no-results"' in nothing


def test_invoice_payment_and_refund_lists_find_by_number_customer_and_id(shop, logged_in):
    client, _ = logged_in("viewer")
    inv = shop["invoice"]
    for params in ({"q": inv["number"]}, {"q": "ada"}, {"q": inv["id"]}):
        page = client.get("/console/invoices", params=params).text
        assert f'href="/console/invoices/{inv["id"]}"' in page, params
    assert 'id="no-results"' in client.get("/console/invoices", params={"q": "nobody"}).text
    payments = client.get("/console/payments", params={"q": "4242"}).text
    assert shop["payment"]["id"] in payments and "visa ···· 4242" in payments
    refunds = client.get("/console/refunds", params={"q": inv["number"]}).text
    assert 'id="no-results"' in refunds
    filtered = client.get("/console/refunds", params={"status": "pending_approval"})
    assert filtered.status_code == 200
    assert '<option value="pending_approval" selected>' in filtered.text


def test_invoice_page_shows_lines_payments_and_the_portal_link(shop, logged_in, settings,
                                                                clock):
    client, _ = logged_in("agent")
    page = client.get(f"/console/invoices/{shop['invoice']['id']}").text
    desk = page.split(f'id="line-{shop["desk"]}"')[1].split("</tr>")[0]
    assert "<td class=\"num\" data-refundable-quantity>3</td>" in desk
    assert "€1,080.00" in desk  # 3 × 300.00 + 20 % still refundable
    assert shop["payment"]["id"] in page
    link = re.search(r'id="portal-url" type="url" readonly value="([^"]+)"', page).group(1)
    assert link.startswith("http://testserver/portal/")
    token = link.rsplit("/", 1)[1]
    assert invoice_from_token(settings, token, now=clock.now()) == shop["invoice"]["id"]
    assert 'id="refund-form"' in page
    viewer, _ = logged_in("viewer")
    assert 'id="refund-form"' not in viewer.get(
        f"/console/invoices/{shop['invoice']['id']}").text


def test_customer_page_shows_store_credit_and_its_history(engine, shop, logged_in, clock):
    with db.write(engine) as conn:
        grant_credit(conn, clock, customer_id=shop["customer"]["id"], kind="goodwill",
                     amount_minor=2500, currency="EUR", memo="Sorry for the delay",
                     actor=ADMIN)
    client, _ = logged_in("viewer")
    page = client.get(f"/console/customers/{shop['customer']['id']}").text
    assert 'id="balance-EUR">€25.00<' in page
    history = page.split('id="wallet-EUR"')[1].split("</table>")[0]
    assert "Sorry for the delay" in history and "€25.00" in history
    assert shop["invoice"]["number"] in page
    assert client.get("/console/customers/cus_nope").status_code == 404


def test_audit_log_filters(engine, logged_in, anon, make_user):
    auditor, auditor_user = logged_in("auditor")
    agent = make_user("agent", "agent2@console.test")
    login(anon, agent.email, "not the password 1")
    page = auditor.get("/console/audit", params={"action": "session.create"}).text
    rows = page.split('id="audit-records"')[1].split("</table>")[0]
    assert rows.count("<tr class=") == 2
    assert "outcome-refused" in rows and "outcome-allowed" in rows
    mine = auditor.get("/console/audit", params={"actor": auditor_user.id}).text
    assert auditor_user.id in mine and "anonymous" not in mine.split('id="audit-records"')[1]
    refused = auditor.get("/console/audit", params={"outcome": "refused"}).text
    assert "anonymous" in refused
    by_object = auditor.get("/console/audit", params={"object": auditor_user.id}).text
    assert "session.create" in by_object
    today = auditor.get("/console/audit", params={"from": "2026-01-15", "to": "2026-01-15"})
    assert "session.create" in today.text
    later = auditor.get("/console/audit", params={"from": "2026-01-16"}).text
    assert 'id="no-results"' in later
    bad = auditor.get("/console/audit", params={"from": "15/01/2026"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.text


def test_settings_page_shows_the_active_policy_in_words(shop, logged_in):
    client, _ = logged_in("viewer")
    page = client.get("/console/settings").text
    assert "Payback demo shop: 30 days, with approvals" in page
    assert "30 days from" in page
    four_eyes = page.split("<dt>Four eyes above</dt>")[1].split("</dd>")[0]
    assert "€500.00" in four_eyes and "£500.00" in four_eyes
    assert "<dt>Agent may act up to</dt>" in page
    assert "Store credit bonus</dt><dd>10 %" in page


def test_settings_page_without_a_policy(logged_in):
    client, _ = logged_in("viewer")
    assert 'id="no-policy"' in client.get("/console/settings").text


def test_every_page_is_keyboard_and_phone_friendly(shop, logged_in, anon):
    client, _ = logged_in("admin")
    pages = ["/console", "/console/invoices", f"/console/invoices/{shop['invoice']['id']}",
             "/console/payments", "/console/refunds", "/console/approvals",
             "/console/customers", f"/console/customers/{shop['customer']['id']}",
             "/console/audit", "/console/settings"]
    responses = [client.get(p) for p in pages] + [anon.get("/console/login")]
    for response in responses:
        html = response.text
        where = response.url.path
        assert response.status_code == 200, where
        assert '<html lang="en">' in html
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
        assert html.count("<h1") == 1, where
        assert 'id="flash" role="status"' in html
        parsed = parse_html(html)
        for form in parsed.forms:
            for control in form["controls"]:
                if control.get("type") in ("hidden", "submit", "button"):
                    continue
                assert control.get("id") in parsed.labels_for, (where, control)
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    css = anon.get("/static/console.css")
    assert css.status_code == 200 and ":focus-visible" in css.text and "@media" in css.text


def test_an_unexpected_error_is_an_html_page_without_details(logged_in, monkeypatch):
    from payback.web import console_queries

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(console_queries, "search_customers", broken)
    client, _ = logged_in("viewer")
    response = client.get("/console/customers")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text
    assert "secret internals" not in response.text and "Traceback" not in response.text
