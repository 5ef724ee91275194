from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM, Actor, IssuedApiKey
from billing.models import LedgerEntry, LedgerImmutable, Plan, TenantPlan, Wallet
from billing.selectors import price_current, wallet_drifts
from billing.services import (
    AdjustmentExceedsAvailable,
    HoldNotFound,
    PriceNotFound,
    QuotaExceeded,
    billing_capture,
    billing_release,
    price_quote,
    price_set,
    wallet_adjust,
    wallet_grant,
)
from project.api.errors import domain_error_status
from tests.billing.conftest import MODEL, UNIT_COST, UNIT_PRICE

pytestmark = pytest.mark.django_db

Kind = LedgerEntry.Kind


def wallet_of(tenant: Tenant) -> Wallet:
    return Wallet.objects.get(tenant=tenant)


def refusal(action: Callable[[], object]) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        action()
    return caught.value


# --- prices and quotes ---


def test_seeded_gpt_image_1_price_depends_on_quality_and_size(tenant: Tenant) -> None:
    low = price_quote(tenant=tenant, model_id="openai/gpt-image-1", quality="low", size="1024x1024", n=2)
    high = price_quote(tenant=tenant, model_id="openai/gpt-image-1", quality="high", size="1536x1024", n=1)
    assert (low.unit_cost_micros, low.unit_price_micros, low.estimate_micros) == (11_000, 13_200, 26_400)
    assert (high.unit_cost_micros, high.unit_price_micros) == (250_000, 300_000)


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
        price_quote(tenant=tenant, model_id="openai/gpt-image-1", quality="ultra", size="1024x1024", n=1)


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
    assert AuditEvent.objects.filter(action="price.set").count() >= 2


# --- reservation, capture, release ---


def test_reserve_holds_the_estimate_and_writes_the_hold_row(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    hold = reserve("gen_1", n=3)
    wallet = wallet_of(tenant)
    assert (wallet.balance_micros, wallet.held_micros, wallet.open_holds, wallet.open_hold_images) == (
        1_000_000,
        3 * UNIT_PRICE,
        1,
        3,
    )
    assert (hold.kind, hold.amount_micros, hold.images, hold.model_id, hold.unit_cost_micros) == (
        Kind.HOLD,
        3 * UNIT_PRICE,
        3,
        MODEL,
        UNIT_COST,
    )
    assert hold.api_key_id is not None and hold.price_id is not None


def test_reserve_is_idempotent_per_reference(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    assert reserve("gen_1").pk == reserve("gen_1").pk
    assert wallet_of(tenant).held_micros == UNIT_PRICE


def test_capture_charges_delivered_images_and_releases_the_rest(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1", n=4)
    capture = billing_capture(reference="gen_1", images=3)
    wallet = wallet_of(tenant)
    assert (
        capture.amount_micros == 3 * UNIT_PRICE
        and capture.images == 3
        and capture.cost_micros == 3 * UNIT_COST
    )
    assert (capture.model_id, capture.size, capture.unit_price_micros) == (MODEL, "1024x1024", UNIT_PRICE)
    assert capture.api_key_id is not None
    assert (wallet.balance_micros, wallet.held_micros, wallet.open_holds, wallet.open_hold_images) == (
        1_000_000 - 3 * UNIT_PRICE,
        0,
        0,
        0,
    )


def test_capture_twice_changes_nothing_the_second_time(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1", n=2)
    assert billing_capture(reference="gen_1", images=2) is not None
    before = wallet_of(tenant)
    assert billing_capture(reference="gen_1", images=2) is None
    assert billing_release(reference="gen_1", upstream_cost_micros=5) is None
    after = wallet_of(tenant)
    assert (after.balance_micros, after.held_micros) == (before.balance_micros, before.held_micros)
    assert LedgerEntry.objects.filter(reference="gen_1").count() == 2
    assert wallet_drifts() == []


def test_release_twice_changes_nothing_the_second_time(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1", n=2)
    release = billing_release(reference="gen_1", upstream_cost_micros=UNIT_COST, reason="upstream 500")
    assert release.amount_micros == 2 * UNIT_PRICE and release.cost_micros == UNIT_COST
    assert billing_release(reference="gen_1", upstream_cost_micros=UNIT_COST) is None
    assert billing_capture(reference="gen_1", images=2) is None
    wallet = wallet_of(tenant)
    assert (wallet.balance_micros, wallet.held_micros, wallet.open_holds) == (1_000_000, 0, 0)
    assert LedgerEntry.objects.filter(reference="gen_1").count() == 2


def test_capture_of_zero_images_is_a_release(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1")
    assert billing_capture(reference="gen_1", images=0).kind == Kind.RELEASE
    assert wallet_of(tenant).balance_micros == 1_000_000


def test_capture_never_charges_more_than_was_held(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1", n=1)
    capture = billing_capture(reference="gen_1", images=4)  # Imagen returns 4 unless told otherwise
    assert capture.amount_micros == UNIT_PRICE and capture.images == 1


def test_a_canceled_running_generation_is_charged_what_upstream_charged(
    tenant: Tenant, funded, reserve
) -> None:
    funded(1_000_000)
    reserve("gen_1", n=2)
    capture = billing_capture(
        reference="gen_1", images=0, amount_micros=UNIT_COST, upstream_cost_micros=UNIT_COST
    )
    assert capture.kind == Kind.CAPTURE and capture.amount_micros == UNIT_COST
    assert wallet_of(tenant).balance_micros == 1_000_000 - UNIT_COST


def test_capture_without_a_hold_is_an_error_and_release_is_a_no_op() -> None:
    with pytest.raises(HoldNotFound):
        billing_capture(reference="never-held", images=1)
    assert billing_release(reference="never-held") is None


def test_insufficient_credit_is_402_and_holds_nothing(tenant: Tenant, funded, reserve) -> None:
    funded(UNIT_PRICE)
    reserve("gen_1")
    error = refusal(lambda: reserve("gen_2"))
    assert (domain_error_status(error), error.code) == (402, "insufficient_credit")
    assert wallet_of(tenant).held_micros == UNIT_PRICE
    assert not LedgerEntry.objects.filter(reference="gen_2").exists()


# --- quotas ---


def limit_plan(tenant: Tenant, **limits: object) -> None:
    plan = Plan.objects.create(name=f"limited-{tenant.pk}", **limits)
    TenantPlan.objects.update_or_create(tenant=tenant, defaults={"plan": plan})


def test_model_outside_the_plan_is_403(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, allowed_models=["openai/gpt-image-1"])
    error = refusal(lambda: reserve("gen_1"))
    assert (domain_error_status(error), error.code, error.param) == (403, "model_not_allowed", "model")


def test_n_above_the_plan_is_400_naming_n(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, max_n=2)
    error = refusal(lambda: reserve("gen_1", n=3))
    assert (domain_error_status(error), error.code, error.param) == (400, "n_above_plan_limit", "n")


def test_concurrency_counts_open_holds_and_frees_up_on_settlement(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, max_concurrent=2)
    reserve("gen_1")
    reserve("gen_2")
    error = refusal(lambda: reserve("gen_3"))
    assert (domain_error_status(error), error.code) == (429, "concurrency_limit") and int(
        error.retry_after_seconds
    ) > 0
    billing_capture(reference="gen_1", images=1)
    reserve("gen_3")


def test_daily_images_count_captured_and_held_images(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, images_per_day=5)
    reserve("gen_1", n=3)
    billing_capture(reference="gen_1", images=3)
    reserve("gen_2", n=2)
    error = refusal(lambda: reserve("gen_3", n=1))
    assert (domain_error_status(error), error.code) == (429, "daily_image_limit")
    assert 0 < error.retry_after_seconds <= 86_400


def test_monthly_images_limit_is_429(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, images_per_month=2)
    error = refusal(lambda: reserve("gen_1", n=3))
    assert (domain_error_status(error), error.code) == (429, "monthly_image_limit") and error.retry_after_seconds


def test_monthly_spend_limit_is_402(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    limit_plan(tenant, monthly_spend_limit_micros=2 * UNIT_PRICE)
    reserve("gen_1")
    billing_capture(reference="gen_1", images=1)
    reserve("gen_2")
    error = refusal(lambda: reserve("gen_3"))
    assert (domain_error_status(error), error.code) == (402, "spend_limit_reached")


def test_key_budget_counts_only_that_key(tenant: Tenant, funded, reserve, make_key) -> None:
    funded(1_000_000)
    limited: IssuedApiKey = make_key(tenant, name="limited")
    limited.api_key.monthly_budget_micros = UNIT_PRICE
    limited.api_key.save(update_fields=["monthly_budget_micros"])
    reserve("gen_1", key=limited)
    reserve("gen_2")  # another key, not counted
    error = refusal(lambda: reserve("gen_3", key=limited))
    assert (domain_error_status(error), error.code) == (402, "key_budget_reached")


# --- grants, adjustments, the ledger ---


def test_grant_is_idempotent_per_reference_and_audited(tenant: Tenant) -> None:
    staff = Actor()
    wallet_grant(tenant=tenant, amount_micros=5_000_000, reference="invoice-42", actor=staff)
    wallet_grant(tenant=tenant, amount_micros=5_000_000, reference="invoice-42", actor=staff)
    assert wallet_of(tenant).balance_micros == 5_000_000
    assert AuditEvent.objects.filter(action="wallet.granted", tenant=tenant).count() == 1


def test_adjust_needs_a_reason_and_cannot_overdraw(tenant: Tenant) -> None:
    wallet_grant(tenant=tenant, amount_micros=1_000_000, reference="t", actor=SYSTEM)
    wallet_adjust(tenant=tenant, amount_micros=-400_000, reason="duplicate top-up", actor=SYSTEM)
    with pytest.raises(AdjustmentExceedsAvailable):
        wallet_adjust(tenant=tenant, amount_micros=-600_001, reason="too much", actor=SYSTEM)
    assert wallet_of(tenant).balance_micros == 600_000
    event = AuditEvent.objects.get(action="wallet.adjusted", tenant=tenant)
    assert event.after["reason"] == "duplicate top-up" and event.after["amount_usd"] == "-0.400000"
    assert wallet_drifts() == []


def test_ledger_rows_refuse_updates_and_deletes(tenant: Tenant) -> None:
    entry = wallet_grant(tenant=tenant, amount_micros=1, reference="t", actor=SYSTEM)
    entry.amount_micros = 2
    with pytest.raises(LedgerImmutable):
        entry.save()
    with pytest.raises(LedgerImmutable):
        entry.delete()


@pytest.mark.postgres
def test_postgres_refuses_ledger_updates_and_deletes_even_in_raw_sql(tenant: Tenant) -> None:
    from django.db import DatabaseError

    entry = wallet_grant(tenant=tenant, amount_micros=1, reference="t", actor=SYSTEM)
    for statement in (
        "UPDATE billing_ledgerentry SET amount_micros = 2 WHERE id = %s",
        "DELETE FROM billing_ledgerentry WHERE id = %s",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, [entry.pk])
    assert LedgerEntry.objects.filter(pk=entry.pk, amount_micros=1).exists()


def test_drift_is_reported_when_a_wallet_disagrees_with_its_ledger(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1")
    Wallet.objects.filter(tenant=tenant).update(balance_micros=2_000_000)
    drifts = wallet_drifts()
    assert [(d.tenant_slug, d.field, d.stored, d.expected) for d in drifts] == [
        ("acme", "balance_micros", 2_000_000, 1_000_000)
    ]
