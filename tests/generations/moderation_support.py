"""Builds succeeded generations through the real lifecycle (submit → claim → succeed), without an upstream."""

import hashlib
import io

from PIL import Image, ImageDraw

from generations.models import Generation
from generations.services.leases import generation_claim_batch
from generations.services.settle import StoredOutput, Success, generations_succeed
from generations.services.submit import GenerationRequest, generation_submit
from generations.storage import blob_save, output_key_for
from tests.generations.support import GPT_IMAGE, Customer


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
    request = GenerationRequest(model=GPT_IMAGE, prompt=prompt, n=n, quality="low", size="1024x1024")
    return generation_submit(tenant=customer.tenant, api_key=customer.key.api_key, request=request).generation


def succeeded_generation(customer: Customer, *, prompt: str = "a red fox in the snow", n: int = 1) -> Generation:
    generation = submit(customer, prompt=prompt, n=n)
    claim = next(c for c in generation_claim_batch(limit=100, lease_seconds=60) if c.id == generation.id)
    outputs = []
    for index in range(n):
        data = png_bytes(index)
        key = output_key_for(tenant_slug=customer.tenant.slug, year_month=claim.created_at_path,
                             public_id=generation.public_id, attempt=claim.attempts, index=index, extension="png")
        outputs.append(StoredOutput(index=index, storage_key=blob_save(key=key, data=data), content_type="image/png",
                                    width=64, height=64, byte_size=len(data),
                                    sha256=hashlib.sha256(data).hexdigest(), revised_prompt=""))
    generations_succeed(successes=[Success(claim=claim, outputs=outputs)])
    return Generation.objects.get(pk=generation.pk)
