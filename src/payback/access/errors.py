"""Errors of staff access: who are you (401), may you (403), not so fast (429).

    DomainError
    ├── Unauthenticated   401 unauthenticated   missing, malformed, unknown, revoked or expired
    │                                           credentials: one error for all, so a caller
    │                                           cannot tell which (no oracle on key ids or emails)
    ├── Forbidden         403 forbidden         authenticated, but the role or the key's scopes
    │                                           lack the permission the operation needs
    ├── RateLimited       429 rate_limited      too many refund creations in the window;
    │                                           ``retry_after`` seconds until the next is admitted
    └── Conflict
        └── EmailTaken    409 email_taken       a staff account with this email exists
"""

from __future__ import annotations

from payback.errors import Conflict, DomainError


class Unauthenticated(DomainError):
    code, status, title = "unauthenticated", 401, "Authentication required"


class Forbidden(DomainError):
    code, status, title = "forbidden", 403, "Not allowed"


class RateLimited(DomainError):
    code, status, title = "rate_limited", 429, "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class EmailTaken(Conflict):
    code, title = "email_taken", "Email already registered"
