"""Real threads, each with its own PostgreSQL connection, racing for the same wallet."""

import pytest
from django.core.management import call_command
from django.db import transaction

from accounts.models import Tenant
from accounts.services import SYSTEM, api_key_create, tenant_create
from billing.models import LedgerEntry, Plan, Wallet
from billing.services.ledger import billing_capture, billing_release, billing_reserve
from billing.services.plans import plan_assign
from billing.services.prices import price_quote, price_set
from billing.services.quotas import QuotaExceeded
from billing.services.wallets import wallet_grant, wallet_set_credit_limit
from tests.threads import run_in_threads

THREADS = 50
AFFORDABLE = 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_holds_on_credit_for_ten_give_exactly_ten() -> None:
    tenant: Tenant = tenant_create(slug="racer", name="Racer")
    api_key = api_key_create(tenant=tenant, name="race").api_key
    plan_assign(tenant=tenant, plan=Plan.objects.create(name="race-open", max_n=10), actor=SYSTEM)
    price_set(model_id="race/model", quality="*", size="*", cost_micros=10_000, actor=SYSTEM)
    quote = price_quote(tenant=tenant, model_id="race/model", quality="", size="1K", n=1)
    # Part of the ten is credit, so the test also shows the balance never goes below the credit limit.
    wallet_set_credit_limit(tenant=tenant, credit_limit_micros=2 * quote.estimate_micros, actor=SYSTEM)
    wallet_grant(
        tenant=tenant,
        amount_micros=(AFFORDABLE - 2) * quote.estimate_micros,
        reference="race-topup",
        actor=SYSTEM,
    )

    def reserve(index: int) -> LedgerEntry:
        with transaction.atomic():
            return billing_reserve(tenant=tenant, api_key=api_key, reference=f"gen_race_{index}", quote=quote)

    results = run_in_threads(THREADS, reserve)

    holds = [r for r in results if isinstance(r, LedgerEntry)]
    refusals = [r for r in results if isinstance(r, QuotaExceeded)]
    assert len(holds) == AFFORDABLE
    assert len(refusals) == THREADS - AFFORDABLE and {r.code for r in refusals} == {"insufficient_credit"}
    wallet = Wallet.objects.get(tenant=tenant)
    assert wallet.held_micros == AFFORDABLE * quote.estimate_micros and wallet.available_micros == 0
    assert wallet.balance_micros - wallet.held_micros >= -wallet.credit_limit_micros
    call_command("billing_check")

    # Settle every hold twice at once, half captured and half released: each settles exactly once.
    references = [hold.reference for hold in holds]

    def settle(index: int) -> object:
        reference = references[index % AFFORDABLE]
        if index % AFFORDABLE < AFFORDABLE // 2:
            return billing_capture(reference=reference, images=1)
        return billing_release(reference=reference, upstream_cost_micros=10_000)

    settled = run_in_threads(2 * AFFORDABLE, settle)
    assert not [r for r in settled if isinstance(r, Exception)]
    assert sum(1 for r in settled if r is not None) == AFFORDABLE
    wallet.refresh_from_db()
    assert wallet.held_micros == 0 and wallet.open_holds == 0
    assert (
        wallet.balance_micros
        == (AFFORDABLE - 2) * quote.estimate_micros - (AFFORDABLE // 2) * quote.estimate_micros
    )
    assert wallet.balance_micros >= -wallet.credit_limit_micros
    call_command("billing_check")
