from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import InvalidAmount, apply_markup, micros_to_usd, usd_to_micros

micros = st.integers(min_value=-(10**15), max_value=10**15)
costs = st.integers(min_value=0, max_value=10**12)
markups = st.integers(min_value=-10_000, max_value=100_000)


@given(micros)
def test_formatting_then_parsing_gives_back_the_same_micros(amount: int) -> None:
    assert usd_to_micros(micros_to_usd(amount), allow_negative=True) == amount


@given(micros)
def test_formatted_amounts_always_have_exactly_six_decimals(amount: int) -> None:
    whole, _, fraction = micros_to_usd(amount).lstrip("-").partition(".")
    assert len(fraction) == 6 and whole.isdigit() and fraction.isdigit()
    assert Decimal(micros_to_usd(amount)) * 1_000_000 == amount


@given(st.decimals(min_value=0, max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_any_decimal_with_at_most_six_places_parses_exactly(value: Decimal) -> None:
    assert usd_to_micros(value) == value * 1_000_000


@given(st.integers(min_value=1, max_value=10**6))
def test_a_seventh_decimal_is_refused_not_rounded(tail: int) -> None:
    with pytest.raises(InvalidAmount, match="more than 6 decimal places"):
        usd_to_micros(f"0.{tail:07d}" if tail % 10 else f"0.{tail:06d}1")


@pytest.mark.parametrize(
    "value",
    [
        "-0.01",
        "abc",
        "NaN",
        "Infinity",
        "",
        "1e400000000000",
        "1000000000000",
        "0.1000000000000000000000000000001",
    ],
)
def test_negative_and_non_numbers_are_refused(value: str) -> None:
    with pytest.raises(InvalidAmount):
        usd_to_micros(value)


def test_known_values() -> None:
    assert usd_to_micros("0.011") == 11_000
    assert usd_to_micros(" 25 ") == 25_000_000
    assert micros_to_usd(11_000) == "0.011000"
    assert micros_to_usd(-1) == "-0.000001"
    assert micros_to_usd(0) == "0.000000"
    assert apply_markup(11_000, 2000) == 13_200
    assert apply_markup(1, 5000) == 2  # 1.5 rounds half-up
    assert apply_markup(1, 4999) == 1  # 1.4999 rounds down


@given(costs, markups)
def test_markup_is_the_exact_value_rounded_half_up(cost: int, markup: int) -> None:
    exact = Decimal(cost) * (Decimal(10_000 + markup) / Decimal(10_000))
    price = apply_markup(cost, markup)
    assert price == (exact + Decimal("0.5")).to_integral_value(rounding=ROUND_FLOOR)


@given(costs, markups, markups)
def test_a_higher_markup_never_gives_a_lower_price(cost: int, low: int, high: int) -> None:
    low, high = sorted((low, high))
    assert apply_markup(cost, low) <= apply_markup(cost, high)


@given(costs)
def test_zero_markup_sells_at_cost_and_full_discount_is_free(cost: int) -> None:
    assert apply_markup(cost, 0) == cost
    assert apply_markup(cost, -10_000) == 0


@given(costs, st.integers(min_value=0, max_value=100_000), st.integers(min_value=1, max_value=10))
def test_price_for_n_images_is_n_unit_prices(cost: int, markup: int, n: int) -> None:
    # The hold is unit price × n, never the markup of n × cost: a tenant pays the same per image at any n.
    assert apply_markup(cost, markup) * n == n * apply_markup(cost, markup)
    assert apply_markup(cost, markup) >= cost


def test_negative_cost_and_markup_below_free_are_refused() -> None:
    with pytest.raises(InvalidAmount):
        apply_markup(-1, 0)
    with pytest.raises(InvalidAmount):
        apply_markup(100, -10_001)
