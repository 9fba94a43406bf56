"""Roles, permissions and the refund rate limiter, without a database.

Covers: every role's permission set exactly as declared (restated here on purpose: changing the
table must be a deliberate change of this test too); the roles agree with the database CHECK;
every route names a known permission; scopes narrow a key and never widen it; nobody grants more
than they hold; docs/access.md carries the generated permission table verbatim; the rate string
parser; the sliding-window limiter on a fixed clock (limit, Retry-After, window slide, per key,
refused calls not counted).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from payback.access import domain
from payback.access.domain import (
    AUTHENTICATED,
    PERMISSIONS,
    ROLE_PERMISSIONS,
    ROUTE_PERMISSIONS,
    Principal,
    allowed,
    check_scopes,
    may_grant,
)
from payback.access.ratelimit import SlidingWindowLimiter, parse_rate
from payback.clock import FixedClock

READS = {"customers:read", "invoices:read", "payments:read", "refunds:read",
         "store_credit:read", "policies:read"}
AGENT = READS | {"customers:write", "invoices:write", "payments:write", "refunds:create",
                 "refunds:cancel", "store_credit:grant"}
EXPECTED = {
    "viewer": READS,
    "agent": AGENT,
    "approver": AGENT | {"refunds:approve", "credit_notes:write"},
    "admin": {"customers:read", "customers:write", "invoices:read", "invoices:write",
              "payments:read", "payments:write", "refunds:read", "refunds:create",
              "refunds:approve", "refunds:cancel", "credit_notes:write", "store_credit:read",
              "store_credit:grant", "ledger:read",
              "reports:read", "audit:read", "policies:read", "policies:write", "users:manage",
              "keys:manage", "webhooks:read", "webhooks:write"},
    "auditor": READS | {"ledger:read", "reports:read", "audit:read", "webhooks:read"},
}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "access.md"


def principal(role: str, scopes: set[str] | None = None) -> Principal:
    return Principal(id="key_1", kind="api_key", seller_id="sel_default", role=role, name="k",
                     scopes=frozenset(scopes) if scopes is not None else None)


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_each_role_has_exactly_its_declared_permissions(role):
    assert ROLE_PERMISSIONS[role] == EXPECTED[role]
    assert principal(role).permissions == EXPECTED[role]
    for perm in PERMISSIONS:
        assert allowed(principal(role), perm) is (perm in EXPECTED[role]), perm


def test_roles_match_the_database_check_and_the_table_is_closed():
    from payback.access.tables import ROLES as TABLE_ROLES

    assert domain.ROLES == TABLE_ROLES == ("viewer", "agent", "approver", "admin", "auditor")
    assert set(ROLE_PERMISSIONS) == set(domain.ROLES)
    assert ROLE_PERMISSIONS["admin"] == frozenset(PERMISSIONS)  # admin: everything, exactly
    assert len(PERMISSIONS) == len(EXPECTED["admin"])


def test_auditor_and_viewer_never_write():
    writes = {p for p in PERMISSIONS if not p.endswith(":read")}
    assert writes == {"customers:write", "invoices:write", "payments:write", "refunds:create",
                      "refunds:approve", "refunds:cancel", "credit_notes:write",
                      "store_credit:grant", "policies:write", "users:manage", "keys:manage",
                      "webhooks:write"}
    assert not ROLE_PERMISSIONS["auditor"] & writes
    assert not ROLE_PERMISSIONS["viewer"] & writes


def test_only_admin_manages_access_and_policies():
    for perm in ("users:manage", "keys:manage", "policies:write", "webhooks:write"):
        assert [r for r in domain.ROLES if perm in ROLE_PERMISSIONS[r]] == ["admin"], perm


def test_every_route_names_a_known_permission():
    assert ROUTE_PERMISSIONS, "the route table is empty"
    for (method, path), perm in ROUTE_PERMISSIONS.items():
        assert method in ("GET", "POST", "PUT", "PATCH", "DELETE"), method
        assert path.startswith("/v1/"), path
        assert perm in PERMISSIONS or perm == AUTHENTICATED, (method, path, perm)
    assert ROUTE_PERMISSIONS[domain.REFUND_CREATE_ROUTE] == "refunds:create"
    assert ROUTE_PERMISSIONS[("POST", "/v1/refunds/{refund_id}/approve")] == "refunds:approve"
    assert ROUTE_PERMISSIONS[("POST", "/v1/refunds/{refund_id}/reject")] == "refunds:approve"
    assert ROUTE_PERMISSIONS[("POST", "/v1/refunds/{refund_id}/cancel")] == "refunds:cancel"


def test_route_lookup_is_exact_and_defaults_to_none():
    assert domain.route_permission("post", "/v1/invoices/{invoice_id}/refunds") == "refunds:create"
    assert domain.route_permission("GET", "/v1/invoices/{invoice_id}/refunds") is None
    assert domain.route_permission("DELETE", "/v1/customers") is None
    assert domain.route_permission("GET", "/v1/customers/") is None


def test_authenticated_is_open_to_every_role_even_a_narrow_key():
    assert all(AUTHENTICATED not in perms for perms in ROLE_PERMISSIONS.values())
    for role in domain.ROLES:
        assert allowed(principal(role, {"refunds:read"}), AUTHENTICATED)


def test_scopes_narrow_a_key_to_their_intersection_with_the_role():
    key = principal("agent", {"refunds:read", "refunds:create", "ledger:read"})
    assert key.permissions == {"refunds:read", "refunds:create"}  # ledger:read: not the role's
    assert allowed(key, "refunds:create")
    assert not allowed(key, "ledger:read")
    assert not allowed(key, "customers:read")  # the role has it, the scopes do not
    assert principal("agent").permissions == AGENT  # no scopes: the whole role


def test_unknown_role_or_permission_is_never_allowed():
    ghost = principal("superuser")
    assert ghost.permissions == frozenset()
    assert not allowed(ghost, "customers:read")
    assert not allowed(principal("admin"), "refunds:force")


def test_check_scopes_names_each_problem():
    assert check_scopes("agent", None) == []
    assert check_scopes("agent", frozenset({"refunds:create"})) == []
    assert check_scopes("agent", frozenset({"ledger:read", "refunds:nuke"})) == [
        "scopes: unknown permission 'refunds:nuke'",
        "scopes: role agent does not have 'ledger:read'"]
    assert check_scopes("agent", frozenset()) == [
        "scopes: give at least one permission, or leave scopes out"]
    assert check_scopes("root", None)[0].startswith("role: unknown role 'root'")


def test_nobody_grants_more_than_they_hold():
    admin = principal("admin")
    narrow_admin = principal("admin", {"keys:manage", "refunds:read"})
    assert may_grant(admin, "admin")
    assert may_grant(narrow_admin, "viewer", frozenset({"refunds:read"}))
    assert not may_grant(narrow_admin, "admin")  # an unscoped admin key: escalation
    assert not may_grant(narrow_admin, "viewer")  # viewer reads customers; the grantor cannot
    assert not may_grant(principal("approver"), "admin")


def test_principal_becomes_the_service_actor():
    actor = principal("agent").as_actor(origin="203.0.113.9", request_id="req-1")
    assert (actor.id, actor.kind, actor.role, actor.seller_id, actor.origin, actor.request_id) \
        == ("key_1", "api_key", "agent", "sel_default", "203.0.113.9", "req-1")


def test_docs_carry_the_generated_permission_table():
    table = domain.permission_table_markdown()
    assert table.splitlines()[0] == ("| permission | viewer | agent | approver | admin | auditor "
                                     "| what it allows |")
    assert "| `refunds:approve` |  |  | ✓ | ✓ |  |" in table
    assert len(table.splitlines()) == 2 + len(PERMISSIONS)
    assert table in DOCS.read_text(encoding="utf-8"), (
        "docs/access.md is out of date: paste the output of "
        "`python -c 'from payback.access.domain import permission_table_markdown as t; "
        "print(t())'`")


# ---------------------------------------------------------------------------- rate limit


@pytest.mark.parametrize("text, expected", [
    ("30/minute", (30, 60)), ("1/second", (1, 1)), ("100/5 minutes", (100, 300)),
    (" 7 / hour ", (7, 3600)), ("2/days", (2, 86400)), ("2/2 days", (2, 172800)),
    ("10/Minute", (10, 60)),
])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["", "30", "0/minute", "30/fortnight", "-1/minute",
                                  "30/0 minutes", "thirty/minute", "30 per minute"])
def test_parse_rate_refuses_nonsense(text):
    with pytest.raises(ValueError, match="rate limit"):
        parse_rate(text)


def test_settings_refuse_a_bad_rate():
    from pydantic import ValidationError

    from payback.settings import Settings

    assert Settings(refund_rate_limit="5/second").refund_rate_limit == "5/second"
    with pytest.raises(ValidationError, match="refund_rate_limit"):
        Settings(refund_rate_limit="lots")


@pytest.fixture
def fixed_clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 15, 10, 0, tzinfo=timezone.utc))


def test_limiter_admits_the_limit_then_says_when_to_retry(fixed_clock):
    limiter = SlidingWindowLimiter.from_rate("3/minute", fixed_clock)
    assert [limiter.hit("key_a") for _ in range(3)] == [None, None, None]
    assert limiter.hit("key_a") == 60
    fixed_clock.advance(seconds=20.2)
    assert limiter.hit("key_a") == 40  # 39.8 s left, rounded up: never too early
    fixed_clock.advance(seconds=39.8)  # the first three leave the window exactly now
    assert limiter.hit("key_a") is None


def test_limiter_window_slides_call_by_call(fixed_clock):
    limiter = SlidingWindowLimiter(2, 10, fixed_clock)
    assert limiter.hit("k") is None          # t=0
    fixed_clock.advance(seconds=6)
    assert limiter.hit("k") is None          # t=6
    assert limiter.hit("k") == 4             # full until t=10
    fixed_clock.advance(seconds=4)
    assert limiter.hit("k") is None          # t=10: the t=0 call left; t=6 and t=10 remain
    assert limiter.hit("k") == 6             # next slot when t=6 leaves, at t=16


def test_limiter_counts_each_key_on_its_own_and_not_refusals(fixed_clock):
    limiter = SlidingWindowLimiter(1, 60, fixed_clock)
    assert limiter.hit("a") is None
    assert limiter.hit("b") is None
    for _ in range(50):  # hammering while refused does not push the window out
        assert limiter.hit("a") == 60
    fixed_clock.advance(seconds=60)
    assert limiter.hit("a") is None


def test_limiter_forgets_idle_keys(fixed_clock):
    limiter = SlidingWindowLimiter(1, 1, fixed_clock)
    for i in range(1023):
        limiter.hit(f"k{i}")
    fixed_clock.advance(seconds=5)
    limiter.hit("fresh")  # the 1024th key triggers a prune of those idle for a whole window
    assert set(limiter._hits) == {"fresh"}
    assert limiter.hit("k0") is None  # a forgotten key starts afresh


def test_limiter_refuses_nonpositive_configuration(fixed_clock):
    with pytest.raises(ValueError):
        SlidingWindowLimiter(0, 60, fixed_clock)
    with pytest.raises(ValueError):
        SlidingWindowLimiter(5, 0, fixed_clock)
