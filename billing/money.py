"""Integer micro-USD arithmetic. Pure functions, no floats.

All amounts inside the system are `int` micro-USD (1 USD = 1 000 000 micros). Decimal strings exist only at the
edges: parsing operator or API input (`usd_to_micros`) and showing amounts (`micros_to_usd`, always six decimals,
so `"0.011000"`, never `"0.011"` or `"1.1e-2"`).
"""

from decimal import ROUND_DOWN, Decimal, InvalidOperation

MICROS_PER_USD = 1_000_000
BASIS_POINTS = 10_000
# Far beyond any real amount, and keeps micros well inside a 64-bit BigIntegerField.
MAX_USD = Decimal(10) ** 12
ONE_MICRO = Decimal("0.000001")


class InvalidAmount(ValueError):
    pass


def usd_to_micros(value: str | Decimal, *, allow_negative: bool = False) -> int:
    """Parse a decimal USD amount exactly. More than 6 decimals is refused rather than rounded: a price typed
    by an operator or sent by a client must mean exactly what it says."""
    if isinstance(value, bool) or not isinstance(value, (str, Decimal)):
        raise InvalidAmount(f"Expected a decimal string, got {type(value).__name__}.")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation as exc:
        raise InvalidAmount(f"'{value}' is not a decimal amount.") from exc
    if not amount.is_finite():
        raise InvalidAmount(f"'{value}' is not a finite amount.")
    if amount < 0 and not allow_negative:
        raise InvalidAmount(f"'{value}' is negative.")
    if amount.copy_abs() >= MAX_USD:
        raise InvalidAmount(f"'{value}' is too large.")
    # Exact comparison: with the magnitude bounded, quantizing needs at most 18 digits, well within precision.
    whole_micros = amount.quantize(ONE_MICRO, rounding=ROUND_DOWN)
    if whole_micros != amount:
        raise InvalidAmount(f"'{value}' has more than 6 decimal places.")
    return int(whole_micros.scaleb(6))


def micros_to_usd(micros: int) -> str:
    """`11000` → `"0.011000"`, `-1` → `"-0.000001"`."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise InvalidAmount(f"Expected integer micros, got {type(micros).__name__}.")
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}{whole}.{fraction:06d}"


def apply_markup(cost_micros: int, markup_bps: int) -> int:
    """Tenant price for an upstream cost: `cost × (1 + markup_bps / 10 000)`, rounded half-up to a whole micro.

    Markup is *added* basis points: 2 000 bps sells a 0.011000 cost at 0.013200; 0 sells at cost; a negative
    markup (down to −10 000, i.e. free) is a discount. Half-up on a non-negative exact fraction is
    `(numerator + denominator // 2) // denominator`, which never needs floats.
    """
    if cost_micros < 0:
        raise InvalidAmount("A cost cannot be negative.")
    if markup_bps < -BASIS_POINTS:
        raise InvalidAmount("A markup below -10000 bps would make the price negative.")
    numerator = cost_micros * (BASIS_POINTS + markup_bps)
    return (numerator + BASIS_POINTS // 2) // BASIS_POINTS


def micros_to_dollars(micros: int) -> str:
    """For people: `1_203_800` → `"$1.20"`, `-500_000` → `"−$0.50"`; amounts under a dollar keep the digits that
    matter (`13_200` → `"$0.0132"`, a unit price), never fewer than two. CSV and the API keep `micros_to_usd`."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise InvalidAmount(f"Expected integer micros, got {type(micros).__name__}.")
    sign = "−" if micros < 0 else ""
    magnitude = abs(micros)
    if magnitude >= MICROS_PER_USD:
        cents = (magnitude + 5_000) // 10_000  # half-up to the cent
        return f"{sign}${cents // 100:,}.{cents % 100:02d}"
    fraction = f"{magnitude:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}$0.{fraction}"
