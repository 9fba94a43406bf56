"""The customer portal's forms: per-page form tokens (the portal has no session) and the parsing
of a refund request form into a ``RefundRequest``.

Form tokens (CSRF)
------------------
Every form the portal renders carries three hidden fields:

- ``nonce``: random, fresh for every rendered form; it is also the idempotency key of the write
  the form leads to, so the same form submitted twice runs once;
- ``form_token`` = HMAC-SHA256(secret key, link token + nonce): proves the server rendered this
  form for this link (a page on another site cannot compute it);
- ``csrf``: the value of the ``payback_portal_csrf`` cookie (double submit: a forged cross-site
  post cannot read the cookie to copy it into the form; the cookie is ``SameSite=Strict``).

A post whose three fields do not check out is refused (403) before anything is read or written.

Parsing
-------
``parse_request`` turns the fields into a ``RefundRequest`` or raises ``FormInvalid`` with one
message per field in the customer's words. It checks only the shape of the input (whole numbers,
a known choice, a note of sensible length); whether the quantities are still available and
whether the policy allows the refund is decided by the refunds service, never here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from payback.errors import DomainError
from payback.refunds.domain import LineRequest, RefundRequest

COOKIE = "payback_portal_csrf"
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_WHOLE = re.compile(r"^[0-9]{1,9}$")
QTY_PREFIX = "qty-"
NOTE_MAX = 2000
#: Reasons a customer may give, in their words (the refund policy classifies them).
CUSTOMER_REASONS = (
    ("requested_by_customer", "I changed my mind"),
    ("product_defective", "It is faulty or damaged"),
    ("not_as_described", "It is not what was described"),
    ("duplicate", "I was charged twice"),
    ("billing_error", "I was charged the wrong amount"),
    ("other", "Another reason (please tell us below)"),
)
CUSTOMER_METHODS = ("original_payment", "store_credit")


class FormRefused(DomainError):
    """The form tokens are missing or wrong: a forged post, or a page too old to trust."""

    code, status, title = "portal_form_refused", 403, "This form cannot be accepted"


class FormInvalid(DomainError):
    """The customer's input has the wrong shape; ``errors`` maps a field name to its message."""

    code, status, title = "portal_form_invalid", 422, "Please check your request"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()), errors=errors)
        self.errors = errors


@dataclass(frozen=True)
class FormFields:
    """The hidden fields a rendered form carries, and the cookie value to set (if new)."""

    nonce: str
    form_token: str
    csrf: str
    new_cookie: bool = field(default=False)


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def sign(key: str, link_token: str, nonce: str) -> str:
    msg = b"payback.portal.form\x00" + link_token.encode() + b"\x00" + nonce.encode()
    return hmac.new(key.encode(), msg, hashlib.sha256).hexdigest()


def fields_for(key: str, link_token: str, cookie: str | None) -> FormFields:
    """Hidden fields for a new form; a browser without our cookie gets a new one."""
    nonce = new_nonce()
    csrf = cookie if cookie and _NONCE.match(cookie) else secrets.token_urlsafe(24)
    return FormFields(nonce, sign(key, link_token, nonce), csrf, new_cookie=csrf != cookie)


def check(key: str, link_token: str, form: Mapping[str, str], cookie: str | None) -> str:
    """The form's nonce if its tokens check out; else ``FormRefused``."""
    nonce = form.get("nonce") or ""
    given = form.get("form_token") or ""
    csrf = form.get("csrf") or ""
    ok = (bool(_NONCE.match(nonce))
          and hmac.compare_digest(given.encode(), sign(key, link_token, nonce).encode())
          and bool(cookie) and bool(csrf)
          and hmac.compare_digest(csrf.encode(), (cookie or "").encode()))
    if not ok:
        raise FormRefused("this form was not sent from the refund page, or the page is too old; "
                          "open your refund link again and repeat your request")
    return nonce


# --- the refund request form ----------------------------------------------------------------------

def parse_request(form: Mapping[str, str], lines: list[dict]) -> RefundRequest:
    """A line-item ``RefundRequest`` from the form, or ``FormInvalid``. ``lines``: the invoice's
    lines (``id``, ``description``), to name them in messages and to ignore nothing silently."""
    errors: dict[str, str] = {}
    known = {ln["id"]: ln for ln in lines}
    chosen = _quantities(form, known, errors)
    reason = form.get("reason") or ""
    if reason not in dict(CUSTOMER_REASONS):
        errors["reason"] = "Choose a reason from the list."
    method = form.get("method") or "original_payment"
    if method not in CUSTOMER_METHODS:
        errors["method"] = "Choose how you would like to be refunded."
    note = (form.get("note") or "").strip()
    if len(note) > NOTE_MAX:
        errors["note"] = f"Please keep your message under {NOTE_MAX} characters."
    if not chosen and not any(k.startswith(QTY_PREFIX) for k in errors):
        errors["items"] = "Choose at least one item and how many you are returning."
    if errors:
        raise FormInvalid(errors)
    return RefundRequest(kind="lines", method=method, reason=reason, lines=tuple(chosen),
                         note=note or None,
                         consent_to_other_method=form.get("consent") == "yes")


def _quantities(form: Mapping[str, str], known: dict[str, dict],
                errors: dict[str, str]) -> list[LineRequest]:
    chosen = []
    for name, raw in form.items():
        if not name.startswith(QTY_PREFIX):
            continue
        line_id = name[len(QTY_PREFIX):]
        line = known.get(line_id)
        if line is None:
            errors[name] = "One of the items is not on this invoice; reload the page."
            continue
        value = (raw or "").strip() or "0"
        if not _WHOLE.match(value):
            errors[name] = f"Enter a whole number (0 or more) for “{line['description']}”."
            continue
        if int(value) > 0:
            chosen.append(LineRequest(line_id, int(value)))
    return chosen


def request_fields(req: RefundRequest) -> dict[str, str]:
    """The request as hidden form fields again (the confirmation step re-posts them)."""
    out = {f"{QTY_PREFIX}{lr.line_id}": str(lr.quantity) for lr in req.lines}
    out.update(reason=req.reason, method=req.method, note=req.note or "")
    if req.consent_to_other_method:
        out["consent"] = "yes"
    return out


def fingerprint(req: RefundRequest) -> bytes:
    """The request's content, canonical, for the idempotency check (same nonce, same body)."""
    parts = [req.kind, req.method, req.reason, req.note or "",
             "yes" if req.consent_to_other_method else "no"]
    parts += [f"{lr.line_id}={lr.quantity}" for lr in sorted(req.lines, key=lambda x: x.line_id)]
    return "\x1f".join(parts).encode()
