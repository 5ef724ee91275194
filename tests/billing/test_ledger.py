import pytest
from django.db import connection, transaction

from accounts.models import Tenant
from accounts.services import SYSTEM
from billing.models import LedgerEntry, LedgerImmutable, Wallet
from billing.selectors.drift import wallet_drifts
from billing.services.ledger import HoldNotFound, billing_capture, billing_release
from billing.services.wallets import ReferenceTaken, wallet_grant
from project.api.errors import domain_error_status
from tests.billing.conftest import MODEL, UNIT_COST, UNIT_PRICE, refusal, wallet_of

pytestmark = pytest.mark.django_db

Kind = LedgerEntry.Kind


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


def test_a_reference_already_held_is_refused_and_holds_nothing_more(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1")
    with pytest.raises(ReferenceTaken):
        reserve("gen_1")
    assert wallet_of(tenant).held_micros == UNIT_PRICE and wallet_of(tenant).open_holds == 1
    assert LedgerEntry.objects.filter(reference="gen_1").count() == 1


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


# --- the ledger's own guarantees ---


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
