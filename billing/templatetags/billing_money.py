from django import template

from billing.money import micros_to_usd

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    return "" if micros is None else micros_to_usd(micros)
