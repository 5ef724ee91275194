"""Token prices and the actual upstream cost of a call from its token usage (`TokenPrice`).

Usage comes in OpenAI's image `usage` shape, which every family keeps on the generation (Gemini's `usageMetadata`
is mapped to it by its adapter): `input_tokens` with `input_tokens_details {text_tokens, image_tokens}`,
`output_tokens` with `output_tokens_details {image_tokens, text_tokens, reasoning_tokens}`.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from billing.models import TokenPrice

TOKENS_PER_PRICE_UNIT = 1_000_000  # token prices are per million tokens


def token_prices_in_effect(*, model_ids: Iterable[str], at: datetime | None = None) -> dict[str, TokenPrice]:
    """The token price in effect at `at` (default now) of each model that has one, in one query."""
    at = at or timezone.now()
    rows = TokenPrice.objects.filter(
        Q(effective_to__isnull=True) | Q(effective_to__gt=at), model_id__in=set(model_ids), effective_from__lte=at
    ).order_by("model_id", "effective_from")
    return {row.model_id: row for row in rows}  # the latest start wins


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_cost_micros(*, usage: dict[str, Any] | None, price: TokenPrice | None) -> int | None:
    """The call's upstream cost in micro-USD (half-up to a whole micro), or None when it cannot be known: no price,
    no usage, or counts that do not add up to a split we can price.

    Input without `input_tokens_details` is priced as text (a generation's prompt; every gpt-image answer seen
    carries the details). Output without `output_tokens_details` is priced as image output (OpenAI: a GPT image
    model's output tokens are image tokens, the details often absent); with them, text and reasoning (thinking)
    tokens are priced as text output."""
    if price is None or not isinstance(usage, dict):
        return None
    input_total, output_total = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if input_total is None or output_total is None:
        return None
    in_details = usage.get("input_tokens_details")
    if isinstance(in_details, dict):
        text_in, image_in = _count(in_details.get("text_tokens", 0)), _count(in_details.get("image_tokens", 0))
        if text_in is None or image_in is None or text_in + image_in != input_total:
            return None
    else:
        text_in, image_in = input_total, 0
    out_details = usage.get("output_tokens_details")
    if isinstance(out_details, dict):
        parts = [_count(out_details.get(name, 0)) for name in ("image_tokens", "text_tokens", "reasoning_tokens")]
        if None in parts or sum(parts) != output_total:  # type: ignore[arg-type]
            return None
        image_out, text_out = parts[0], parts[1] + parts[2]  # type: ignore[operator]
    else:
        image_out, text_out = output_total, 0
    total = (
        text_in * price.text_input_micros
        + image_in * price.image_input_micros
        + text_out * price.text_output_micros
        + image_out * price.image_output_micros
    )
    return (total + TOKENS_PER_PRICE_UNIT // 2) // TOKENS_PER_PRICE_UNIT
