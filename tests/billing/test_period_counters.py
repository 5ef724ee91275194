"""The wallet's month/day counters, which the submit path checks instead of aggregating the ledger, always equal
what the ledger says, through a seeded random mix of reserves, captures, releases and cancels that crosses day
and month boundaries (UTC)."""

import random
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce

from accounts.models import Tenant
from accounts.services import SYSTEM, IssuedApiKey
from billing.models import LedgerEntry, Plan, Wallet
from billing.periods import day_start, month_start, next_month_start
from billing.selectors.drift import wallet_drifts
from billing.selectors.ledger import wallet_period_use
from billing.services.ledger import billing_capture, billing_release, billing_reserve
from billing.services.plans import plan_assign
from billing.services.prices import price_quote
from billing.services.quotas import QuotaExceeded
from billing.services.wallets import wallet_grant
from generations.models import Generation
from generations.services.lifecycle import generation_cancel
from generations.services.submit import GenerationRequest, generation_submit
from tests.billing.conftest import MODEL
from tests.generations.support import GPT_IMAGE, customer_create

pytestmark = pytest.mark.django_db


def _captured(tenant: Tenant, start: datetime, end: datetime) -> tuple[int, int]:
    totals = LedgerEntry.objects.filter(
        tenant=tenant, kind=LedgerEntry.Kind.CAPTURE, created_at__gte=start, created_at__lt=end
    ).aggregate(images=Coalesce(Sum("images"), 0), amount=Coalesce(Sum("amount_micros"), 0))
    return totals["images"], totals["amount"]


def _assert_counters_match_the_ledger(tenant: Tenant, now: datetime) -> None:
    assert wallet_drifts() == []
    wallet = Wallet.objects.get(tenant=tenant)
    today, this_month = day_start(now), month_start(now)
    month = wallet_period_use(wallet=wallet, month=this_month.date())
    assert (month.images, month.amount_micros) == _captured(tenant, this_month, next_month_start(this_month))
    day = wallet_period_use(wallet=wallet, day=today.date())
    assert day.images == _captured(tenant, today, today + timedelta(days=1))[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_period_counters_equal_the_ledger_after_a_random_mix(
    seed: int, tenant: Tenant, member_key: IssuedApiKey, flat_price: None
) -> None:
    rng = random.Random(seed)
    plan = Plan.objects.create(
        name="counted", max_n=4, max_concurrent=None, images_per_day=12, images_per_month=150,
        monthly_spend_limit_micros=1_200_000,
    )
    plan_assign(tenant=tenant, plan=plan, actor=SYSTEM)
    wallet_grant(tenant=tenant, amount_micros=50_000_000, reference="counters-topup", actor=SYSTEM)
    price_quote(tenant=tenant, model_id=MODEL, quality="", size="1024x1024", n=1)  # priced at all
    clock = datetime(2031, 1, 30, 22, 0, tzinfo=UTC)  # two day ends and a month end ahead
    open_references: list[str] = []
    refusals = 0
    with mock.patch("django.utils.timezone.now", lambda: clock):
        for step in range(160):
            clock += timedelta(minutes=rng.choice([1, 7, 45, 180]))
            action = rng.random()
            if action < 0.45 or not open_references:
                quote = price_quote(tenant=tenant, model_id=MODEL, quality="", size="1024x1024", n=rng.randint(1, 4))
                try:
                    with transaction.atomic():
                        billing_reserve(
                            tenant=tenant, api_key=member_key.api_key, reference=f"ref-{seed}-{step}", quote=quote
                        )
                    open_references.append(f"ref-{seed}-{step}")
                except QuotaExceeded:
                    refusals += 1
            elif action < 0.8:
                reference = open_references.pop(rng.randrange(len(open_references)))
                billing_capture(reference=reference, images=rng.randint(0, 4))
            else:
                reference = open_references.pop(rng.randrange(len(open_references)))
                billing_release(reference=reference, reason="random release")
            _assert_counters_match_the_ledger(tenant, clock)
    assert clock.month == 2  # the mix really crossed the month end
    assert LedgerEntry.objects.filter(tenant=tenant, kind="capture").count() > 20
    assert refusals > 0  # and reached the limits it counts for


def test_cancels_of_queued_generations_keep_the_counters_true() -> None:
    customer = customer_create(plan=Plan.objects.create(name="roomy", max_concurrent=None))
    rng = random.Random(7)
    generations = []
    for index in range(12):
        request = GenerationRequest(model=GPT_IMAGE, prompt=f"p{index}", n=rng.randint(1, 3), quality="low",
                                    size="1024x1024")
        generations.append(
            generation_submit(tenant=customer.tenant, api_key=customer.key.api_key, request=request).generation
        )
    for generation in generations:
        choice = rng.random()
        if choice < 0.4:
            generation_cancel(generation=generation)
        elif choice < 0.8:
            billing_capture(reference=generation.public_id, images=generation.n)
            Generation.objects.filter(pk=generation.pk).update(status=Generation.Status.SUCCEEDED)
        else:
            billing_release(reference=generation.public_id, reason="failed upstream")
    wallet = customer.wallet()
    assert wallet.open_holds == 0 and wallet.held_micros == 0
    from django.utils import timezone

    _assert_counters_match_the_ledger(customer.tenant, timezone.now())
