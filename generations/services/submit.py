"""Submitting a generation: validate, screen, price, then one transaction that reserves money and queues work."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.services.ledger import billing_reserve
from billing.services.prices import Quote, price_quote
from generations.catalog import ValidatedRequest, generation_request_validate
from generations.images import VerifiedImage
from generations.models import Generation, GenerationInputImage, generation_public_id
from generations.notifications import notify_work_available
from generations.services.idempotency import StoredResponse, idempotency_begin, idempotency_complete
from generations.services.moderation import prompt_screen
from generations.storage import blob_delete, blob_save, input_key


@dataclass(frozen=True)
class GenerationRequest:
    model: str
    prompt: str
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input_images: list[VerifiedImage] = field(default_factory=list)
    mask: VerifiedImage | None = None

    @property
    def operation(self) -> str:
        return "edit" if self.input_images else "generate"


@dataclass(frozen=True)
class PreparedGeneration:
    request: GenerationRequest
    validated: ValidatedRequest
    quote: Quote


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class SubmitResult:
    generation: Generation | None
    response: StoredResponse
    replayed: bool


def generation_prepare(*, tenant: Tenant, api_key: ApiKey | None, request: GenerationRequest) -> PreparedGeneration:
    """Everything that can refuse a request before money moves. Raises 400s naming the field."""
    validated = generation_request_validate(
        model=request.model,
        operation=request.operation,
        prompt=request.prompt,
        n=request.n,
        size=request.size,
        quality=request.quality,
        negative_prompt=request.negative_prompt,
        seed=request.seed,
        params=request.params,
        input_image_count=len(request.input_images),
    )
    prompt_screen(tenant=tenant, api_key=api_key, prompt=request.prompt)
    quote = price_quote(
        tenant=tenant, model_id=validated.model_id, quality=validated.quality, size=validated.size, n=validated.n
    )
    return PreparedGeneration(request=request, validated=validated, quote=quote)


def _store_inputs(*, tenant: Tenant, public_id: str, year_month: str, request: GenerationRequest) -> list[dict]:
    images = [("image", image) for image in request.input_images]
    if request.mask is not None:
        images.append(("mask", request.mask))
    stored = []
    for index, (role, image) in enumerate(images):
        key = input_key(
            tenant_slug=tenant.slug,
            generation_public_id=public_id,
            created_year_month=year_month,
            index=index,
            extension=image.extension,
        )
        stored.append(
            {
                "index": index,
                "role": role,
                "storage_key": blob_save(key=key, data=image.data),
                "content_type": image.content_type,
                "width": image.width,
                "height": image.height,
                "byte_size": image.byte_size,
                "sha256": image.sha256,
            }
        )
    return stored


def _delete_inputs(inputs: list[dict]) -> None:
    for values in inputs:
        blob_delete(key=values["storage_key"])


def generation_create(
    *, tenant: Tenant, api_key: ApiKey, prepared: PreparedGeneration, public_id: str, inputs: list[dict]
) -> Generation:
    """Reserve the money and create the queued generation. Must run inside the caller's transaction."""
    request, validated, quote = prepared.request, prepared.validated, prepared.quote
    billing_reserve(tenant=tenant, api_key=api_key, reference=public_id, quote=quote)
    generation = Generation.objects.create(
        public_id=public_id,
        tenant=tenant,
        api_key=api_key,
        model_id=validated.model_id,
        operation=validated.operation,
        prompt=request.prompt,
        negative_prompt=request.negative_prompt or "",
        n=validated.n,
        size=validated.size,
        quality=validated.quality,
        seed=request.seed,
        params=request.params,
        upstream_body=validated.upstream_body,
        price_id=quote.price_id,
        unit_cost_micros=quote.unit_cost_micros,
        unit_price_micros=quote.unit_price_micros,
        estimate_micros=quote.estimate_micros,
        max_attempts=settings.FORWARD_MAX_ATTEMPTS,
    )
    GenerationInputImage.objects.bulk_create(
        [GenerationInputImage(generation=generation, **values) for values in inputs]
    )
    # One notice per submit, coalesced by the forwarders; sent at commit and never an error after it (a lost one
    # costs the forwarder's recheck interval, not the generation).
    notify_work_available()
    return generation


def generation_submit(
    *,
    tenant: Tenant,
    api_key: ApiKey,
    request_factory: Callable[[], GenerationRequest],
    render: Callable[[Generation], dict[str, Any]],
    idempotency: Idempotency | None = None,
) -> SubmitResult:
    """Validate and price outside the transaction; then idempotency row, quotas, hold, generation and wake-up
    commit together or not at all. `request_factory` builds the request (decoding and fetching input images) only
    when the call is not a replay; `render` turns the new generation into the response body kept for replays."""
    if idempotency is not None:
        with transaction.atomic():
            replay = idempotency_begin(tenant=tenant, key=idempotency.key, fingerprint=idempotency.fingerprint)
        if replay is not None:
            return SubmitResult(generation=None, response=replay, replayed=True)
    prepared = generation_prepare(tenant=tenant, api_key=api_key, request=request_factory())
    public_id = generation_public_id()
    # Input files are written before the transaction (no slow uploads under the wallet lock) and removed again
    # if it does not commit.
    inputs = _store_inputs(
        tenant=tenant, public_id=public_id, year_month=f"{timezone.now():%Y/%m}", request=prepared.request
    )
    try:
        with transaction.atomic():
            if idempotency is not None:
                replay = idempotency_begin(tenant=tenant, key=idempotency.key, fingerprint=idempotency.fingerprint)
                if replay is not None:
                    _delete_inputs(inputs)
                    return SubmitResult(generation=None, response=replay, replayed=True)
            generation = generation_create(
                tenant=tenant, api_key=api_key, prepared=prepared, public_id=public_id, inputs=inputs
            )
            response = StoredResponse(status=202, body=render(generation))
            if idempotency is not None:
                idempotency_complete(
                    tenant=tenant,
                    key=idempotency.key,
                    fingerprint=idempotency.fingerprint,
                    generation=generation,
                    response=response,
                )
    except BaseException:
        _delete_inputs(inputs)
        raise
    return SubmitResult(generation=generation, response=response, replayed=False)
