"""A funded tenant with an API key and a client: the customer most generation tests start from."""

from dataclasses import dataclass

from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.services import SYSTEM, IssuedApiKey, api_key_create, tenant_create
from billing.models import LedgerEntry, Plan, Price, Wallet
from billing.services.prices import price_set
from billing.services.wallets import billing_account_open
from generations.models import Generation

GPT_IMAGE = "openai/gpt-image-2"
LOW_SQUARE = {"model": GPT_IMAGE, "quality": "low", "size": "1024x1024"}
LOW_SQUARE_PRICE_MICROS = 7_200  # seeded cost 0.006 USD + the default plan's 20 % markup
S3_BUCKET = "imagegen-test"  # the bucket the `s3_storage` fixture creates in moto


@dataclass
class Customer:
    tenant: Tenant
    key: IssuedApiKey
    client: APIClient

    def wallet(self) -> Wallet:
        return Wallet.objects.get(tenant=self.tenant)

    def ledger(self, reference: str | None = None) -> list[tuple[str, int]]:
        entries = LedgerEntry.objects.filter(tenant=self.tenant).exclude(kind="grant").order_by("id")
        if reference:
            entries = entries.filter(reference=reference)
        return [(entry.kind, entry.amount_micros) for entry in entries]


def customer_create(slug: str = "studio", *, credit_micros: int = 50_000_000, plan: Plan | None = None) -> Customer:
    # Seeded by a data migration, but transactional tests flush the database between tests.
    if not Price.objects.filter(model_id=GPT_IMAGE, quality="low", size="1024x1024").exists():
        price_set(model_id=GPT_IMAGE, quality="low", size="1024x1024", cost_micros=6_000, actor=SYSTEM)
    tenant = tenant_create(slug=slug, name=slug.title())
    billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=credit_micros)
    key = api_key_create(tenant=tenant, name="app")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.secret}")
    return Customer(tenant=tenant, key=key, client=client)


def nothing_changed(customer: Customer) -> bool:
    """No generation, nothing held, no ledger row but the opening grant: a refused request left no trace."""
    wallet = customer.wallet()
    return (
        not Generation.objects.filter(tenant=customer.tenant).exists()
        and wallet.held_micros == 0
        and not LedgerEntry.objects.filter(tenant=customer.tenant).exclude(kind="grant").exists()
    )


def generation_post(customer: Customer, **overrides: object) -> dict:
    """POST /v1/generations (a low-quality square unless overridden) and return the 202 body."""
    body = {**LOW_SQUARE, "prompt": "a lighthouse at dawn", **overrides}
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 202, response.json()
    return response.json()
