"""Unit tests of payback.money: currencies, Money, rounding, allocation, parsing and display.

Expected values are exact. Display strings are the real output of the pinned Babel/CLDR data,
including its non-breaking spaces (U+00A0, U+202F), so they are written as escapes.

"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation

import pytest

from payback.errors import (
    Conflict,
    CurrencyMismatch,
    DomainError,
    InvalidAmount,
    UnknownCurrency,
    ValidationFailed,
)
from payback.money import (
    MAX_MINOR,
    ROUNDING_MODES,
    Money,
    allocate,
    check_minor,
    exponent,
    format_money,
    mul_div,
    normalise_currency,
    round_minor,
    to_minor,
)

NBSP = "\u00a0"  # no-break space (de_DE, hu_HU, fr_FR before the symbol)
NNBSP = "\u202f"  # narrow no-break space (fr_FR group separator)


# --- currencies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "digits"),
    [
        ("JPY", 0),
        ("EUR", 2),
        ("KWD", 3),
        ("USD", 2),
        ("GBP", 2),
        ("HUF", 2),  # ISO 4217 says 2; CLDR (Babel) displays 0. We bill by ISO.
        ("CLP", 0),
        ("BHD", 3),
        ("ISK", 0),
        ("TND", 3),
        ("CLF", 4),
    ],
)
def test_exponent_is_iso_4217_minor_unit(code: str, digits: int) -> None:
    assert exponent(code) == digits


def test_exponent_is_not_taken_from_cldr() -> None:
    from babel.numbers import get_currency_precision

    # The reason the iso4217 package exists in our dependencies: CLDR disagrees for HUF.
    assert get_currency_precision("HUF") == 0
    assert exponent("HUF") == 2


def test_exponent_accepts_lower_case() -> None:
    assert exponent("kwd") == 3


@pytest.mark.parametrize("code", ["XXX", "XAU", "XTS", "XDR"])
def test_exponent_refuses_codes_without_minor_unit(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        exponent(code)


@pytest.mark.parametrize("code", ["ZZZ", "ABC", "XXXX"])
def test_exponent_refuses_unknown_codes(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        exponent(code)


@pytest.mark.parametrize(("given", "expected"), [("eur", "EUR"), ("Usd", "USD"), ("JPY", "JPY")])
def test_normalise_currency_upper_cases(given: str, expected: str) -> None:
    assert normalise_currency(given) == expected


@pytest.mark.parametrize(
    "bad", ["XXXX", "ZZZ", 12, None, "", "EU", "E1R", "978", " EUR", "€€€", b"EUR", 3.0]
)
def test_normalise_currency_refuses(bad: object) -> None:
    with pytest.raises(UnknownCurrency):
        normalise_currency(bad)


def test_unknown_currency_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as info:
        normalise_currency("ZZZ")
    assert info.value.code == "unknown_currency"
    assert info.value.status == 422


def test_normalise_currency_refuses_unhashable_input_with_domain_error() -> None:
    with pytest.raises(UnknownCurrency):
        normalise_currency(["EUR"])


@pytest.mark.parametrize("spoof", ["u\u017fd", "\u0131nr"])  # 'uſd' -> 'USD', 'ınr' -> 'INR'
def test_normalise_currency_refuses_non_ascii_lookalikes(spoof: str) -> None:
    with pytest.raises(UnknownCurrency):
        normalise_currency(spoof)


# --- check_minor -----------------------------------------------------------------------------


def test_check_minor_returns_the_int() -> None:
    assert check_minor(0) == 0
    assert check_minor(MAX_MINOR) == MAX_MINOR
    assert check_minor(-5, allow_negative=True) == -5


@pytest.mark.parametrize("bad", [1.0, 0.5, True, False, "100", Decimal(1), None])
def test_check_minor_refuses_non_int(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        check_minor(bad)


def test_check_minor_sign_and_zero_rules() -> None:
    with pytest.raises(InvalidAmount):
        check_minor(-1)
    with pytest.raises(InvalidAmount):
        check_minor(0, allow_zero=False)
    with pytest.raises(InvalidAmount):
        check_minor(MAX_MINOR + 1)


# --- Money construction ----------------------------------------------------------------------


def test_max_minor_is_signed_64_bit() -> None:
    assert MAX_MINOR == 2**63 - 1


def test_money_normalises_currency() -> None:
    m = Money(100, "eur")
    assert m.currency == "EUR"
    assert m == Money(100, "EUR")
    assert hash(m) == hash(Money(100, "EUR"))


def test_money_allows_negative_and_zero() -> None:
    assert Money(-1, "EUR").minor == -1
    assert Money.zero("JPY") == Money(0, "JPY")


@pytest.mark.parametrize("bad", [1.0, 12.34, float("nan"), True, False, "100", Decimal(1), None])
def test_money_refuses_non_int_minor(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(bad, "EUR")  # type: ignore[arg-type]


def test_money_bounds_are_64_bit() -> None:
    assert Money(MAX_MINOR, "EUR").minor == MAX_MINOR
    assert Money(-MAX_MINOR, "EUR").minor == -MAX_MINOR
    with pytest.raises(InvalidAmount):
        Money(MAX_MINOR + 1, "EUR")
    with pytest.raises(InvalidAmount):
        Money(-(MAX_MINOR + 1), "EUR")


def test_invalid_amount_code() -> None:
    with pytest.raises(DomainError) as info:
        Money(1.5, "EUR")  # type: ignore[arg-type]
    assert info.value.code == "invalid_amount"
    assert info.value.status == 422


@pytest.mark.parametrize("bad", ["ZZZ", "EURO", "", None])
def test_money_refuses_unknown_currency(bad: object) -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["XXX", "XAU"])
def test_money_refuses_currency_without_minor_unit(code: str) -> None:
    with pytest.raises(UnknownCurrency):
        Money(1, code)


def test_money_is_immutable() -> None:
    m = Money(1, "EUR")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.minor = 2  # type: ignore[misc]


# --- Money arithmetic ------------------------------------------------------------------------


def test_add_sub_neg_same_currency() -> None:
    a, b = Money(1050, "EUR"), Money(-75, "EUR")
    assert a + b == Money(975, "EUR")
    assert a - b == Money(1125, "EUR")
    assert -a == Money(-1050, "EUR")


def test_comparisons_same_currency() -> None:
    small, big = Money(1, "USD"), Money(2, "USD")
    assert small < big and small <= big and big > small and big >= small
    assert small <= Money(1, "USD") and small >= Money(1, "USD")


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_arithmetic_across_currencies_raises(op) -> None:
    with pytest.raises(CurrencyMismatch) as info:
        op(Money(100, "EUR"), Money(100, "USD"))
    assert isinstance(info.value, Conflict)
    assert info.value.code == "currency_mismatch"


def test_equality_across_currencies_is_false_not_an_error() -> None:
    assert Money(100, "EUR") != Money(100, "USD")


def test_combining_with_non_money_is_type_error() -> None:
    with pytest.raises(TypeError):
        Money(100, "EUR") + 1  # type: ignore[operator]


def test_add_overflow_is_refused() -> None:
    with pytest.raises(InvalidAmount):
        Money(MAX_MINOR, "EUR") + Money(1, "EUR")


def test_multiply_by_int() -> None:
    assert Money(250, "EUR") * 3 == Money(750, "EUR")
    assert Money(250, "EUR") * -1 == Money(-250, "EUR")


@pytest.mark.parametrize("factor", [1.5, 2.0, Decimal(2), True, "2"])
def test_multiply_by_non_int_raises_type_error(factor: object) -> None:
    with pytest.raises(TypeError):
        Money(100, "EUR") * factor  # type: ignore[operator]


# --- scale / round_minor / mul_div ----------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "rate", "half_up", "half_even"),
    [
        (5, "0.5", 3, 2),  # 2.5
        (7, "0.5", 4, 4),  # 3.5
        (1, "0.5", 1, 0),  # 0.5
        (-5, "0.5", -3, -2),  # -2.5: half_up rounds away from zero (decimal.ROUND_HALF_UP)
        (1999, "0.25", 500, 500),  # 499.75
        (10, "0.05", 1, 0),  # 0.5
        (1000, "0.19", 190, 190),  # exact
    ],
)
def test_scale_half_up_vs_half_even(minor: int, rate: str, half_up: int, half_even: int) -> None:
    m = Money(minor, "EUR")
    assert m.scale(Decimal(rate), rounding="half_up") == Money(half_up, "EUR")
    assert m.scale(Decimal(rate), rounding="half_even") == Money(half_even, "EUR")


def test_scale_requires_rounding_argument() -> None:
    with pytest.raises(TypeError):
        Money(5, "EUR").scale(Decimal("0.5"))  # type: ignore[call-arg]


def test_scale_refuses_float_rate() -> None:
    with pytest.raises(TypeError):
        Money(5, "EUR").scale(0.5, rounding="half_up")  # type: ignore[arg-type]


def test_scale_rounds_once_for_large_amounts() -> None:
    # exact product 1000000000000000000.4999999999 must round down under half_up
    rate = Decimal("1.0000000000000000004999999999")
    assert Money(10**18, "EUR").scale(rate, rounding="half_up") == Money(10**18, "EUR")


@pytest.mark.parametrize(
    ("value", "mode", "expected"),
    [
        ("2.5", "half_up", 3),
        ("2.5", "half_even", 2),
        ("3.5", "half_even", 4),
        ("-2.5", "half_up", -3),
        ("-2.5", "half_even", -2),
        ("2.4999", "half_up", 2),
        ("2.5001", "half_even", 3),
        ("0", "half_up", 0),
    ],
)
def test_round_minor(value: str, mode: str, expected: int) -> None:
    result = round_minor(Decimal(value), rounding=mode)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("mode", ["HALF_UP", "down", "ceiling", "", None])
def test_round_minor_refuses_unknown_mode(mode: object) -> None:
    with pytest.raises(ValueError, match="unknown rounding mode"):
        round_minor(Decimal("1.5"), rounding=mode)  # type: ignore[arg-type]


def test_round_minor_mode_is_keyword_only_and_required() -> None:
    with pytest.raises(TypeError):
        round_minor(Decimal("1.5"), "half_up")  # type: ignore[misc]
    with pytest.raises(TypeError):
        round_minor(Decimal("1.5"))  # type: ignore[call-arg]


def test_rounding_modes_are_the_two_documented() -> None:
    assert set(ROUNDING_MODES) == {"half_up", "half_even"}


@pytest.mark.parametrize(
    ("amount", "num", "den", "mode", "expected"),
    [
        (100, 1, 3, "half_up", 33),
        (200, 1, 3, "half_up", 67),
        (1000, 19, 119, "half_even", 160),  # 159.66… (VAT part of a gross 19% price)
        (5, 1, 2, "half_up", 3),
        (5, 1, 2, "half_even", 2),
        (-5, 1, 2, "half_up", -3),
        (7, 0, 9, "half_up", 0),
        (10**18, 3, 3, "half_even", 10**18),
        (MAX_MINOR, 1, 1, "half_up", MAX_MINOR),
        (2**62 - 1, 3, 2, "half_even", 6917529027641081854),  # exact .5 on a 19-digit result
    ],
)
def test_mul_div_exact(amount: int, num: int, den: int, mode: str, expected: int) -> None:
    result = mul_div(amount, num, den, rounding=mode)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize("den", [0, -1])
def test_mul_div_refuses_non_positive_denominator(den: int) -> None:
    with pytest.raises(ValueError):
        mul_div(100, 1, den, rounding="half_up")


def test_mul_div_rounds_once_for_large_operands() -> None:
    # exact value 10**18 + 10**18 / (2*10**18 + 1) = 10**18 + 0.49999999999999999975…
    assert mul_div(10**18, 2 * 10**18 + 2, 2 * 10**18 + 1, rounding="half_up") == 10**18


# --- allocate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "weights", "expected"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (100, [1], [100]),
        (100, [1, 0], [100, 0]),
        (5, [0, 0], [3, 2]),  # all weights zero: even split, earliest gets the extra unit
        (0, [1, 2, 3], [0, 0, 0]),
        (0, [0, 0], [0, 0]),
        (-100, [1, 1, 1], [-34, -33, -33]),  # negative mirrors positive
        (-5, [0, 0], [-3, -2]),
        (10, [3, 7], [3, 7]),
        (1, [1, 1, 1], [1, 0, 0]),
        (2, [1, 1, 1], [1, 1, 0]),
        (100, [2, 1], [67, 33]),
        (1000, [1, 2, 3, 4], [100, 200, 300, 400]),
        (7, [10, 20, 30], [1, 2, 4]),  # 1.1666 / 2.333 / 3.5 -> largest remainder to the 3.5
        (101, [50, 50], [51, 50]),
    ],
)
def test_allocate(amount: int, weights: list[int], expected: list[int]) -> None:
    parts = allocate(amount, weights)
    assert parts == expected
    assert sum(parts) == amount


def test_allocate_largest_remainder_not_first_come() -> None:
    # exact shares 0.4, 0.6 of 1 unit: the unit goes to the larger remainder
    assert allocate(1, [2, 3]) == [0, 1]


def test_allocate_huge_amount_is_exact() -> None:
    parts = allocate(MAX_MINOR, [1, 1, 1])
    assert sum(parts) == MAX_MINOR
    assert parts == [3074457345618258603, 3074457345618258602, 3074457345618258602]


@pytest.mark.parametrize(
    "weights",
    [[], [1, -1], [1.5, 1], [1, "2"], [Decimal(1), 1], [None]],
)
def test_allocate_validates_weights(weights: list) -> None:
    with pytest.raises(ValueError):
        allocate(100, weights)


def test_money_allocate_keeps_currency() -> None:
    parts = Money(1000, "JPY").allocate([1, 1, 1])
    assert parts == [Money(334, "JPY"), Money(333, "JPY"), Money(333, "JPY")]


# --- to_minor / to_decimal / str -------------------------------------------------------------


@pytest.mark.parametrize(
    ("major", "currency", "expected"),
    [
        ("12.34", "EUR", 1234),
        ("12.3", "EUR", 1230),
        ("12", "EUR", 1200),
        ("12.340", "EUR", 1234),  # trailing zeros are not extra precision
        ("-12.34", "EUR", -1234),
        ("0.01", "USD", 1),
        ("0", "USD", 0),
        ("1234", "JPY", 1234),
        ("1234.0", "JPY", 1234),
        ("1.234", "KWD", 1234),
        ("0.001", "BHD", 1),
        ("1e2", "EUR", 10000),
        (Decimal("99.99"), "GBP", 9999),
        ("92233720368547758.07", "EUR", MAX_MINOR),
    ],
)
def test_to_minor(major: str | Decimal, currency: str, expected: int) -> None:
    result = to_minor(major, currency)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("major", "currency"),
    [("1.5", "JPY"), ("12.345", "EUR"), ("1.2345", "KWD"), ("0.001", "USD"), ("NaN", "EUR")],
)
def test_to_minor_refuses_excess_precision(major: str, currency: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(major, currency)


def test_to_minor_refuses_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        to_minor("1.00", "ZZZ")


def test_to_minor_refuses_float() -> None:
    with pytest.raises((InvalidAmount, TypeError)):
        to_minor(1.5, "EUR")  # type: ignore[arg-type]


def test_to_minor_refuses_amount_beyond_bigint() -> None:
    with pytest.raises(InvalidAmount):
        to_minor("1e30", "EUR")


@pytest.mark.parametrize("junk", ["Infinity", "-Infinity", "abc", "", "1,50"])
def test_to_minor_refuses_non_numbers_with_domain_error(junk: str) -> None:
    with pytest.raises(InvalidAmount):
        to_minor(junk, "EUR")


def test_to_minor_junk_currently_raises_something() -> None:
    # Whatever the fix, junk must never turn into an amount.
    for junk in ["Infinity", "abc", "1,50"]:
        with pytest.raises((InvalidAmount, InvalidOperation, OverflowError)):
            to_minor(junk, "EUR")


@pytest.mark.parametrize(
    ("minor", "currency", "decimal", "text"),
    [
        (12345, "EUR", "123.45", "123.45 EUR"),
        (5, "EUR", "0.05", "0.05 EUR"),
        (-5, "USD", "-0.05", "-0.05 USD"),
        (0, "EUR", "0.00", "0.00 EUR"),
        (1234, "JPY", "1234", "1234 JPY"),
        (1234, "KWD", "1.234", "1.234 KWD"),
        (1000, "KWD", "1.000", "1.000 KWD"),
        (123456, "HUF", "1234.56", "1234.56 HUF"),
    ],
)
def test_to_decimal_and_str(minor: int, currency: str, decimal: str, text: str) -> None:
    m = Money(minor, currency)
    assert m.to_decimal() == Decimal(decimal)
    assert str(m.to_decimal()) == decimal
    assert str(m) == text


# --- format_money ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "expected"),
    [
        (123456, "EUR", "de_DE", f"1.234,56{NBSP}€"),
        (123456, "USD", "en_US", "$1,234.56"),
        (-123456, "USD", "en_US", "-$1,234.56"),
        (5, "USD", "en_US", "$0.05"),
        (100, "EUR", "en_US", "€1.00"),
        (0, "EUR", "de_DE", f"0,00{NBSP}€"),
        (123400, "EUR", "fr_FR", f"1{NNBSP}234,00{NBSP}€"),
        (123456, "GBP", "en_GB", "£1,234.56"),
        (123456, "CHF", "de_CH", f"CHF{NBSP}1'234.56"),
        (1234, "KWD", "en_US", "KWD1.234"),  # three decimals, ISO 4217
        (1234, "BHD", "en_US", "BHD1.234"),
        (123456, "HUF", "hu_HU", f"1{NBSP}234,56{NBSP}Ft"),  # ISO 2 decimals, not CLDR's 0
        (12345678901, "INR", "en_IN", "₹12,34,56,789.01"),
    ],
)
def test_format_money(minor: int, currency: str, locale: str, expected: str) -> None:
    assert format_money(minor, currency, locale) == expected


def test_format_money_default_locale_is_en_us() -> None:
    assert format_money(123456, "USD") == "$1,234.56"
    assert Money(123456, "USD").format() == "$1,234.56"


def test_money_format_delegates_to_format_money() -> None:
    assert Money(123456, "EUR").format("de_DE") == f"1.234,56{NBSP}€"


def test_format_money_de_de_contains_grouping_and_symbol() -> None:
    text = format_money(123456, "EUR", "de_DE")
    assert "1.234,56" in text and "€" in text


def test_format_money_jpy_symbol_and_grouping() -> None:
    # The exact string (no decimals) is asserted in test_format_money_shows_exactly_the_iso_exponent.
    assert format_money(1234, "JPY", "en_US").startswith("¥1,234")


# The locale's pattern (#,##0.00) forces at least two decimals and decimal_quantization=False
# drops trailing zeros beyond two, so the ISO exponent is not what is displayed.
@pytest.mark.parametrize(
    ("minor", "currency", "locale", "expected"),
    [
        (1234, "JPY", "en_US", "¥1,234"),
        (1234, "JPY", "ja_JP", "￥1,234"),
        (1234, "CLP", "es_CL", "$1.234"),
        (1000, "KWD", "en_US", "KWD1.000"),
        (10, "KWD", "en_US", "KWD0.010"),
        (10000, "CLF", "en_US", "CLF1.0000"),
    ],
)
def test_format_money_shows_exactly_the_iso_exponent(
    minor: int, currency: str, locale: str, expected: str
) -> None:
    assert format_money(minor, currency, locale) == expected
