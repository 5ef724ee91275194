from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM
from billing.models import Price
from billing.selectors.prices import price_current
from billing.services.prices import InvalidPrice, PriceNotFound, price_quote, price_set
from project.api.errors import domain_error_status

pytestmark = pytest.mark.django_db


def test_seeded_gpt_image_2_price_depends_on_quality_and_size(tenant: Tenant) -> None:
    low = price_quote(tenant=tenant, model_id="openai/gpt-image-2", quality="low", size="1024x1024", n=2)
    high = price_quote(tenant=tenant, model_id="openai/gpt-image-2", quality="high", size="1536x1024", n=1)
    assert (low.unit_cost_micros, low.unit_price_micros, low.estimate_micros) == (6_000, 7_200, 14_400)
    assert (high.unit_cost_micros, high.unit_price_micros) == (165_000, 198_000)  # NOTES: 0.165 at 1536x1024


def test_imagen_has_one_price_for_any_size_and_no_quality(tenant: Tenant) -> None:
    quote = price_quote(
        tenant=tenant, model_id="google/imagen-4.0-fast-generate-001", quality="", size="16:9", n=4
    )
    assert quote.unit_cost_micros == 20_000 and quote.estimate_micros == 4 * 24_000


def test_a_model_without_a_price_is_refused_never_charged_zero(tenant: Tenant) -> None:
    with pytest.raises(PriceNotFound) as caught:
        price_quote(tenant=tenant, model_id="openai/gpt-image-1.5", quality="high", size="1024x1024", n=1)
    assert (domain_error_status(caught.value), caught.value.code, caught.value.param) == (
        400,
        "model_not_priced",
        "model",
    )
    with pytest.raises(PriceNotFound):
        price_quote(tenant=tenant, model_id="openai/gpt-image-2", quality="ultra", size="1024x1024", n=1)


def test_the_most_specific_current_price_wins() -> None:
    price_set(model_id="m/x", quality="*", size="*", cost_micros=100, actor=SYSTEM)
    price_set(model_id="m/x", quality="*", size="2K", cost_micros=200, actor=SYSTEM)
    price_set(model_id="m/x", quality="hd", size="*", cost_micros=300, actor=SYSTEM)
    price_set(model_id="m/x", quality="hd", size="2K", cost_micros=400, actor=SYSTEM)
    assert price_current(model_id="m/x", quality="standard", size="1K").cost_micros == 100
    assert price_current(model_id="m/x", quality="standard", size="2K").cost_micros == 200
    assert price_current(model_id="m/x", quality="hd", size="1K").cost_micros == 300
    assert price_current(model_id="m/x", quality="hd", size="2K").cost_micros == 400


def test_a_new_price_ends_the_previous_one_and_is_audited() -> None:
    first = price_set(model_id="m/y", quality="*", size="*", cost_micros=100, actor=SYSTEM)
    later = timezone.now() + timedelta(hours=1)
    second = price_set(
        model_id="m/y", quality="*", size="*", cost_micros=150, actor=SYSTEM, effective_from=later
    )
    first.refresh_from_db()
    assert first.effective_to == later and second.effective_to is None
    assert price_current(model_id="m/y", quality="", size="1K").cost_micros == 100
    assert price_current(model_id="m/y", quality="", size="1K", at=later).cost_micros == 150
    assert AuditEvent.objects.filter(action="price.set").count() == 2


def test_a_negative_price_is_refused_and_nothing_is_written() -> None:
    with pytest.raises(InvalidPrice) as caught:
        price_set(model_id="m/z", quality="*", size="*", cost_micros=-1, actor=SYSTEM)
    assert (domain_error_status(caught.value), caught.value.code, caught.value.param) == (
        400,
        "invalid_price",
        "cost",
    )
    assert not Price.objects.filter(model_id="m/z").exists()
    assert not AuditEvent.objects.filter(action="price.set").exists()
