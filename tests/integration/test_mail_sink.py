"""The development mail sink `make run` starts: a real SMTP server that keeps each message as an
.eml file; it steps aside when a server already listens on the port."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy
from email.message import EmailMessage

from payback.notifications import mail_sink, smtp
from payback.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_sink_keeps_every_message_and_steps_aside_for_a_real_server(tmp_path):
    port = _free_port()
    sink = mail_sink.start("127.0.0.1", port, tmp_path / "mail")
    assert sink is not None
    try:
        settings = Settings(smtp_host="127.0.0.1", smtp_port=port)
        msg = EmailMessage()
        msg["From"], msg["To"] = "shop@example.com", "ada@example.com"
        msg["Subject"], msg["Message-ID"] = "Your refund: 12,50 €", "<ntf_1@example.com>"
        msg.set_content("Hello Ada")
        smtp.send(settings, msg)
        [kept] = sorted((tmp_path / "mail").iterdir())
        assert kept.name == "00001-ntf_1_example.com.eml"
        got = message_from_bytes(kept.read_bytes(), policy=policy.default)
        assert (got["To"], got["Subject"]) == ("ada@example.com", "Your refund: 12,50 €")
        assert mail_sink.start("127.0.0.1", port, tmp_path / "other") is None  # port taken
    finally:
        sink.stop()
