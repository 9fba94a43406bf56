"""Fixtures for the end-to-end tests: a real browser (Debian's Chromium driven by Playwright)
against the real app served over real HTTP, on SQLite and PostgreSQL.

- ``browser`` (one per module): Chromium at ``/usr/bin/chromium``, headless. Without it the
  tests are skipped with the reason, except under ``CI=true``, where they fail (the rule of
  ``tests/conftest.py``). ``playwright install`` is never needed: the system browser is used.
- ``live``: ``payback.api.app.create_app`` on this test's database and fixed clock, served by
  uvicorn in a background thread on 127.0.0.1 (a free port, bound before the app is built so
  the settings' ``public_url``, and so the customer's portal links, name the real address).
- ``mail_server``: a real SMTP server (aiosmtpd) that keeps what it receives; ``worker()``
  drains the outbox as ``payback worker`` would (customer notifications, and the gateway jobs
  when a sandbox gateway is installed), sending the e-mails to that server.
- ``shots``: screenshots of each page, always under ``screenshots/e2e/<db>/NN-name.png``
  (git-ignored). With ``PAYBACK_UPDATE_GUIDE_IMAGES=1`` the SQLite run also copies the ones the
  staff guide shows into ``docs/images/staff-guide/`` (committed).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from aiosmtpd.controller import Controller

from payback import db
from payback.access.service import create_user
from payback.access.tables import DEFAULT_SELLER_ID
from payback.api.app import create_app
from payback.notifications import service as notifications
from payback.outbox.fanout import Subscribers
from payback.outbox.worker import Registry, drain
from payback.settings import Settings
from tests.ci import skip_or_fail

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "screenshots" / "e2e"
GUIDE_IMAGES = REPO_ROOT / "docs" / "images" / "staff-guide"
PASSWORD = "e2e staff password 7"
#: Playwright's own waits (a click, a navigation, an expectation): generous for a loaded CI
#: machine, far below a hang.
TIMEOUT_MS = 10_000




# ---------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the whole module; each test opens its own contexts."""
    if not CHROMIUM.exists():
        skip_or_fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, live) -> Iterator[Callable[..., object]]:
    """``new_page(**context_options)``: a page in a fresh context, i.e. another person's
    browser with its own cookies (1280×800 unless told otherwise)."""
    contexts = []

    def make(**options):
        options.setdefault("viewport", {"width": 1280, "height": 800})
        context = browser.new_context(base_url=live.url, locale="en-GB", **options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()
    yield make
    for context in contexts:
        context.close()


# ------------------------------------------------------------------------ the mail server


class _Mailbox:
    """An aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def subjects(self) -> list[str]:
        import email
        from email import policy
        return [email.message_from_bytes(e.content, policy=policy.default)["Subject"]
                for e in self.envelopes]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
def mail_server() -> Iterator[tuple[int, _Mailbox]]:
    with _free_socket() as probe:
        port = probe.getsockname()[1]
    mailbox = _Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port,
                            server_hostname="mail.test")
    controller.start()
    yield port, mailbox
    controller.stop()


# ------------------------------------------------------------------------------- the app


@dataclass
class Live:
    url: str
    settings: Settings
    engine: object
    clock: object
    mailbox: _Mailbox
    users: dict[str, dict] = field(default_factory=dict)


@pytest.fixture
def live(db_url, engine, clock, mail_server) -> Iterator[Live]:
    """The whole app (console, portal, API) over HTTP on this test's database and clock."""
    sock = _free_socket()
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    mail_port, mailbox = mail_server
    settings = Settings(database_url=db_url, secret_key="e2e-secret", public_url=url,
                        smtp_host="127.0.0.1", smtp_port=mail_port, smtp_timeout_seconds=5,
                        mail_from="Payback demo shop <refunds@shop.example>",
                        outbox_max_attempts=3)
    app = create_app(settings, engine=engine, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the e2e server did not start")
        time.sleep(0.01)
    yield Live(url, settings, engine, clock, mailbox)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def worker(live) -> Callable[[], object]:
    """``worker()``: one pass of ``payback worker --once`` with the features this story needs
    (customer e-mails; the gateway jobs too), on the live app's settings."""
    from payback.gateways import flow

    def run():
        registry, subscribers = Registry(), Subscribers()
        notifications.install(registry, subscribers, live.settings)
        flow.install(registry, subscribers)
        registry.register("*", subscribers)
        return drain(live.engine, live.clock, registry=registry,
                     max_attempts=live.settings.outbox_max_attempts)
    return run


@pytest.fixture
def staff(live) -> dict[str, dict]:
    """Two people of the default seller: an agent and an approver (passwords: PASSWORD)."""
    people = {"agent": ("alex.morgan@shop.example", "Alex Morgan"),
              "approver": ("priya.shah@shop.example", "Priya Shah")}
    with db.write(live.engine) as conn:
        for role, (email, name) in people.items():
            live.users[role] = create_user(conn, live.clock, seller_id=DEFAULT_SELLER_ID,
                                           email=email, name=name, role=role,
                                           password=PASSWORD)
    return live.users


# ------------------------------------------------------------------------------ screenshots


@dataclass
class Shots:
    folder: Path
    #: Copy the guide's images too (PAYBACK_UPDATE_GUIDE_IMAGES=1, SQLite run only).
    update_guide: bool
    guide_names: frozenset[str]
    taken: list[Path] = field(default_factory=list)

    def take(self, page, name: str, *, full_page: bool = False, part=None) -> Path:
        """Save ``NN-name.png`` of what the page shows now (the viewport, the whole page, or
        only ``part``, a locator)."""
        path = self.folder / f"{name}.png"
        if part is not None:
            part.screenshot(path=str(path))
        else:
            page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)
        if self.update_guide and name in self.guide_names:
            GUIDE_IMAGES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, GUIDE_IMAGES / path.name)
        return path


@pytest.fixture
def shots(request, db_url) -> Shots:
    backend = request.node.callspec.params["db_url"]
    folder = SCREENSHOTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    update = os.environ.get("PAYBACK_UPDATE_GUIDE_IMAGES") == "1" and backend == "sqlite"
    names = getattr(request.module, "GUIDE_IMAGES", frozenset())
    return Shots(folder, update, frozenset(names))
