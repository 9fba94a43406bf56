"""Money: integer minor units plus an ISO 4217 currency code.

Invariants kept here:
- an amount is always a Python ``int`` in the currency's minor units; ``float`` is refused outright;
- the exponent of a currency comes from the ISO 4217 table shipped by the ``iso4217`` package
  (JPY 0, EUR 2, KWD 3), never from a guess;
- arithmetic between two currencies raises ``CurrencyMismatch``;
- ``Decimal`` appears only for rates; turning a ``Decimal`` into minor units happens in exactly one
  function, ``round_minor``, whose rounding mode is a required argument;
- ``allocate`` splits by largest remainder, so the parts always sum to the whole.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Sequence

import iso4217
from babel import Locale
from babel.numbers import parse_pattern

from payback.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

# Rounding modes we accept by name (settings, policy files, API) mapped to decimal's constants.
ROUNDING_MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN}

#: Largest amount we store: PostgreSQL BIGINT and SQLite INTEGER are both signed 64-bit.
MAX_MINOR = 2**63 - 1


@lru_cache(maxsize=None)
def exponent(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (JPY 0, EUR 2, KWD 3)."""
    return int(iso4217.Currency(normalise_currency(currency)).exponent)


def normalise_currency(currency: object) -> str:
    """Return the upper-case ISO 4217 code, or raise ``UnknownCurrency``."""
    if not isinstance(currency, str):
        raise UnknownCurrency(f"{currency!r} is not an ISO 4217 currency code")
    return _normalise(currency)


@lru_cache(maxsize=512)
def _normalise(currency: str) -> str:
    # ASCII only: "uſd".upper() is "USD", and look-alikes must not pass as real codes.
    if len(currency) != 3 or not (currency.isascii() and currency.isalpha()):
        raise UnknownCurrency(f"{currency!r} is not an ISO 4217 currency code")
    code = currency.upper()
    try:
        minor_unit = iso4217.Currency(code).exponent
    except ValueError:
        raise UnknownCurrency(f"{code} is not an ISO 4217 currency code") from None
    # Gold, SDR, the testing code XXX and the like have no minor unit: they are not money we bill.
    if minor_unit is None:
        raise UnknownCurrency(f"{code} has no minor unit in ISO 4217 and cannot be billed")
    return code


def check_minor(amount: object, *, allow_zero: bool = True, allow_negative: bool = False) -> int:
    """Validate an amount in minor units: a real ``int`` (not bool, not float) within 64 bits."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"amount must be an integer number of minor units, got {amount!r}")
    if abs(amount) > MAX_MINOR:
        raise InvalidAmount("amount is too large")
    if amount < 0 and not allow_negative:
        raise InvalidAmount("amount must not be negative")
    if amount == 0 and not allow_zero:
        raise InvalidAmount("amount must be greater than zero")
    return amount


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of one currency. Immutable; arithmetic keeps the currency."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        check_minor(self.minor, allow_negative=True)
        object.__setattr__(self, "currency", normalise_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._same(other)
        return self.minor >= other.minor

    def __mul__(self, other: object) -> Money:
        # Multiplying by a rate needs a rounding decision; make the caller take it explicitly.
        if isinstance(other, int) and not isinstance(other, bool):
            return Money(self.minor * other, self.currency)
        raise TypeError("multiply Money by an int only; use Money.scale(rate, rounding=...)")

    def scale(self, rate: Decimal, *, rounding: str) -> Money:
        """Multiply by a ``Decimal`` rate and round to minor units with an explicit mode."""
        if not isinstance(rate, Decimal):
            raise TypeError("rate must be a Decimal (never a float)")
        numerator, denominator = rate.as_integer_ratio()
        return Money(mul_div(self.minor, numerator, denominator, rounding=rounding),
                     self.currency)

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        return [Money(part, self.currency) for part in allocate(self.minor, weights)]

    def to_decimal(self) -> Decimal:
        """The amount in major units, exact (e.g. 12345 EUR → Decimal('123.45'))."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self, locale: str = "en_US") -> str:
        return format_money(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.to_decimal():.{exponent(self.currency)}f} {self.currency}"


def round_minor(value: Decimal, *, rounding: str) -> int:
    """The one place a ``Decimal`` becomes minor units. ``rounding`` is 'half_up' or 'half_even'."""
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    if not value.is_finite():
        raise InvalidAmount(f"{value} is not a finite amount")
    numerator, denominator = value.as_integer_ratio()
    # Exact for any size: Decimal.quantize would overflow its 28-digit context on huge values.
    return mul_div(numerator, 1, denominator, rounding=rounding)


def mul_div(amount: int, numerator: int, denominator: int, *, rounding: str) -> int:
    """``amount * numerator / denominator`` rounded once, exactly, in integer arithmetic
    (``Decimal`` keeps only 28 digits, which would round twice on very large values)."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    if rounding not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    product = amount * numerator
    sign = -1 if product < 0 else 1
    quotient, remainder = divmod(abs(product), denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and
                               (rounding == "half_up" or quotient % 2 == 1)):
        quotient += 1
    return sign * quotient


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split ``amount`` in proportion to non-negative integer ``weights`` by largest remainder.

    The parts always sum to ``amount``. Ties in the remainder go to the earliest weight, so the
    result is deterministic. With all weights zero the amount is split evenly.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any((not isinstance(w, int)) or w < 0 for w in weights):
        raise ValueError("weights must be non-negative integers")
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(weights), len(weights)
    sign = -1 if amount < 0 else 1
    magnitude = abs(amount)
    floors = [magnitude * w // total for w in weights]
    remainders = [magnitude * w % total for w in weights]
    leftover = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return [sign * part for part in floors]


def to_minor(major: Decimal | str, currency: str) -> int:
    """Parse an exact major-unit amount ('12.34') into minor units; refuses excess precision,
    floats, non-numbers and amounts beyond 64 bits."""
    if not isinstance(major, (Decimal, str)):
        raise InvalidAmount(f"give the amount as a decimal string, not {type(major).__name__}")
    try:
        value = Decimal(major)
    except ArithmeticError:
        raise InvalidAmount(f"{major!r} is not a number") from None
    if not value.is_finite():
        raise InvalidAmount(f"{major!r} is not a finite amount")
    numerator, denominator = value.scaleb(exponent(currency)).as_integer_ratio()
    if denominator != 1:
        raise InvalidAmount(f"{major} has more decimals than {currency} allows")
    return check_minor(numerator, allow_negative=True)


def format_money(minor: int, currency: str, locale: str = "en_US") -> str:
    """Locale-aware display, with the ISO 4217 number of decimals (Babel/CLDR for symbols)."""
    digits = exponent(currency)
    loc = Locale.parse(locale)
    pattern = copy.copy(parse_pattern(loc.currency_formats["standard"]))
    pattern.frac_prec = (digits, digits)  # the ISO 4217 exponent, not the locale's default
    return pattern.apply(Decimal(minor).scaleb(-digits), loc, currency=currency,
                         currency_digits=False)
