"""Hypothesis properties of payback.money.

- allocate: parts sum to the amount, each part is within one minor unit of the exact share, and the
  result depends only on the inputs;
- Money addition and subtraction are associative within one currency;
- major-unit text round-trips through ``to_minor`` for exponents 0, 2 and 3;
- mul_div agrees with exact rational arithmetic for amounts a business actually sees.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from payback.money import MAX_MINOR, Money, allocate, exponent, mul_div, to_minor

amounts = st.integers(min_value=-(2**62), max_value=2**62)
weight_lists = st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=30)
# Weights that are mostly zero or small exercise ties and the all-zero even split.
small_weight_lists = st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12)
any_weights = st.one_of(weight_lists, small_weight_lists)


def exact_shares(amount: int, weights: list[int]) -> list[Fraction]:
    total = sum(weights)
    if total == 0:  # allocate's documented even split
        return [Fraction(amount, len(weights))] * len(weights)
    return [Fraction(amount * w, total) for w in weights]


@given(amounts, any_weights)
def test_allocate_parts_sum_to_amount(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == amount
    assert all(type(p) is int for p in parts)


@given(amounts, any_weights)
def test_allocate_parts_are_within_one_unit_of_exact_share(amount: int, weights: list[int]) -> None:
    for part, share in zip(allocate(amount, weights), exact_shares(amount, weights)):
        assert abs(part - share) < 1


@given(amounts, any_weights)
def test_allocate_parts_have_the_sign_of_the_amount(amount: int, weights: list[int]) -> None:
    parts = allocate(amount, weights)
    assert all(p >= 0 for p in parts) if amount >= 0 else all(p <= 0 for p in parts)


@given(amounts, weight_lists)
def test_allocate_zero_weight_gets_nothing(amount: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    for part, weight in zip(allocate(amount, weights), weights):
        if weight == 0:
            assert part == 0


@given(amounts, any_weights)
def test_allocate_is_deterministic(amount: int, weights: list[int]) -> None:
    first = allocate(amount, list(weights))
    assert allocate(amount, list(weights)) == first
    assert allocate(amount, tuple(weights)) == first


@given(amounts, any_weights)
def test_allocate_negative_mirrors_positive(amount: int, weights: list[int]) -> None:
    assert allocate(-amount, weights) == [-p for p in allocate(amount, weights)]


@given(amounts, any_weights)
def test_allocate_does_not_mutate_weights(amount: int, weights: list[int]) -> None:
    before = list(weights)
    allocate(amount, weights)
    assert weights == before


# Bounded so that every intermediate sum stays inside the 64-bit range Money enforces.
bounded = st.integers(min_value=-(2**61), max_value=2**61)
currencies = st.sampled_from(["EUR", "USD", "JPY", "KWD", "BHD", "CLP", "HUF"])


@given(bounded, bounded, bounded, currencies)
def test_money_addition_is_associative(a: int, b: int, c: int, cur: str) -> None:
    x, y, z = Money(a, cur), Money(b, cur), Money(c, cur)
    assert (x + y) + z == x + (y + z) == Money(a + b + c, cur)


@given(bounded, bounded, bounded, currencies)
def test_money_subtraction_associates_with_addition(a: int, b: int, c: int, cur: str) -> None:
    x, y, z = Money(a, cur), Money(b, cur), Money(c, cur)
    assert (x - y) - z == x - (y + z) == Money(a - b - c, cur)
    assert (x + y) - y == x


@given(
    st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR),
    st.sampled_from(["JPY", "CLP", "EUR", "USD", "GBP", "KWD", "BHD", "TND"]),
)
def test_to_minor_round_trips_to_decimal(minor: int, cur: str) -> None:
    m = Money(minor, cur)
    assert exponent(cur) in (0, 2, 3)
    assert to_minor(str(m.to_decimal()), cur) == minor
    assert to_minor(m.to_decimal(), cur) == minor


@given(st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR), currencies)
def test_str_of_money_round_trips(minor: int, cur: str) -> None:
    text, code = str(Money(minor, cur)).split(" ")
    assert code == cur
    assert to_minor(text, code) == minor


def exact_round(value: Fraction, mode: str) -> int:
    floor = value.numerator // value.denominator
    rest = value - floor
    if rest != Fraction(1, 2):
        return floor + (rest > Fraction(1, 2))
    if mode == "half_even":
        return floor + (floor % 2)
    return floor + 1 if value > 0 else floor  # half_up rounds away from zero


@settings(max_examples=300)
@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(min_value=0, max_value=10**6),
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from(["half_up", "half_even"]),
)
def test_mul_div_matches_exact_arithmetic(amount: int, num: int, den: int, mode: str) -> None:
    assert mul_div(amount, num, den, rounding=mode) == exact_round(
        Fraction(amount * num, den), mode
    )
