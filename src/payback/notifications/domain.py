"""What a customer is told about a refund, and in which words: the functional core of
notifications.

- ``kind_for`` decides which e-mail (if any) a refund event deserves, from the refund's history
  alone. The rule is "one e-mail per moment": when one transaction moves a refund several steps
  (a policy approves and pays it while creating it; an approver approves and it is paid at once),
  the customer gets only the e-mail of the step it ended on, so never "received" or "approved"
  and "paid" in the same second. "Approved" is sent only when a person approved a refund that
  waited in ``pending_approval``: an approval by policy is not news to the customer.
- ``render`` turns a kind, a context (plain values: amounts in minor units, dates, names) and a
  locale into a subject, a text body and an HTML body. Amounts are formatted with
  ``babel.numbers.format_currency`` using the ISO 4217 exponent (never CLDR's display digits),
  dates with ``babel.dates``; the words come from the gettext catalogs under ``locales/``
  (English when the customer's language has none). HTML templates autoescape every value, so a
  customer's name or a rejection reason can never inject markup.

The catalogs are read from the ``.po`` files at run time (no compile step) and cached per
language; templates are read once per language too. Nothing here touches the database, the clock
or the network, so the same inputs always give the same e-mail.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache, lru_cache
from io import BytesIO
from pathlib import Path

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, parse_pattern
from babel.support import NullTranslations, Translations

from payback.money import exponent

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
LOCALES = HERE / "locales"
DEFAULT_LOCALE = "en_US"
#: The language of the message ids themselves: it needs no catalog.
SOURCE_LANGUAGE = "en"

RECEIVED, APPROVED, REJECTED, PAID, FAILED = (
    "refund_received", "refund_approved", "refund_rejected", "refund_paid", "refund_failed")
KINDS = (RECEIVED, APPROVED, REJECTED, PAID, FAILED)
#: The refund statuses that end a refund's story for the customer.
FINAL = frozenset({"succeeded", "failed", "rejected"})


def N_(message: str) -> str:
    """Marks a message for the catalogs; it is translated where it is used."""
    return message


SUBJECTS = {
    RECEIVED: N_("We have received your refund request for invoice %(invoice)s"),
    APPROVED: N_("Your refund for invoice %(invoice)s has been approved"),
    REJECTED: N_("Your refund request for invoice %(invoice)s was declined"),
    PAID: N_("We have refunded %(amount)s for invoice %(invoice)s"),
    FAILED: N_("We could not pay out your refund for invoice %(invoice)s"),
}
#: How each part of a refund reaches the customer (a refund tender).
TENDER_TEXTS = {
    "store_credit": N_("%(amount)s as store credit"),
    "manual_payout": N_("%(amount)s paid out to you directly by the shop"),
    "card_known": N_("%(amount)s to your %(brand)s card ending in %(last4)s"),
    "card": N_("%(amount)s to your card"),
    "bank_transfer": N_("%(amount)s to your bank account"),
    "cash": N_("%(amount)s in cash"),
    "other": N_("%(amount)s to your original payment method"),
}
#: What the shop may offer after a payout failed (the ``fallback`` of a refund.failed event).
FALLBACK_TEXTS = {
    "store_credit": N_("store credit"),
    "manual_payout": N_("a payout by bank transfer or another way you agree on"),
}


# ------------------------------------------------------------------------ which e-mail


@dataclass(frozen=True)
class Step:
    """One refund event: the status it moved to, from where, when, and its comment."""

    to_status: str
    from_status: str | None
    at: datetime
    comment: str | None = None


def kind_for(topic: str, steps: Sequence[Step]) -> str | None:
    """The e-mail a refund event deserves, given the refund's history (oldest first), or None.
    See the module docstring for the rule."""
    if topic == "refund.created":
        return None if _finished_at_once(steps, "requested") else RECEIVED
    if topic == "refund.approved":
        step = _first(steps, "approved")
        if step is None or step.from_status != "pending_approval":
            return None
        return None if _finished_at_once(steps, "approved") else APPROVED
    return {"refund.rejected": REJECTED, "refund.succeeded": PAID,
            "refund.failed": FAILED}.get(topic)


def _first(steps: Sequence[Step], status: str) -> Step | None:
    return next((s for s in steps if s.to_status == status), None)


def _finished_at_once(steps: Sequence[Step], status: str) -> bool:
    """Did the refund reach a final status in the same moment (transaction) it reached
    ``status``? Steps of one transaction share their time."""
    index = next((i for i, s in enumerate(steps) if s.to_status == status), None)
    if index is None:
        return False
    at = steps[index].at
    return any(s.to_status in FINAL and s.at == at for s in steps[index + 1:])


def rejection_reason(steps: Sequence[Step]) -> str | None:
    """The comment of the last ``rejected`` step: what the approver told the customer."""
    rejected = [s for s in steps if s.to_status == "rejected"]
    return rejected[-1].comment if rejected else None


def fallback_options(value: object) -> list[str]:
    """The options of a refund.failed payload's ``fallback`` (``["store_credit",
    "manual_payout"]``, see ``gateways.flow.fallback_options``) that the e-mail can name."""
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [n for n in dict.fromkeys(names) if isinstance(n, str) and n in FALLBACK_TEXTS]


# ------------------------------------------------------------------------ locale, formats


def resolve_locale(value: str | None) -> Locale:
    """The customer's locale (``de_DE``, ``de-DE``, ``fr``), or ``en_US`` when unusable."""
    if value:
        try:
            return Locale.parse(value.replace("-", "_"))
        except (ValueError, TypeError, UnknownLocaleError):
            pass
    return Locale.parse(DEFAULT_LOCALE)


@lru_cache(maxsize=1)
def available_languages() -> frozenset[str]:
    """English plus every language with a catalog under ``locales/<lang>/LC_MESSAGES``."""
    found = {p.parent.parent.name for p in LOCALES.glob("*/LC_MESSAGES/messages.po")}
    return frozenset(found | {SOURCE_LANGUAGE})


def language_of(locale: Locale) -> str:
    """The language the words are written in: the customer's if we have it, else English."""
    return locale.language if locale.language in available_languages() else SOURCE_LANGUAGE


def format_amount(minor: int, currency: str, locale: Locale) -> str:
    """``123456 EUR`` → ``1.234,56 €`` (de_DE), ``€1,234.56`` (en_US): exact, with the ISO 4217
    number of decimals (JPY 0, KWD 3) whatever CLDR would display."""
    digits = exponent(currency)
    pattern = copy.copy(parse_pattern(locale.currency_formats["standard"]))
    pattern.frac_prec = (digits, digits)
    return format_currency(Decimal(minor).scaleb(-digits), currency, format=pattern,
                           locale=locale, currency_digits=False)


def format_day(day: date | datetime, locale: Locale) -> str:
    if isinstance(day, datetime):
        day = day.date()
    return format_date(day, format="long", locale=locale)


# ------------------------------------------------------------------- catalogs, templates


@cache
def translations(language: str) -> NullTranslations:
    """The catalog of ``language``, compiled in memory from its ``.po`` file (once)."""
    if language == SOURCE_LANGUAGE:
        return NullTranslations()
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def environment(language: str) -> jinja2.Environment:
    """A Jinja environment speaking ``language``; ``.html`` templates autoescape."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), extensions=["jinja2.ext.i18n"],
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True)
    env.install_gettext_translations(translations(language), newstyle=True)
    return env


# --------------------------------------------------------------------------------- render


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    #: The locale the amounts and dates are written in (``de_DE``) and the language of the words.
    locale: str
    language: str


def render(kind: str, context: Mapping, locale: str | None) -> Rendered:
    """Render one e-mail. ``context``: customer_name, shop_name, invoice_number, amount_minor,
    currency, portal_url; by kind: due_at (received, approved), reason (rejected), tenders and
    arrival (paid: an ``expectations.Expectation``), fallback (failed)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    loc = resolve_locale(locale)
    language = language_of(loc)
    gettext = translations(language).gettext
    values = _view(context, loc, gettext)
    values["subject"] = _one_line(gettext(SUBJECTS[kind]) % {
        "invoice": values["invoice_number"], "amount": values["amount"]})
    env = environment(language)
    text = env.get_template(f"{kind}.txt").render(values)
    html = env.get_template(f"{kind}.html").render(values)
    return Rendered(values["subject"], text, html, str(loc), language)


def _view(context: Mapping, loc: Locale, gettext) -> dict:
    """The template's values, formatted: amounts in the customer's locale ``loc``; dates and
    word lists in the locale of the words (``loc`` itself, or ``en_US`` when the customer's
    language has no catalog, so an English e-mail never carries Spanish month names)."""
    words = loc if language_of(loc) == loc.language else Locale.parse(DEFAULT_LOCALE)
    currency = context["currency"]
    arrival = context.get("arrival")
    due = context.get("due_at")
    return {
        "lang": words.language, "customer_name": context.get("customer_name") or "",
        "shop_name": context.get("shop_name") or "", "invoice_number": context["invoice_number"],
        "amount": format_amount(context["amount_minor"], currency, loc),
        "portal_url": context["portal_url"], "reason": context.get("reason") or "",
        "due_date": format_day(due, words) if due else "",
        "tenders": [_tender_text(t, currency, loc, gettext)
                    for t in context.get("tenders") or ()],
        "arrival_state": arrival.state if arrival else "none",
        "earliest": format_day(arrival.earliest, words) if arrival and arrival.earliest else "",
        "latest": format_day(arrival.latest, words) if arrival and arrival.latest else "",
        "fallback": _options_text(fallback_options(context.get("fallback")), words, gettext),
    }


def _options_text(options: list[str], loc: Locale, gettext) -> str:
    """``store credit or a payout by bank transfer …`` in the customer's language."""
    if not options:
        return ""
    return format_list([gettext(FALLBACK_TEXTS[o]) for o in options], style="or", locale=loc)


def _tender_text(tender: Mapping, currency: str, loc: Locale, gettext) -> str:
    amount = format_amount(tender["amount_minor"], currency, loc)
    key = tender["destination"]
    if key == "original_payment":
        key = tender.get("payment_method") or "other"
        if key == "card" and tender.get("card_last4"):
            key = "card_known"
    brand = (tender.get("card_brand") or "").strip()
    return gettext(TENDER_TEXTS.get(key, TENDER_TEXTS["other"])) % {
        "amount": amount, "brand": brand.title() if brand.islower() else brand,
        "last4": tender.get("card_last4") or ""}


def _one_line(value: str) -> str:
    """A header value: no line breaks (they would start a new header). Only line breaks:
    the no-break spaces of ``1.234,56 €`` must stay."""
    return " ".join(part.strip() for part in value.splitlines() if part.strip())
