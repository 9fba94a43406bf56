"""Signed, expiring customer links: one per invoice, in e-mails and on the invoice.

A link carries the invoice id signed with the server's key and a timestamp
(``itsdangerous.URLSafeTimedSerializer``); it is valid for ``PAYBACK_PORTAL_LINK_DAYS``. A forged
or altered link fails the signature; an old one fails the age check. The link names only the
invoice: the portal shows that invoice and its refunds, nothing else of the customer's.
"""

from __future__ import annotations

from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from payback.errors import DomainError
from payback.secrets import secret_key
from payback.settings import Settings

SALT = "payback.portal.invoice"


class PortalLinkInvalid(DomainError):
    code, status, title = "portal_link_invalid", 403, "This link is not valid"


class PortalLinkExpired(DomainError):
    code, status, title = "portal_link_expired", 403, "This link has expired"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key(settings), salt=SALT)


def portal_token(settings: Settings, invoice_id: str, now: datetime | None = None) -> str:
    """A token for ``invoice_id``; ``now`` (tests) fixes the signing time."""
    s = _serializer(settings)
    if now is None:
        return s.dumps(invoice_id)
    signer = s.make_signer(SALT)
    signer.get_timestamp = lambda: int(now.timestamp())  # type: ignore[method-assign]
    return signer.sign(s.dump_payload(invoice_id)).decode()


def portal_url(settings: Settings, invoice_id: str, now: datetime | None = None) -> str:
    return f"{settings.public_url.rstrip('/')}/portal/{portal_token(settings, invoice_id, now)}"


def invoice_from_token(settings: Settings, token: str, now: datetime | None = None) -> str:
    """The invoice id a token names; raises PortalLinkInvalid or PortalLinkExpired."""
    s = _serializer(settings)
    max_age = settings.portal_link_days * 86400
    try:
        if now is None:
            return s.loads(token, max_age=max_age)
        payload, signed_at = s.loads(token, return_timestamp=True)
    except SignatureExpired as exc:
        raise PortalLinkExpired("this refund link has expired; ask the shop for a new one") \
            from exc
    except BadSignature as exc:
        raise PortalLinkInvalid("this refund link is not valid") from exc
    if (now - signed_at).total_seconds() > max_age:
        raise PortalLinkExpired("this refund link has expired; ask the shop for a new one")
    return payload
