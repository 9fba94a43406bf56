"""Customer e-mail over SMTP: build the message of one notification and hand it to the relay.

``build_message`` is deterministic: the same notification row always gives the same message,
headers included. Its ``Message-ID`` is derived from the notification id and its ``Date`` is
the time the notification was written, so if the worker crashes after the relay accepted a
message but before the row was marked sent, the resend is the same message and mail systems
(and the customer's client) can recognise the duplicate.

``send`` speaks to the server named by the settings: ``smtp_tls`` ``none`` (plain, e.g. a local
relay), ``starttls`` (upgrade a plain connection; the server's certificate is verified) or
``ssl`` (implicit TLS, usually port 465); it logs in when ``smtp_user`` is set; every network
operation is bounded by ``smtp_timeout_seconds``. Any failure raises (``smtplib.SMTPException``
or ``OSError``), and the caller decides about retries.
"""

from __future__ import annotations

import smtplib
import ssl
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from payback.settings import Settings

#: Used in Message-IDs when ``mail_from`` has no usable domain.
FALLBACK_DOMAIN = "payback.invalid"


def message_id(notification_id: str, mail_from: str) -> str:
    """``<ntf_…@domain-of-mail_from>``: globally unique (ids are), stable across resends."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2].strip() or FALLBACK_DOMAIN
    return f"<{notification_id}@{domain}>"


def build_message(row: dict, settings: Settings, *, language: str,
                  reply_to: str | None = None) -> EmailMessage:
    """The e-mail of a ``notifications`` row: text and HTML as multipart/alternative."""
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = Address(addr_spec=row["to_address"])
    if reply_to:
        msg["Reply-To"] = reply_to
    _set_subject(msg, row["subject"])
    msg["Date"] = format_datetime(row["created_at"])
    msg["Message-ID"] = message_id(row["id"], settings.mail_from)
    # RFC 3834: an automatic message; auto-responders must not answer it.
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row["body_text"])
    msg.add_alternative(row["body_html"], subtype="html")
    # After the bodies: setting content drops every Content-* header set before.
    msg["Content-Language"] = language
    return msg


def _set_subject(msg: EmailMessage, subject: str) -> None:
    """A non-ASCII subject is encoded here, whole, as RFC 2047 words with the spaces inside
    them: the standard library's folder splits ``a été refusée`` into adjacent encoded words
    and the space between them is lost when read (``étérefusée``)."""
    if subject.isascii():
        msg["Subject"] = subject
    else:
        msg.set_raw("Subject", Header(subject, "utf-8", header_name="Subject")
                    .encode(linesep="\n"))


def send(settings: Settings, message: EmailMessage) -> None:
    """Deliver ``message`` to the configured SMTP server; raise on any failure."""
    timeout = settings.smtp_timeout_seconds
    context = ssl.create_default_context()
    if settings.smtp_tls == "ssl":
        client: smtplib.SMTP = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port,
                                                timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with client:
        if settings.smtp_tls == "starttls":
            client.starttls(context=context)
        if settings.smtp_user:
            client.login(settings.smtp_user, settings.smtp_password or "")
        # One recipient: a refusal raises SMTPRecipientsRefused rather than returning it.
        client.send_message(message)
