"""Which gateways a process builds from its settings, and the sandbox's signing secret."""

from __future__ import annotations

import pytest

from payback.gateways import registry
from payback.settings import Settings


def test_the_sandbox_secret_is_derived_from_the_secret_key_unless_set():
    one = registry.sandbox_webhook_secret(Settings(secret_key="key one"))
    two = registry.sandbox_webhook_secret(Settings(secret_key="key two"))
    assert one.startswith("whsec_") and len(one) == 46 and one != two
    assert one == registry.sandbox_webhook_secret(Settings(secret_key="key one"))
    assert registry.sandbox_webhook_secret(
        Settings(secret_key="key one", sandbox_webhook_secret="whsec_mine")) == "whsec_mine"


def test_sandbox_database_sits_beside_sqlite_and_inside_postgresql():
    assert registry.sandbox_database_url(Settings(database_url="sqlite:////data/payback.db")) \
        == "sqlite:////data/payback-sandbox.db"
    pg = "postgresql+psycopg://postgres@127.0.0.1:5432/payback"
    assert registry.sandbox_database_url(Settings(database_url=pg)) == pg


def test_an_unknown_gateway_is_a_clear_error():
    with pytest.raises(registry.GatewayNotConfigured, match="'nope' is not configured"):
        registry.get("nope")
