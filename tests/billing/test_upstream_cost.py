"""The actual upstream cost: token usage × token prices, booked by a capture, and the drift check's warnings."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AuditEvent, Tenant, User
from accounts.services import SYSTEM
from billing.models import LedgerEntry, TokenPrice
from billing.selectors.drift import upstream_cost_drifts
from billing.selectors.token_prices import token_prices_in_effect, usage_cost_micros
from billing.services.ledger import Capture, billing_capture_many
from billing.services.token_prices import InvalidTokenPrice, token_price_set

pytestmark = pytest.mark.django_db

GPT = "openai/gpt-image-2"


def _price(**micros: int) -> TokenPrice:
    return TokenPrice(model_id=GPT, **micros)


GPT_PRICE = dict(text_input_micros=5_000_000, image_input_micros=8_000_000, image_output_micros=30_000_000)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        # gpt-image-2, a text prompt: 12 × 5 + 4160 × 30 (per token, in micro-USD)
        ({"input_tokens": 12, "output_tokens": 4160, "input_tokens_details": {"text_tokens": 12, "image_tokens": 0},
          "output_tokens_details": {"image_tokens": 4160, "text_tokens": 0}}, 60 + 124_800),
        # an edit: 1024 input image tokens at 8
        ({"input_tokens": 1036, "output_tokens": 4160, "input_tokens_details": {"text_tokens": 12, "image_tokens": 1024},
          "output_tokens_details": {"image_tokens": 4160}}, 60 + 8_192 + 124_800),
        # no output details: a GPT image model's output tokens are image tokens
        ({"input_tokens": 1, "output_tokens": 100, "input_tokens_details": {"text_tokens": 1, "image_tokens": 0}},
         5 + 3_000),
        # no input details: the prompt's tokens are text
        ({"input_tokens": 1, "output_tokens": 0}, 5),
        # details that do not add up to the totals: unknown, not guessed
        ({"input_tokens": 10, "output_tokens": 4160, "input_tokens_details": {"text_tokens": 3, "image_tokens": 0}},
         None),
        ({"input_tokens": 1, "output_tokens": 10, "output_tokens_details": {"image_tokens": 4, "text_tokens": 1}}, None),
        ({"output_tokens": 10}, None),
        (None, None),
    ],
)
def test_usage_cost_is_token_counts_times_token_prices(usage, expected) -> None:
    assert usage_cost_micros(usage=usage, price=_price(**GPT_PRICE)) == expected


def test_gemini_usage_prices_thinking_as_text_output_and_rounds_half_up() -> None:
    usage = {  # Gemini's usageMetadata as the adapter maps it
        "input_tokens": 3, "output_tokens": 1309, "total_tokens": 1312,
        "input_tokens_details": {"text_tokens": 3},
        "output_tokens_details": {"image_tokens": 1120, "text_tokens": 9, "reasoning_tokens": 180},
    }
    price = _price(image_output_micros=120_000_000, text_output_micros=12_500_000, text_input_micros=2_000_000)
    # 1120 × 120 + 189 × 12.5 + 3 × 2 = 134 400 + 2 362.5 + 6 → half up
    assert usage_cost_micros(usage=usage, price=price) == 136_769
    assert usage_cost_micros(usage=usage, price=None) is None


def test_token_prices_are_effective_dated_and_audited() -> None:
    first = token_price_set(model_id=GPT, text_input_micros=5_000_000, image_output_micros=30_000_000, actor=SYSTEM)
    later = token_price_set(
        model_id=GPT, image_output_micros=40_000_000, actor=SYSTEM, effective_from=timezone.now() + timedelta(days=1)
    )
    assert token_prices_in_effect(model_ids=[GPT])[GPT].pk == first.pk
    assert token_prices_in_effect(model_ids=[GPT], at=timezone.now() + timedelta(days=2))[GPT].pk == later.pk
    first.refresh_from_db()
    assert first.effective_to == later.effective_from
    assert AuditEvent.objects.filter(action="token_price.set").count() == 2
    with pytest.raises(InvalidTokenPrice):
        token_price_set(model_id=GPT, text_input_micros=-1, actor=SYSTEM)


def test_a_capture_books_the_actual_cost_beside_the_estimate_and_releases_book_none(funded, reserve) -> None:
    funded(1_000_000)
    reserve("known", n=2)
    reserve("unknown", n=1)
    captured = billing_capture_many(
        captures=[
            Capture(reference="known", images=2, upstream_cost_actual_micros=12_345),
            Capture(reference="unknown", images=0, upstream_cost_actual_micros=999),  # nothing delivered: a release
        ]
    )
    assert (captured["known"].kind, captured["known"].upstream_cost_actual_micros) == ("capture", 12_345)
    assert (captured["unknown"].kind, captured["unknown"].upstream_cost_actual_micros) == ("release", None)
    assert LedgerEntry.objects.get(reference="known", kind="capture").upstream_cost_actual_micros == 12_345


# --- billing_check's drift warning -------------------------------------------------------------------------


def _captures(tenant: Tenant, *, model: str, at: datetime, count: int, estimate: int, actual: int | None) -> None:
    for i in range(count):
        LedgerEntry.objects.create(
            tenant=tenant, kind="capture", reference=f"{model}-{at:%Y%m%d}-{actual}-{i}", amount_micros=estimate * 2,
            cost_micros=estimate, upstream_cost_actual_micros=actual, images=1, model_id=model, created_at=at,
        )


def test_the_drift_check_flags_a_planted_drift_per_model_and_month(tenant: Tenant, settings) -> None:
    """(`billing_check`'s output and exit status: tests/generations/test_upstream_cost_actual.py, where the
    captures are real and the wallets add up.)"""
    settings.UPSTREAM_COST_DRIFT_MAX_PERCENT = 10
    settings.UPSTREAM_COST_DRIFT_MIN_IMAGES = 20
    now = timezone.now()
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1, hour=12)
    # Planted: gpt-image-2 cost 25 % more than estimated last month (a closed month: read from the rollup).
    _captures(tenant, model=GPT, at=last_month, count=20, estimate=40_000, actual=50_000)
    # Within 10 %: no warning.
    _captures(tenant, model="google/gemini-3-pro-image", at=now, count=30, estimate=134_000, actual=140_000)
    # Far off but too few images known to judge, and images whose actual cost is unknown never count.
    _captures(tenant, model="google/gemini-3.1-flash-image", at=now, count=19, estimate=67_000, actual=200_000)
    _captures(tenant, model="google/gemini-3.1-flash-image", at=now, count=5, estimate=67_000, actual=None)

    drifts = upstream_cost_drifts(now=now)
    assert [(d.model_id, d.month, d.images, d.estimate_micros, d.actual_micros, d.drift_percent) for d in drifts] == [
        (GPT, last_month.date().replace(day=1), 20, 800_000, 1_000_000, 25.0)
    ]
    assert str(drifts[0]) == (
        f"{GPT} {last_month:%Y-%m}: actual upstream cost 1000000 micro-USD vs estimate 800000 over 20 images (+25.0%)"
    )

    settings.UPSTREAM_COST_DRIFT_MAX_PERCENT = 30
    assert upstream_cost_drifts(now=now) == []
    # Two months back is out of the check's window.
    assert upstream_cost_drifts(now=datetime(now.year + 1, 6, 15, tzinfo=UTC)) == []


def test_staff_add_a_token_price_in_the_admin(db, monkeypatch) -> None:
    monkeypatch.undo()  # the catalog's resolver back (tests/billing/conftest.py `billing_alone`): aliases resolve
    client = Client()
    client.force_login(User.objects.create_superuser("staff@example.com", "pw-123456789"))
    response = client.post(
        "/admin/billing/tokenprice/add/",
        {"model_id": "gpt-image-2", "text_input_usd": "5", "image_input_usd": "8", "text_output_usd": "0",
         "image_output_usd": "30.5", "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00", "note": "x"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    row = TokenPrice.objects.filter(model_id=GPT).order_by("-pk").first()  # not by created_at: the seed's may equal it
    assert (row.text_input_micros, row.image_input_micros, row.image_output_micros) == (5_000_000, 8_000_000, 30_500_000)
    listing = client.get("/admin/billing/tokenprice/").content.decode()
    assert "$30.50" in listing or "30.5" in listing
    refused = client.post("/admin/billing/tokenprice/add/", {"model_id": "no/such-model", "text_input_usd": "1",
                                                             "image_input_usd": "0", "text_output_usd": "0",
                                                             "image_output_usd": "0"})
    assert refused.status_code == 200 and "errorlist" in refused.content.decode()
