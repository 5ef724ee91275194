import pytest

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM, Actor
from billing.models import LedgerEntry
from billing.selectors.drift import wallet_drifts
from billing.services.wallets import AdjustmentExceedsAvailable, ReferenceTaken, wallet_adjust, wallet_grant
from tests.billing.conftest import wallet_of

pytestmark = pytest.mark.django_db


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


def test_a_reference_of_another_tenant_is_refused_not_returned(tenant: Tenant, make_tenant) -> None:
    other = make_tenant("other", "Other")
    wallet_grant(tenant=other, amount_micros=1_000_000, reference="invoice-7", actor=SYSTEM)

    with pytest.raises(ReferenceTaken):
        wallet_grant(tenant=tenant, amount_micros=1_000_000, reference="invoice-7", actor=SYSTEM)
    wallet_adjust(tenant=other, amount_micros=5, reason="goodwill", actor=SYSTEM, reference="adj-1")
    with pytest.raises(ReferenceTaken):
        wallet_adjust(tenant=tenant, amount_micros=5, reason="goodwill", actor=SYSTEM, reference="adj-1")

    assert not LedgerEntry.objects.filter(tenant=tenant).exists()
    assert wallet_of(other).balance_micros == 1_000_005
