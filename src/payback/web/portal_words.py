"""Plain language for the customer portal: statuses, methods, dates, amounts and what a policy
decision means for the customer, in short sentences.

Pure functions: they turn what the refunds service returned (a preview, a refund row, an
``Expectation``) into words; they decide nothing. Amounts and dates are formatted for the
customer's locale with Babel (``payback.money.format_money`` for amounts, so the number of
decimals is ISO 4217's); deadlines are shown as days in the policy's time zone, the time zone the
policy counts them in. An unknown locale falls back to ``en_US`` rather than failing the page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime

from payback.money import format_money
from payback.refunds.expectations import Expectation

STATUS_WORDS = {
    "requested": "Received",
    "pending_approval": "Waiting for the shop's approval",
    "approved": "Approved, about to be paid",
    "processing": "Being paid out",
    "succeeded": "Refunded",
    "failed": "Payment failed: the shop will contact you",
    "rejected": "Declined by the shop",
    "canceled": "Canceled",
}
REASON_WORDS = {
    "requested_by_customer": "Changed my mind",
    "product_defective": "Faulty or damaged",
    "not_as_described": "Not what was described",
    "duplicate": "Charged twice",
    "billing_error": "Charged the wrong amount",
    "fraudulent": "Payment I did not make",
    "goodwill": "Goodwill",
    "other": "Another reason",
}
PAYMENT_WORDS = {"bank_transfer": "the bank account you paid from", "cash": "cash",
                 "store_credit": "your store credit", "other": "the way you paid"}
#: Refusals whose API wording means nothing to a customer: (title, detail) in their words.
FRIENDLY_ERRORS = {
    "idempotency_in_flight": ("Your request is on its way",
                              ("the same form was sent twice at once; open your refund page "
                               "again in a moment to see your request")),
    "idempotency_key_reused": ("This form was already used",
                               "open your refund page again and start a new request"),
}
#: Policy rules that concern the shop's staff, not the customer.
STAFF_RULES = frozenset({"role_limit", "four_eyes"})


@lru_cache(maxsize=64)
def safe_locale(locale: str | None) -> str:
    try:
        return str(Locale.parse(locale or "en_US"))
    except (UnknownLocaleError, ValueError, TypeError):
        return "en_US"


def money(minor: int, currency: str, locale: str) -> str:
    return format_money(minor, currency, safe_locale(locale))


def as_datetime(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def day(value, locale: str, tz: str = "UTC") -> str:
    """A date (or the local day of an instant in ``tz``), e.g. ``29 January 2026``."""
    if isinstance(value, (str, datetime)):
        value = as_datetime(value).astimezone(ZoneInfo(tz)).date()
    return format_date(value, "long", locale=safe_locale(locale))


def moment(value: datetime, locale: str, tz: str = "UTC") -> str:
    """An instant with date and time in the customer's locale, in ``tz``."""
    return format_datetime(value, "long", tzinfo=ZoneInfo(tz), locale=safe_locale(locale))


def utc_moment(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def payment_words(payment: dict | None) -> str:
    """``your Visa card ending 4242``, ``the bank account you paid from``…"""
    if payment is None:
        return "the way you paid"
    if payment["method"] == "card":
        brand = (payment.get("card_brand") or "").replace("_", " ")
        brand = brand.upper() if brand in ("jcb", "amex") else brand.title()
        last4 = payment.get("card_last4")
        return f"your {brand or 'payment'} card ending {last4}" if last4 else "your card"
    return PAYMENT_WORDS.get(payment["method"], "the way you paid")


def destination(method: str, tenders: list[dict], payments: dict[str, dict], currency: str,
                locale: str) -> str:
    """Where the money goes (``back to your Visa card ending 4242``), tender by tender when a
    refund is split over several payments."""
    if method == "store_credit":
        return "as store credit with the shop, to spend on a later order"
    parts = [(t["amount_minor"], "your store credit" if t["destination"] == "store_credit"
              else payment_words(payments.get(t["payment_id"]))) for t in tenders]
    if len(parts) == 1:
        return f"back to {parts[0][1]}"
    if not parts:
        return "back to the way you paid"
    return "back to the ways you paid: " + ", ".join(
        f"{money(amount, currency, locale)} to {where}" for amount, where in parts)


def method_words(method: str, tenders: list[dict], payments: dict[str, dict], currency: str,
                 locale: str) -> str:
    text = destination(method, tenders, payments, currency, locale)
    return text[0].upper() + text[1:] + "."


def expectation_words(exp: Expectation, status: str, locale: str) -> str:
    if exp.state == "arrived":
        return f"Added to your store credit on {day(exp.earliest, locale)}."
    if exp.state == "on_its_way":
        return (f"Sent. Expect it between {day(exp.earliest, locale)} and "
                f"{day(exp.latest, locale)} (banks take a few working days).")
    if exp.state == "due_by":
        return f"Expected by {day(exp.earliest, locale)} at the latest."
    if status in ("rejected", "canceled"):
        return "No money will be sent for this request."
    if status == "failed":
        return "The payment did not go through; the shop will contact you."
    return "No date yet."


def policy_texts(decision: dict) -> list[str]:
    """The policy's own explanations, minus those about the shop's internal approvals."""
    return [e["text"] for e in decision.get("explanations", ()) if e["rule"] not in STAFF_RULES]


def outcome_sentences(preview: dict, payments: dict[str, dict], locale: str,
                      tz: str) -> list[str]:
    """What a previewed refund means for the customer, sentence by sentence."""
    d, cur = preview["decision"], preview["currency"]
    amount, bonus = preview["amount_minor"], d.get("bonus_minor") or 0
    if preview["method"] == "store_credit" and bonus:
        out = [(f"You will get {money(amount + bonus, cur, locale)} in store credit: "
                f"{money(amount, cur, locale)} plus a bonus of {money(bonus, cur, locale)}, "
                "to spend on a later order.")]
    else:
        where = destination(preview["method"], preview["tenders"], payments, cur, locale)
        out = [f"You will get {money(amount, cur, locale)} {where}."]
    if preview.get("fee_minor"):
        fee = money(preview["fee_minor"], cur, locale)
        out.append(f"The shop keeps a restocking fee of {fee}.")
    if preview["method"] == "original_payment" and bonus:
        out.append(f"If you chose store credit instead, you would get "
                   f"{money(amount + bonus, cur, locale)} (a bonus of "
                   f"{money(bonus, cur, locale)}).")
    out += deadline_sentences(d, locale, tz)
    if d["outcome"] == "needs_approval":
        out.append("The shop must approve this request before the money is sent. "
                   "You can follow it with your refund link.")
    elif d["outcome"] == "allow":
        out.append("It is approved as soon as you confirm.")
    return out


def deadline_sentences(decision: dict, locale: str, tz: str) -> list[str]:
    dl = decision.get("deadlines") or {}
    out = []
    if dl.get("return_by"):
        out.append(f"Please send the items back by {day(dl['return_by'], locale, tz)}.")
    if decision.get("due_at"):
        out.append(f"The shop must refund you by {day(decision['due_at'], locale, tz)}.")
    elif decision["outcome"] != "deny":
        out.append("The refund is due once the shop has the items back or your proof of "
                   "sending them.")
    if dl.get("withhold_until"):
        out.append(f"The shop may wait to pay until {day(dl['withhold_until'], locale, tz)}, "
                   "when it has the items back or your proof of sending them.")
    return out


def overview_sentences(preview: dict, payments: dict[str, dict], locale: str,
                       tz: str) -> list[str]:
    """The main page's summary of what the policy allows, from a preview of a full return."""
    d, cur = preview["decision"], preview["currency"]
    amount, bonus = preview["amount_minor"], d.get("bonus_minor") or 0
    where = destination(preview["method"], preview["tenders"], payments, cur, locale)
    out = [f"If you return everything that is left, you get {money(amount, cur, locale)} {where}."]
    if bonus and preview["method"] == "original_payment":
        out.append(f"Or, if you prefer, {money(amount + bonus, cur, locale)} in store credit "
                   f"(a bonus of {money(bonus, cur, locale)}).")
    window = (d.get("deadlines") or {}).get("window_ends_at")
    if window:
        out.append(f"You can return items because you changed your mind until "
                   f"{day(window, locale, tz)}.")
    out += deadline_sentences(d, locale, tz)
    if d["outcome"] == "needs_approval":
        out.append("The shop approves requests like this one before the money is sent.")
    return out
