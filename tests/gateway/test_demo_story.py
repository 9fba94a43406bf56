"""Issue 4's "Done when", checked as `make run` does it: `payback users bootstrap`, `payback
demo`, then `payback serve --with-worker` as a real process. Today's card refund goes from
approved to succeeded through the worker and the sandbox gateway (its webhook arrives over
HTTP, signed), `refund.succeeded` lands, signed and verified, in the demo endpoint's delivery
log, and `payback reconcile` reports zero differences."""

from __future__ import annotations

import re
import signal
import socket
import subprocess

import pytest
from sqlalchemy import select

from payback import db
from payback.gateways.tables import gateway_intents
from payback.refunds.tables import refund_events, refunds
from payback.webhooks.tables import webhook_attempts, webhook_deliveries
from tests.gateway import helpers as h

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_run_pays_todays_refund_through_the_sandbox_and_reconciles(db_url, engine,
                                                                         tmp_path):
    port = _free_port()
    env = h.cli_env(db_url, f"sqlite:///{tmp_path / 'sandbox.db'}", PAYBACK_PORT=str(port),
                    PAYBACK_PUBLIC_URL=f"http://127.0.0.1:{port}")
    assert h.run_cli(env, "users", "bootstrap").returncode == 0
    demo = h.run_cli(env, "demo", "--customers", "4", "--invoices", "24", timeout=180)
    assert demo.returncode == 0, demo.stderr
    refund_id = re.search(r"Today's card refund (re_\w+) is processing", demo.stdout).group(1)
    with db.read(engine) as conn:
        [intent] = conn.execute(select(gateway_intents).where(
            gateway_intents.c.refund_id == refund_id)).all()
    assert intent.status == "requested"  # nothing sent yet: the worker will

    server = subprocess.Popen([h.PAYBACK_CLI, "serve", "--with-worker", "--worker-poll", "0.2"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        assert h.wait_until(lambda: _status(engine, refund_id) == "succeeded", 60), \
            f"today's refund is {_status(engine, refund_id)}"
        assert h.wait_until(lambda: _delivered(engine, refund_id), 30)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    with db.read(engine) as conn:
        moves = [(e.from_status, e.to_status, e.actor_id) for e in conn.execute(
            select(refund_events).where(refund_events.c.refund_id == refund_id)
            .order_by(refund_events.c.id))]
        intent = conn.execute(select(gateway_intents).where(
            gateway_intents.c.refund_id == refund_id)).one()
    assert moves[-1] == ("processing", "succeeded", "gateway:sandbox")
    assert ("approved", "processing", "system") in moves
    assert (intent.status, intent.calls) == ("succeeded", 1)
    [attempt] = _attempts(engine, refund_id)
    assert attempt.status_code == 200 and '"verified":true' in attempt.response_excerpt
    assert attempt.signature.startswith("t=") and ",v1=" in attempt.signature

    rec = h.run_cli(env, "reconcile")
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "0 differences" in rec.stdout


def _status(engine, refund_id: str) -> str:
    with db.read(engine) as conn:
        return conn.execute(select(refunds.c.status).where(refunds.c.id == refund_id)).scalar()


def _delivered(engine, refund_id: str) -> bool:
    with db.read(engine) as conn:
        rows = conn.execute(select(webhook_deliveries.c.status).where(
            webhook_deliveries.c.event_type == "refund.succeeded",
            webhook_deliveries.c.payload["id"].as_string() == refund_id)).scalars().all()
    return rows == ["delivered"]


def _attempts(engine, refund_id: str) -> list:
    with db.read(engine) as conn:
        return conn.execute(
            select(webhook_attempts).join(
                webhook_deliveries, webhook_deliveries.c.id == webhook_attempts.c.delivery_id)
            .where(webhook_deliveries.c.event_type == "refund.succeeded",
                   webhook_deliveries.c.payload["id"].as_string() == refund_id)).all()
