from collections.abc import Callable

import pytest
from django.db import transaction

from accounts.models import Tenant
from accounts.services import SYSTEM, IssuedApiKey
from billing.models import LedgerEntry, Plan, Wallet
from billing.services.ledger import billing_reserve
from billing.services.plans import plan_assign
from billing.services.prices import Quote, price_quote, price_set
from billing.services.quotas import QuotaExceeded
from billing.services.wallets import wallet_grant

MODEL = "test/flat-model"
UNIT_COST = 10_000  # 0.010000 USD
UNIT_PRICE = 12_000  # default plan: cost + 20%


@pytest.fixture(autouse=True)
def billing_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Billing's tests price made-up models (`test/flat-model`): billing as it is without the catalog, which
    registers its resolver at start-up (prices of unknown models are refused in tests/generations)."""
    import billing.model_ids

    monkeypatch.setattr(billing.model_ids, "_resolver", None)


@pytest.fixture
def flat_price(db: None) -> None:
    price_set(model_id=MODEL, quality="*", size="*", cost_micros=UNIT_COST, actor=SYSTEM)


@pytest.fixture
def open_plan(db: None) -> Plan:
    """A plan whose only limit is money, for tests about credit."""
    return Plan.objects.create(name="open", markup_bps=2000, max_n=10)


@pytest.fixture
def funded(tenant: Tenant, flat_price: None) -> Callable[..., None]:
    def fund(usd_micros: int, *, reference: str = "topup-1") -> None:
        wallet_grant(tenant=tenant, amount_micros=usd_micros, reference=reference, actor=SYSTEM)

    return fund


@pytest.fixture
def reserve(tenant: Tenant, member_key: IssuedApiKey, flat_price: None) -> Callable[..., LedgerEntry]:
    def make(
        reference: str,
        *,
        n: int = 1,
        model_id: str = MODEL,
        key: IssuedApiKey | None = None,
        on: Tenant | None = None,
    ) -> LedgerEntry:
        owner = on or tenant
        quote: Quote = price_quote(tenant=owner, model_id=model_id, quality="", size="1024x1024", n=n)
        with transaction.atomic():
            return billing_reserve(
                tenant=owner, api_key=(key or member_key).api_key, reference=reference, quote=quote
            )

    return make


@pytest.fixture
def on_open_plan(tenant: Tenant, open_plan: Plan) -> None:
    plan_assign(tenant=tenant, plan=open_plan, actor=SYSTEM)


def wallet_of(tenant: Tenant) -> Wallet:
    return Wallet.objects.get(tenant=tenant)


def refusal(action: Callable[[], object]) -> QuotaExceeded:
    with pytest.raises(QuotaExceeded) as caught:
        action()
    return caught.value
