"""Builds succeeded generations through the real lifecycle (submit → claim → succeed), without an upstream."""

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.services import SYSTEM, IssuedApiKey, api_key_create, tenant_create
from billing.models import Price
from billing.services import billing_account_open, price_set
from generations.models import Generation
from generations.services.lifecycle import StoredOutput, generation_claim_batch, generation_succeed
from generations.services.submit import GenerationRequest, generation_submit
from generations.storage import blob_save, output_key_for

MODEL = "openai/gpt-image-1"


@dataclass
class Customer:
    tenant: Tenant
    key: IssuedApiKey

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key.secret}")
        return client


def customer_create(slug: str) -> Customer:
    if not Price.objects.filter(model_id=MODEL, quality="low", size="1024x1024").exists():
        price_set(model_id=MODEL, quality="low", size="1024x1024", cost_micros=11_000, actor=SYSTEM)
    tenant = tenant_create(slug=slug, name=slug.title())
    billing_account_open(tenant=tenant, plan=None, opening_credit_micros=50_000_000)
    return Customer(tenant=tenant, key=api_key_create(tenant=tenant, name="app"))


def png_bytes(index: int = 0, size: int = 64) -> bytes:
    """A small picture (sky, sun, ground) that differs by index, so thumbnails are told apart at a glance."""
    image = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(image)
    for y in range(size):
        draw.line([(0, y), (size, y)], fill=(30 + 3 * y, 60 + 40 * index % 160, 200 - 2 * y))
    sun = size // 5
    draw.ellipse([size // 4 * (index % 3 + 1) - sun // 2, sun, size // 4 * (index % 3 + 1) + sun // 2, 2 * sun],
                 fill=(255, 210, 80))
    draw.rectangle([0, size * 3 // 4, size, size], fill=(40, 110 + 30 * index % 100, 60))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def submit(customer: Customer, *, prompt: str = "a red fox in the snow", n: int = 1) -> Generation:
    request = GenerationRequest(model=MODEL, prompt=prompt, n=n, quality="low", size="1024x1024")
    result = generation_submit(
        tenant=customer.tenant, api_key=customer.key.api_key, request_factory=lambda: request, render=lambda g: {}
    )
    return result.generation


def succeeded_generation(customer: Customer, *, prompt: str = "a red fox in the snow", n: int = 1) -> Generation:
    generation = submit(customer, prompt=prompt, n=n)
    claim = next(c for c in generation_claim_batch(limit=100, lease_seconds=60) if c.id == generation.id)
    outputs = []
    for index in range(n):
        data = png_bytes(index)
        key = output_key_for(tenant_slug=customer.tenant.slug, year_month=claim.created_at_path,
                             public_id=generation.public_id, index=index, extension="png")
        outputs.append(StoredOutput(index=index, storage_key=blob_save(key=key, data=data), content_type="image/png",
                                    width=64, height=64, byte_size=len(data),
                                    sha256=hashlib.sha256(data).hexdigest(), revised_prompt=""))
    generation_succeed(claim=claim, outputs=outputs)
    return Generation.objects.get(pk=generation.pk)
