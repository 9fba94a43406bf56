"""Customer notifications end to end, on SQLite and PostgreSQL, with a real SMTP server.

Refunds are made through the service functions; the worker is drained with a fresh Registry and
Subscribers and the notifications' own ``install``; messages arrive at an aiosmtpd server
started in the test (127.0.0.1, a free port). Covered: the headers (From, To, Subject,
deterministic Message-ID, Content-Language, Auto-Submitted), multipart text + HTML, amounts and
dates in the customer's locale (de_DE, fr_FR, en_US), the rejection reason, the portal link,
"one e-mail per moment" (an instant refund sends only "paid"; "approved" only after a person
approved and the money is not paid at once), the failed e-mail's next steps, idempotency (a
second drain sends nothing), retries while the server is down (then sent once it is up), the
dead letter marking the row failed and ``outbox retry`` reviving it, customers without a
usable address, HTML escaping, the timeline route, STARTTLS/implicit TLS with login, and
complete catalogs.
"""

from __future__ import annotations

import email
import smtplib
import socket
import ssl
import subprocess
import warnings
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlalchemy import insert, select

from payback import db
from payback.access.service import create_key
from payback.access.tables import DEFAULT_SELLER_ID, sellers
from payback.actor import SYSTEM, Actor
from payback.approvals import service as approvals
from payback.customers.service import create_customer
from payback.invoicing.domain import LineInput
from payback.invoicing.service import create_invoice
from payback.notifications import domain, service, smtp
from payback.notifications.tables import notifications
from payback.outbox.fanout import Subscribers
from payback.outbox.tables import outbox_events
from payback.outbox.worker import Registry, drain, retry_dead
from payback.payments.service import record_payment
from payback.refunds import service as refunds
from payback.refunds.domain import RefundRequest
from payback.refunds.policy import Decision
from payback.settings import Settings
from payback.web.links import invoice_from_token

AGENT = Actor(id="usr_agent", kind="staff", role="agent")
APPROVER = Actor(id="usr_approver", kind="staff", role="approver")
MAIL_FROM = "Acme Refunds <refunds@acme.example>"
NBSP, NNBSP = "\u00a0", "\u202f"
PACKAGE = Path(domain.__file__).resolve().parent


# ------------------------------------------------------------------------- SMTP server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list = []
        #: Recipients refused for good (550), as a mailbox that does not exist.
        self.unknown: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.unknown:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.content, policy=policy.default)
                for e in self.envelopes]


class SmtpServer:
    """A real SMTP server on 127.0.0.1 that can be stopped and started again on its port."""

    def __init__(self, **smtp_kwargs) -> None:
        self.port = free_port()
        self.recorder = Recorder()
        self.kwargs = smtp_kwargs
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port,
                                     server_hostname="mail.test", **self.kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mail_server():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(db_url, mail_server) -> Settings:
    return Settings(database_url=db_url, smtp_host="127.0.0.1", smtp_port=mail_server.port,
                    smtp_timeout_seconds=5, mail_from=MAIL_FROM, secret_key="test-secret",
                    public_url="https://refunds.acme.example", outbox_max_attempts=3)


@pytest.fixture
def run_worker(engine, clock, settings):
    """Drain the outbox with a fresh registry holding only the notifications."""
    def run():
        registry, subscribers = Registry(), Subscribers()
        service.install(registry, subscribers, settings)
        registry.register("*", subscribers)
        return drain(engine, clock, registry=registry, max_attempts=settings.outbox_max_attempts)
    return run


# ---------------------------------------------------------------------- business helpers


@pytest.fixture
def needs_approval(monkeypatch):
    """Every refund waits for an approver (due in 14 days)."""
    def decide(conn, *, inv, calc, req, actor, now):
        return Decision(outcome="needs_approval", due_at=now + timedelta(days=14),
                        explanations=({"rule": "test", "text": "needs approval",
                                       "values": {}},))
    monkeypatch.setattr(refunds, "decide", decide)


def paid_invoice(engine, clock, *, locale: str, email_address: str | None = "ada@example.com",
                 name: str = "Ada Lovelace") -> dict:
    """An EUR invoice of 1,234.56 (VAT included), paid by a Visa card ending 4242."""
    with db.write(engine) as conn:
        cus = create_customer(conn, clock, name=name, email=email_address, locale=locale)
        inv = create_invoice(conn, clock, customer_id=cus["id"], currency="EUR",
                             tax_mode="inclusive",
                             lines=[LineInput("Desk", 1, 123456, Decimal("0.19"))])
        record_payment(conn, clock, inv["id"], method="card", amount_minor=123456,
                       currency="EUR", card={"token": "tok", "brand": "visa", "last4": "4242"})
    return inv


def refund_in_full(engine, clock, inv: dict) -> dict:
    with db.write(engine) as conn:
        return refunds.create_refund(conn, clock, inv["id"], RefundRequest(
            kind="full", method="original_payment", reason="requested_by_customer"),
            actor=AGENT)


def move(engine, clock, refund_id: str, target: str, actor: Actor = SYSTEM, **changes) -> None:
    """One status change as the gateway flow records it (a transaction of its own, a minute
    after the previous one)."""
    clock.advance(minutes=1)
    with db.write(engine) as conn:
        refund, inv = refunds.load_for_update(conn, refund_id, None)
        refunds.transition(conn, refund, target, actor, clock.now(), inv=inv, **changes)


def rows(engine, refund_id: str | None = None) -> list[dict]:
    q = select(notifications).order_by(notifications.c.created_at, notifications.c.id)
    if refund_id:
        q = q.where(notifications.c.refund_id == refund_id)
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def send_events(engine) -> list[dict]:
    with db.read(engine) as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(outbox_events).where(outbox_events.c.topic == "notification.send")
            .order_by(outbox_events.c.id))]


def bodies(message) -> tuple[str, str]:
    return (message.get_body(("plain",)).get_content(),
            message.get_body(("html",)).get_content())


def portal_link(text: str) -> str:
    return next(word for word in text.split() if word.startswith("https://refunds.acme"))


# --------------------------------------------------------------------------------- tests


def test_an_instant_refund_sends_one_paid_email_in_german(engine, clock, settings, run_worker,
                                                          mail_server):
    inv = paid_invoice(engine, clock, locale="de_DE")
    refund = refund_in_full(engine, clock, inv)
    assert refund["status"] == "succeeded"

    run_worker()

    # requested, approved by policy and paid in one transaction: one e-mail, "paid".
    [message] = mail_server.recorder.messages()
    [envelope] = mail_server.recorder.envelopes
    [row] = rows(engine)
    assert (row["kind"], row["status"], row["locale"]) == ("refund_paid", "sent", "de_DE")
    assert envelope.mail_from == "refunds@acme.example"
    assert envelope.rcpt_tos == ["ada@example.com"]
    assert message["From"] == MAIL_FROM and message["To"] == "ada@example.com"
    assert message["Subject"] == f"Wir haben Ihnen 1.234,56{NBSP}€ zur Rechnung " \
                                 f"{inv['number']} erstattet"
    assert message["Message-ID"] == f"<{row['id']}@acme.example>" == row["message_id"]
    assert message["Content-Language"] == "de"
    assert message["Auto-Submitted"] == "auto-generated"
    assert email.utils.parsedate_to_datetime(message["Date"]) == row["created_at"]
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    text, html = bodies(message)
    for body in (text, html):
        assert f"1.234,56{NBSP}€" in body
        assert "Visa-Karte mit der Endung 4242" in body
        # A card refund: 5 to 10 business days after Thursday 15 January 2026.
        assert "zwischen dem 22. Januar 2026 und dem 29. Januar 2026" in body
        assert "Guten Tag Ada Lovelace," in body
    link = portal_link(text)
    assert f'href="{link}"' in html
    assert invoice_from_token(settings, link.rsplit("/", 1)[1], now=clock.now()) == inv["id"]
    assert row["sent_at"] == clock.now() and row["attempts"] == 1 and row["error"] is None

    # Idempotent: a second drain, and the same event handled again, send nothing new.
    clock.advance(hours=1)
    run_worker()
    with db.write(engine) as conn:
        event = dict(conn.execute(select(outbox_events).where(
            outbox_events.c.topic == "refund.succeeded")).one()._mapping)
        assert service.queue_for_event(conn, event, settings) is None
    assert len(mail_server.recorder.envelopes) == 1 and len(rows(engine)) == 1


def test_received_then_rejected_in_french_with_the_reason_escaped(
        engine, clock, settings, run_worker, mail_server, needs_approval):
    inv = paid_invoice(engine, clock, locale="fr_FR", name="Zoé <b>Dupont</b>")
    refund = refund_in_full(engine, clock, inv)
    run_worker()

    [received] = mail_server.recorder.messages()
    assert received["Subject"] == ("Nous avons bien reçu votre demande de remboursement pour "
                                   f"la facture {inv['number']}")
    assert received["Content-Language"] == "fr"
    text, html = bodies(received)
    assert f"remboursement de 1{NNBSP}234,56{NBSP}€ pour la facture {inv['number']}" in text
    assert "au plus tard le 29 janvier 2026" in text  # due 14 days after 15 January

    clock.advance(hours=2)
    reason = "Article utilisé <script>alert('x')</script> & abîmé"
    with db.write(engine) as conn:
        approvals.reject_refund(conn, clock, refund["id"], actor=APPROVER, comment=reason)
    run_worker()

    rejected = mail_server.recorder.messages()[1]
    assert rejected["Subject"] == (f"Votre demande de remboursement pour la facture "
                                   f"{inv['number']} a été refusée")
    text, html = bodies(rejected)
    assert reason in text and "Zoé <b>Dupont</b>" in text  # plain text: as written
    assert "<script>" not in html and "<b>Dupont" not in html
    assert "Article utilisé &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; abîmé" in html
    assert "Zoé &lt;b&gt;Dupont&lt;/b&gt;" in html
    assert [(r["kind"], r["status"]) for r in rows(engine, refund["id"])] == [
        ("refund_received", "sent"), ("refund_rejected", "sent")]


def test_approved_by_a_person_and_paid_at_once_sends_only_paid(
        engine, clock, run_worker, mail_server, needs_approval):
    inv = paid_invoice(engine, clock, locale="en_US")
    refund = refund_in_full(engine, clock, inv)
    clock.advance(hours=1)
    with db.write(engine) as conn:
        assert approvals.approve_refund(conn, clock, refund["id"], actor=APPROVER)[
            "status"] == "succeeded"
    run_worker()

    assert [r["kind"] for r in rows(engine)] == ["refund_received", "refund_paid"]
    paid = mail_server.recorder.messages()[1]
    assert paid["Subject"] == f"We have refunded €1,234.56 for invoice {inv['number']}"
    assert paid["Content-Language"] == "en"
    text, _ = bodies(paid)
    assert "€1,234.56 to your Visa card ending in 4242" in text
    assert "between January 22, 2026 and January 29, 2026" in text


def test_approved_then_failed_tells_what_happens_next(engine, clock, run_worker, mail_server,
                                                      needs_approval):
    """A refund whose payout is asynchronous (a gateway): approved by a person, then failed."""
    inv = paid_invoice(engine, clock, locale="en_GB")
    refund = refund_in_full(engine, clock, inv)
    move(engine, clock, refund["id"], "approved", APPROVER, comment="fine",
         approved_by=APPROVER.id)
    move(engine, clock, refund["id"], "processing")
    run_worker()
    assert [r["kind"] for r in rows(engine)] == ["refund_received", "refund_approved"]
    approved = mail_server.recorder.messages()[1]
    assert approved["Subject"] == f"Your refund for invoice {inv['number']} has been approved"
    text, _ = bodies(approved)
    assert "Your refund of €1,234.56" in text and "by 29 January 2026 at the latest" in text

    move(engine, clock, refund["id"], "failed", comment="card closed",
         failure_reason="expired_or_canceled_card", fallback=["store_credit", "manual_payout"])
    run_worker()
    failed = mail_server.recorder.messages()[2]
    assert failed["Subject"] == f"We could not pay out your refund for invoice {inv['number']}"
    text, html = bodies(failed)
    for body in (text, html):
        assert "back to your original payment method" in body
        assert "What happens next:" in body
        assert "will offer you store credit or a payout by bank transfer" in body
    assert [(r["kind"], r["status"]) for r in rows(engine)][-1] == ("refund_failed", "sent")


def test_smtp_down_is_retried_then_sent_once(engine, clock, settings, run_worker, mail_server):
    inv = paid_invoice(engine, clock, locale="de_DE")
    refund_in_full(engine, clock, inv)
    mail_server.stop()

    counts = run_worker()

    assert counts.retried == 1
    [event] = send_events(engine)
    assert (event["status"], event["attempts"]) == ("pending", 1)
    assert "ConnectionRefusedError" in event["last_error"]
    [row] = rows(engine)
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert "ConnectionRefusedError" in row["error"]

    mail_server.start()
    clock.advance(hours=1)  # past the backoff
    run_worker()

    [message] = mail_server.recorder.messages()
    [row] = rows(engine)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)
    assert message["Message-ID"] == f"<{row['id']}@acme.example>"
    assert send_events(engine)[0]["status"] == "done"
    clock.advance(hours=1)
    run_worker()
    assert len(mail_server.recorder.envelopes) == 1


def test_dead_lettered_send_marks_the_notification_failed_until_retried(
        engine, clock, settings, run_worker, mail_server):
    inv = paid_invoice(engine, clock, locale="en_US")
    refund_in_full(engine, clock, inv)
    mail_server.stop()
    for _ in range(settings.outbox_max_attempts):
        run_worker()
        clock.advance(hours=2)

    [event] = send_events(engine)
    assert (event["status"], event["attempts"]) == ("dead", settings.outbox_max_attempts)
    [row] = rows(engine)
    assert (row["status"], row["attempts"]) == ("failed", settings.outbox_max_attempts)

    mail_server.start()
    with db.write(engine) as conn:
        assert retry_dead(conn, clock.now(), event_id=event["id"]) == [event["id"]]
    run_worker()
    [row] = rows(engine)
    assert row["status"] == "sent" and len(mail_server.recorder.envelopes) == 1


def test_customers_without_a_usable_address(engine, clock, run_worker, mail_server):
    silent = paid_invoice(engine, clock, locale="de_DE", email_address=None)
    refund_in_full(engine, clock, silent)
    broken = paid_invoice(engine, clock, locale="de_DE", email_address="not an address")
    broken_refund = refund_in_full(engine, clock, broken)

    run_worker()

    assert mail_server.recorder.envelopes == []
    assert send_events(engine) == []
    # No address: nothing at all. An unusable one: a failed row the timeline shows.
    [row] = rows(engine)
    assert (row["refund_id"], row["status"]) == (broken_refund["id"], "failed")
    assert "address" in row["error"]


def test_a_recipient_refused_for_good_is_failed_without_retries(engine, clock, run_worker,
                                                                mail_server):
    mail_server.recorder.unknown.add("gone@example.com")
    inv = paid_invoice(engine, clock, locale="en_US", email_address="gone@example.com")
    refund_in_full(engine, clock, inv)

    counts = run_worker()

    assert (counts.retried, counts.dead) == (0, 0)
    [event] = send_events(engine)
    assert event["status"] == "done"
    [row] = rows(engine)
    assert (row["status"], row["attempts"]) == ("failed", 1)
    assert "550" in row["error"] and row["sent_at"] is None
    assert mail_server.recorder.envelopes == []


def test_the_timeline_route_lists_a_refunds_emails(engine, clock, settings, run_worker):
    from payback.api.app import create_app

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    inv = paid_invoice(engine, clock, locale="de_DE")
    refund = refund_in_full(engine, clock, inv)
    run_worker()
    with db.write(engine) as conn:
        conn.execute(insert(sellers).values(id="sel_other", name="Other",
                                            created_at=clock.now()))
        _, token = create_key(conn, clock, seller_id=DEFAULT_SELLER_ID, name="t", role="viewer")
        _, other = create_key(conn, clock, seller_id="sel_other", name="o", role="admin")
        listed = service.list_for_refund(conn, refund["id"])
    client = TestClient(create_app(settings, engine=engine, clock=clock))
    path = f"/v1/refunds/{refund['id']}/notifications"

    resp = client.get(path, headers={"Authorization": f"Bearer {token}"})

    assert resp.status_code == 200, resp.text
    [item] = resp.json()["data"]
    assert item["id"] == listed[0]["id"] and item["kind"] == "refund_paid"
    assert item["status"] == "sent" and item["locale"] == "de_DE"
    assert item["subject"].startswith("Wir haben Ihnen") and item["sent_at"]
    assert set(item) == set(service.TIMELINE_FIELDS)
    resp = client.get(path, headers={"Authorization": f"Bearer {other}"})
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"


# --------------------------------------------------------------- transport, no database


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl's command line)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
                        "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("the openssl command is needed to make a test certificate")
    return cert, key


def _authenticator(server, session, envelope, mechanism, auth_data):
    return AuthResult(success=(auth_data.login, auth_data.password) == (b"mailer", b"s3cret"))


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS
@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_and_login(mode, certificate, monkeypatch, clock):
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    # aiosmtpd offers AUTH over implicit TLS only when not told to require STARTTLS for it.
    options = {"ssl_context": server_ctx, "auth_require_tls": False} if mode == "ssl" else {
        "tls_context": server_ctx, "require_starttls": True}
    server = SmtpServer(authenticator=_authenticator, auth_required=True, **options)
    server.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust the test certificate only
    try:
        base = {"smtp_host": "127.0.0.1", "smtp_port": server.port, "smtp_tls": mode,
                "smtp_user": "mailer", "mail_from": MAIL_FROM}
        row = {"id": "ntf_test", "to_address": "ada@example.com", "subject": "Grüße",
               "created_at": clock.now(), "body_text": "Hallo", "body_html": "<p>Hallo</p>"}
        message = smtp.build_message(row, Settings(**base, smtp_password="s3cret"),
                                     language="de")
        smtp.send(Settings(**base, smtp_password="s3cret"), message)
        [received] = server.recorder.messages()
        assert received["Subject"] == "Grüße"
        assert received["Message-ID"] == "<ntf_test@acme.example>"
        assert [body.strip() for body in bodies(received)] == ["Hallo", "<p>Hallo</p>"]
        # The server requires AUTH: without a login the message is refused.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.send(Settings(**{**base, "smtp_user": None}), message)
        assert refused.value.smtp_code == 530
        with pytest.raises(ssl.SSLError):
            monkeypatch.delenv("SSL_CERT_FILE")  # an untrusted certificate is refused
            smtp.send(Settings(**base, smtp_password="s3cret"), message)
        assert len(server.recorder.envelopes) == 1
    finally:
        server.stop()


# ----------------------------------------------------------------------- pure, no database


def test_one_email_per_moment():
    t0 = datetime(2026, 1, 15, 10, tzinfo=UTC)
    t1 = t0 + timedelta(hours=1)
    S = domain.Step
    instant = [S("requested", None, t0), S("approved", "requested", t0),
               S("processing", "approved", t0), S("succeeded", "processing", t0)]
    assert [domain.kind_for(t, instant) for t in
            ("refund.created", "refund.approved", "refund.succeeded")] == [
        None, None, "refund_paid"]
    by_gateway = instant[:3] + [S("succeeded", "processing", t1)]
    assert domain.kind_for("refund.created", by_gateway) == "refund_received"
    assert domain.kind_for("refund.approved", by_gateway) is None  # approved by policy
    waited = [S("requested", None, t0), S("pending_approval", "requested", t0),
              S("approved", "pending_approval", t1), S("processing", "approved", t1)]
    assert domain.kind_for("refund.approved", waited) == "refund_approved"
    assert domain.kind_for("refund.approved",
                           waited + [S("succeeded", "processing", t1)]) is None
    assert domain.kind_for("refund.processing", waited) is None
    assert domain.rejection_reason([S("rejected", "pending_approval", t1, "too late")]) == \
        "too late"


def test_amounts_use_the_iso_exponent_in_the_customers_locale():
    de, us = domain.resolve_locale("de_DE"), domain.resolve_locale("en-US")
    assert domain.format_amount(123456, "EUR", de) == f"1.234,56{NBSP}€"
    assert domain.format_amount(123456, "EUR", us) == "€1,234.56"
    assert domain.format_amount(1234, "JPY", us) == "¥1,234"
    assert domain.format_amount(1234567, "KWD", de) == f"1.234,567{NBSP}KWD"
    # CLDR would show HUF without decimals; ISO 4217 says 2, and 0.45 must not vanish.
    assert domain.format_amount(12345, "HUF", de) == f"123,45{NBSP}HUF"
    assert str(domain.resolve_locale("not a locale")) == "en_US"
    # A language without a catalog: English words, the customer's number format.
    mail = domain.render("refund_received", {
        "customer_name": "Ana", "shop_name": "Acme", "invoice_number": "INV-1",
        "amount_minor": 123456, "currency": "EUR", "portal_url": "https://x/p"}, "es_ES")
    assert (mail.language, mail.locale) == ("en", "es_ES")
    assert f"a refund of 1.234,56{NBSP}€ for invoice INV-1" in mail.text


@pytest.mark.parametrize("language", ["de", "fr"])
def test_catalogs_translate_every_message(language):
    """Every message of the templates and of domain.py has a translation, with the same
    placeholders; none is fuzzy and none is left over."""
    method_map = [("templates/**.html", "jinja2.ext:babel_extract"),
                  ("templates/**.txt", "jinja2.ext:babel_extract"), ("domain.py", "python")]
    used = {msg for _f, _l, msg, _c, _x in extract_from_dir(
        str(PACKAGE), method_map, keywords={"N_": None, "_": None})}
    path = PACKAGE / "locales" / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh)
    assert str(catalog.locale) == language
    translated = {m.id: m for m in catalog if m.id}
    assert used - set(translated) == set(), "untranslated messages"
    assert set(translated) - used == set(), "messages no longer used"
    for message in translated.values():
        assert message.string and not message.fuzzy, message.id
    assert [(m.id, errors) for m, errors in catalog.check()] == []
    assert set(domain.available_languages()) >= {"en", "de", "fr"}
