"""Who performs a use case, as the service layer sees it: a staff user, an API key, the CLI,
the system (worker, demo) or a gateway. Every write records its actor in the audit trail and on
refund events; rules such as four eyes compare actors."""

from __future__ import annotations

from dataclasses import dataclass

from payback.access.tables import DEFAULT_SELLER_ID


@dataclass(frozen=True, slots=True)
class Actor:
    id: str
    kind: str  # staff | api_key | system | gateway | customer | cli
    role: str | None = None
    seller_id: str = DEFAULT_SELLER_ID
    origin: str = "system"  # client IP for HTTP, "cli" for the command line
    request_id: str | None = None


SYSTEM = Actor(id="system", kind="system", role="admin")
