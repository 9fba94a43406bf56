"""A local mail sink for development and the demo: an SMTP server (aiosmtpd) that accepts every
message and keeps it as an ``.eml`` file in a folder, so ``make run`` shows the customer e-mails
without any mail server installed. Never for production: it delivers nothing to anybody.

``payback serve --with-worker --mail-sink mail`` starts it on ``PAYBACK_SMTP_HOST`` and
``PAYBACK_SMTP_PORT`` (127.0.0.1:1025 by default) unless something already listens there.
"""

from __future__ import annotations

import logging
import re
import socket
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller

log = logging.getLogger("payback.mail_sink")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class _Keep:
    """The aiosmtpd handler: one file per message, named by time order and Message-ID."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's API
        data = envelope.original_content or envelope.content
        msg = message_from_bytes(data, policy=policy.default)
        self.count += 1
        ident = _UNSAFE.sub("_", str(msg.get("Message-ID", "")).strip("<>"))[:80] or "message"
        path = self.folder / f"{self.count:05d}-{ident}.eml"
        path.write_bytes(data)
        log.info("mail sink: %s to %s: %s", path.name, ", ".join(envelope.rcpt_tos),
                 msg.get("Subject", ""))
        return "250 Message accepted for delivery"


def listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, port)) == 0


def start(host: str, port: int, folder: str | Path) -> Controller | None:
    """Start the sink (a background thread) unless ``host:port`` is taken; return its
    controller (``.stop()`` ends it) or None when another server already listens there."""
    if listening(host, port):
        log.info("mail sink: %s:%d already has an SMTP server; using it", host, port)
        return None
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    controller = Controller(_Keep(path), hostname=host, port=port)
    controller.start()
    return controller
