from django import template

from billing.money import micros_to_dollars

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """An amount on a page: `$1.20` (CSV files and the API keep six-decimal strings)."""
    return "" if micros is None else micros_to_dollars(micros)
