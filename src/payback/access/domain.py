"""Roles, permissions and who may call which route: the ONE permission table.

Invariants:
- ``ROLE_PERMISSIONS`` is the only place that says what a role may do; the docs table
  (docs/access.md) is generated from it and a test keeps the two equal;
- ``ROUTE_PERMISSIONS`` names the permission of every ``/v1`` route (method, path template as
  FastAPI declares it). A route missing from it is refused to everyone (default deny), and a test
  fails for any route of the app without an entry;
- an API key may be narrowed to a subset of its role's permissions (``scopes``), never widened:
  a principal's effective permissions are ``ROLE_PERMISSIONS[role] ∩ scopes``.

Pure data and pure functions: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ROLES = ("viewer", "agent", "approver", "admin", "auditor")

#: Every permission, with what it lets a principal do (the docs print this text).
PERMISSIONS: dict[str, str] = {
    "customers:read": "read customers",
    "customers:write": "create customers",
    "invoices:read": "read invoices",
    "invoices:write": "create and void invoices",
    "payments:read": "read payments",
    "payments:write": "record payments",
    "refunds:read": "read refunds, their history and what is overdue",
    "refunds:create": "preview and request refunds",
    "refunds:approve": "approve or reject refunds waiting for approval",
    "refunds:cancel": "cancel a refund that has not been paid out",
    "credit_notes:write": "issue adjustment credit notes (no money moves) and void them",
    "store_credit:read": "read store-credit wallets, their lots and statements",
    "store_credit:grant": "grant goodwill or promotional store credit, and revoke such grants",
    "ledger:read": "read the ledger (entries, trial balance)",
    "reports:read": "read revenue reports",
    "audit:read": "read and verify the audit trail",
    "policies:read": "read refund policies",
    "policies:write": "publish a refund policy",
    "webhooks:read": "read webhook endpoints (never their secrets) and their delivery logs",
    "webhooks:write": "register, change and disable webhook endpoints, rotate their secrets, "
                      "retry deliveries",
    "users:manage": "create and list staff accounts",
    "keys:manage": "create, list and revoke API keys",
}

#: A pseudo-permission: any authenticated principal (``GET /v1/me``). Never in a role's set.
AUTHENTICATED = "authenticated"

_BUSINESS_READS = frozenset({"customers:read", "invoices:read", "payments:read", "refunds:read",
                             "store_credit:read", "policies:read"})
_AGENT = _BUSINESS_READS | {"customers:write", "invoices:write", "payments:write",
                            "refunds:create", "refunds:cancel", "store_credit:grant"}

#: THE permission table. The lists are written out in full (no inheritance to trace): reading
#: one line says everything a role may do.
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": _BUSINESS_READS,
    "agent": _AGENT,
    "approver": _AGENT | {"refunds:approve", "credit_notes:write"},
    "admin": frozenset(PERMISSIONS),
    "auditor": _BUSINESS_READS | {"ledger:read", "reports:read", "audit:read", "webhooks:read"},
}

#: (method, path template) → permission, for every /v1 route. Refund preview needs
#: ``refunds:create``: it is the first step of requesting one, not a report.
ROUTE_PERMISSIONS: dict[tuple[str, str], str] = {
    # customers and their store credit
    ("POST", "/v1/customers"): "customers:write",
    ("GET", "/v1/customers"): "customers:read",
    ("GET", "/v1/customers/{customer_id}"): "customers:read",
    ("GET", "/v1/customers/{customer_id}/store-credit"): "store_credit:read",
    ("GET", "/v1/customers/{customer_id}/store-credit/{currency}"): "store_credit:read",
    ("GET", "/v1/customers/{customer_id}/store-credit/{currency}/statement"): "store_credit:read",
    ("POST", "/v1/customers/{customer_id}/store-credit/grants"): "store_credit:grant",
    ("POST", "/v1/store-credit/lots/{lot_id}/revoke"): "store_credit:grant",
    # invoices and payments
    ("POST", "/v1/invoices"): "invoices:write",
    ("GET", "/v1/invoices"): "invoices:read",
    ("GET", "/v1/invoices/{invoice_id}"): "invoices:read",
    ("POST", "/v1/invoices/{invoice_id}/void"): "invoices:write",
    ("POST", "/v1/invoices/{invoice_id}/payments"): "payments:write",
    ("GET", "/v1/payments"): "payments:read",
    ("GET", "/v1/payments/{payment_id}"): "payments:read",
    # refunds and their lifecycle
    ("POST", "/v1/invoices/{invoice_id}/refunds/preview"): "refunds:create",
    ("POST", "/v1/invoices/{invoice_id}/refunds"): "refunds:create",
    ("GET", "/v1/refunds"): "refunds:read",
    ("GET", "/v1/refunds/overdue"): "refunds:read",
    ("GET", "/v1/refunds/{refund_id}"): "refunds:read",
    ("POST", "/v1/refunds/{refund_id}/approve"): "refunds:approve",
    ("POST", "/v1/refunds/{refund_id}/reject"): "refunds:approve",
    ("POST", "/v1/refunds/{refund_id}/cancel"): "refunds:cancel",
    ("GET", "/v1/refunds/{refund_id}/gateway-intents"): "refunds:read",
    ("POST", "/v1/refunds/{refund_id}/fallback"): "refunds:approve",
    ("GET", "/v1/refunds/{refund_id}/notifications"): "refunds:read",
    # credit notes and documents (a credit note is an invoice for VAT: invoices:read reads it)
    ("GET", "/v1/credit-notes"): "invoices:read",
    ("GET", "/v1/credit-notes/{credit_note_id}"): "invoices:read",
    ("GET", "/v1/credit-notes/{credit_note_id}/pdf"): "invoices:read",
    ("GET", "/v1/credit-notes/{credit_note_id}/html"): "invoices:read",
    ("GET", "/v1/credit-notes/{credit_note_id}/xml"): "invoices:read",
    ("GET", "/v1/invoices/{invoice_id}/pdf"): "invoices:read",
    ("GET", "/v1/invoices/{invoice_id}/html"): "invoices:read",
    ("GET", "/v1/invoices/{invoice_id}/xml"): "invoices:read",
    ("POST", "/v1/invoices/{invoice_id}/credit-notes"): "credit_notes:write",
    ("POST", "/v1/credit-notes/{credit_note_id}/void"): "credit_notes:write",
    # books, reports, policies, audit
    ("GET", "/v1/ledger/trial-balance"): "ledger:read",
    ("GET", "/v1/ledger/entries"): "ledger:read",
    ("GET", "/v1/reports/revenue"): "reports:read",
    ("GET", "/v1/reports/tax"): "reports:read",
    ("GET", "/v1/exports/journal.beancount"): "ledger:read",
    ("GET", "/v1/exports/journal.csv"): "ledger:read",
    ("GET", "/v1/policies"): "policies:read",
    ("GET", "/v1/policies/active"): "policies:read",
    ("GET", "/v1/policies/presets/{preset_id}"): "policies:read",
    ("POST", "/v1/policies"): "policies:write",
    ("GET", "/v1/audit"): "audit:read",
    ("GET", "/v1/audit/verify"): "audit:read",
    # access itself
    ("GET", "/v1/me"): AUTHENTICATED,
    ("GET", "/v1/seller"): AUTHENTICATED,
    ("POST", "/v1/seller"): "users:manage",
    ("GET", "/v1/users"): "users:manage",
    ("POST", "/v1/users"): "users:manage",
    ("GET", "/v1/api-keys"): "keys:manage",
    ("POST", "/v1/api-keys"): "keys:manage",
    ("POST", "/v1/api-keys/{key_id}/revoke"): "keys:manage",
    # outbound webhooks
    ("POST", "/v1/webhook-endpoints"): "webhooks:write",
    ("GET", "/v1/webhook-endpoints"): "webhooks:read",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): "webhooks:read",
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): "webhooks:write",
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): "webhooks:write",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): "webhooks:write",
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): "webhooks:read",
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/retry"):
        "webhooks:write",
}

#: The route whose calls the per-principal rate limit counts.
REFUND_CREATE_ROUTE = ("POST", "/v1/invoices/{invoice_id}/refunds")

PrincipalKind = Literal["staff", "api_key"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a staff user or an API key, always of exactly one seller.

    ``scopes`` is None for staff and for unrestricted keys; otherwise the key may use only these
    permissions (and still only those its role has)."""

    id: str
    kind: PrincipalKind
    seller_id: str
    role: str
    name: str
    scopes: frozenset[str] | None = None

    @property
    def permissions(self) -> frozenset[str]:
        return effective_permissions(self.role, self.scopes)

    def as_actor(self, *, origin: str = "system", request_id: str | None = None):
        """The service layer's view of this caller (``payback.actor.Actor``)."""
        from payback.actor import Actor

        return Actor(id=self.id, kind=self.kind, role=self.role, seller_id=self.seller_id,
                     origin=origin, request_id=request_id)


def effective_permissions(role: str, scopes: frozenset[str] | None = None) -> frozenset[str]:
    granted = ROLE_PERMISSIONS.get(role, frozenset())
    return granted if scopes is None else granted & scopes


def allowed(principal: Principal, permission: str) -> bool:
    """May this principal use this permission? Unknown roles and permissions: no."""
    if permission == AUTHENTICATED:
        return True
    return permission in principal.permissions


def route_permission(method: str, path: str) -> str | None:
    """The permission a route needs, or None when the route is not declared (→ deny)."""
    return ROUTE_PERMISSIONS.get((method.upper(), path))


def check_scopes(role: str, scopes: frozenset[str] | None) -> list[str]:
    """Problems with a key's scopes (empty when fine): unknown names, or names the role lacks."""
    if role not in ROLE_PERMISSIONS:
        return [f"role: unknown role {role!r}; expected one of {', '.join(ROLES)}"]
    if scopes is None:
        return []
    problems = [f"scopes: unknown permission {s!r}" for s in sorted(scopes)
                if s not in PERMISSIONS]
    problems += [f"scopes: role {role} does not have {s!r}" for s in sorted(scopes)
                 if s in PERMISSIONS and s not in ROLE_PERMISSIONS[role]]
    if not scopes:
        problems.append("scopes: give at least one permission, or leave scopes out")
    return problems


def may_grant(grantor: Principal, role: str, scopes: frozenset[str] | None = None) -> bool:
    """Nobody hands out more than they have: a new key's or user's permissions must be a subset
    of the grantor's own (a scoped admin key cannot mint an unscoped admin key)."""
    return effective_permissions(role, scopes) <= grantor.permissions


def permission_table_markdown() -> str:
    """The permission table as Markdown (docs/access.md embeds exactly this)."""
    head = "| permission | " + " | ".join(ROLES) + " | what it allows |"
    rule = "|---|" + "|".join(":-:" for _ in ROLES) + "|---|"
    rows = [f"| `{perm}` | " + " | ".join("✓" if perm in ROLE_PERMISSIONS[r] else ""
                                          for r in ROLES) + f" | {text} |"
            for perm, text in PERMISSIONS.items()]
    return "\n".join([head, rule, *rows])
