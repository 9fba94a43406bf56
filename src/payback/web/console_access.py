"""Who may open which page of the staff console: the console's ONE route table.

Invariants:
- ``CONSOLE_ROUTES`` names the permission (from ``access.domain.PERMISSIONS``, the same names
  the API uses) of every console route that needs a login; a console route missing from it is
  refused to everyone (default deny), and a test fails for any route without an entry;
- ``PUBLIC_ROUTES`` are the only routes open without a session (the login form);
- the navigation is derived from the table: a link is shown exactly when its page would open.

Pure data and pure functions: no I/O.
"""

from __future__ import annotations

from payback.access.domain import AUTHENTICATED, Principal, allowed

#: (method, path template) → permission, for every console route behind the login.
CONSOLE_ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/console"): "refunds:read",
    ("POST", "/console/logout"): AUTHENTICATED,
    ("GET", "/console/invoices"): "invoices:read",
    ("GET", "/console/invoices/{invoice_id}"): "invoices:read",
    ("POST", "/console/invoices/{invoice_id}/refunds/preview"): "refunds:create",
    ("POST", "/console/invoices/{invoice_id}/refunds"): "refunds:create",
    ("GET", "/console/payments"): "payments:read",
    ("GET", "/console/refunds"): "refunds:read",
    ("GET", "/console/refunds/{refund_id}"): "refunds:read",
    ("POST", "/console/refunds/{refund_id}/approve"): "refunds:approve",
    ("POST", "/console/refunds/{refund_id}/reject"): "refunds:approve",
    ("POST", "/console/refunds/{refund_id}/cancel"): "refunds:cancel",
    ("POST", "/console/refunds/{refund_id}/fallback"): "refunds:approve",
    ("GET", "/console/approvals"): "refunds:approve",
    ("GET", "/console/customers"): "customers:read",
    ("GET", "/console/customers/{customer_id}"): "customers:read",
    ("GET", "/console/audit"): "audit:read",
    ("GET", "/console/settings"): "policies:read",
}

#: Routes open without a session.
PUBLIC_ROUTES = frozenset({("GET", "/console/login"), ("POST", "/console/login")})

#: The navigation bar: (label, path); each link's permission is its page's.
NAV: tuple[tuple[str, str], ...] = (
    ("Dashboard", "/console"),
    ("Invoices", "/console/invoices"),
    ("Payments", "/console/payments"),
    ("Refunds", "/console/refunds"),
    ("Approvals", "/console/approvals"),
    ("Customers", "/console/customers"),
    ("Audit log", "/console/audit"),
    ("Settings", "/console/settings"),
)


def route_permission(method: str, template: str) -> str | None:
    """The permission a console route needs, or None when it is not declared (→ deny)."""
    return CONSOLE_ROUTES.get((method.upper(), template))


def may_open(user: Principal, method: str, template: str) -> bool:
    permission = route_permission(method, template)
    return permission is not None and allowed(user, permission)


def navigation(user: Principal) -> list[tuple[str, str]]:
    """The links this user may follow, in menu order."""
    return [(label, path) for label, path in NAV if may_open(user, "GET", path)]
