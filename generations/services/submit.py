"""Submitting a generation: validate, screen, price, then one transaction that reserves money and queues work."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.services.ledger import billing_reserve, billing_reserve_at_once
from billing.services.prices import Quote, price_quote
from generations.catalog.validation import ValidatedRequest, generation_request_validate, operation_check
from generations.images import VerifiedImage
from generations.models import Generation, GenerationInputImage, generation_public_id
from generations.notifications import notify_work_available, work_available_notice_sql
from generations.services.deadlines import cancel_after_resolve, deadline_from_now
from generations.services.idempotency import IdempotentReplay, idempotency_begin, idempotency_complete
from generations.services.inputs import input_image_load, input_images_load
from generations.services.moderation import prompt_screen
from generations.storage import blob_delete, blob_save, input_key
from project import errors
from webhooks.services.request_webhooks import RequestWebhook, request_webhook_check

logger = structlog.get_logger(__name__)


class WebhookFilterWithoutUrl(errors.InvalidRequest):
    code = "invalid_webhook_events_filter"
    message = "webhook_events_filter needs a webhook URL."

    def __init__(self) -> None:
        super().__init__(param="webhook_events_filter")


class MaskWithoutImage(errors.InvalidRequest):
    code = "mask_without_image"
    message = "A mask marks what to change in an input image: send it with the images to edit."

    def __init__(self) -> None:
        super().__init__(param="mask")


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
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    # `Cancel-After` (header or body), in seconds from the submit.
    cancel_after_seconds: float | None = None
    # Partial images to relay to event streams while it runs, where the upstream streams them (0: none).
    partial_images: int = 0

    @property
    def operation(self) -> str:
        return "edit" if self.input_images else "generate"


@dataclass(frozen=True)
class PreparedGeneration:
    request: GenerationRequest
    validated: ValidatedRequest
    quote: Quote
    webhook: RequestWebhook | None = None


@dataclass(frozen=True)
class Idempotency:
    key: str
    fingerprint: str


@dataclass(frozen=True)
class SubmitResult:
    """The new generation, or (when another request with the same Idempotency-Key committed first) the replay."""

    generation: Generation | None = None
    replay: IdempotentReplay | None = None


def generation_request_build(
    *,
    data: Mapping[str, Any],
    params: dict[str, Any],
    image_sources: list[Any],
    mask_source: Any | None,
    image_field: str,
    cancel_after_header: str | None = None,
    partial_images: int = 0,
) -> GenerationRequest:
    """The one way both APIs turn a validated body and its uploads into a request: input images are decoded,
    fetched and verified here, so call it once, after the idempotent-replay check. `cancel_after_header`: the
    request's `Cancel-After` header (the body's `cancel_after` is in `data`)."""
    if mask_source and not image_sources:
        raise MaskWithoutImage()  # it was stored and never used; a generation from text has no input images
    # Before any image is fetched: a bad deadline is refused at once.
    cancel_after_seconds = cancel_after_resolve(header=cancel_after_header, body=data.get("cancel_after"))
    # The model must take this operation before any image is fetched or decoded: a text-only model never makes us
    # download anything.
    operation_check(model=data["model"], operation="edit" if image_sources else "generate")
    return GenerationRequest(
        model=data["model"],
        prompt=data["prompt"],
        n=data.get("n"),
        size=data.get("size"),
        quality=data.get("quality"),
        negative_prompt=data.get("negative_prompt"),
        seed=data.get("seed"),
        params=params,
        input_images=input_images_load(image_sources, field=image_field) if image_sources else [],
        mask=input_image_load(mask_source, param="mask") if mask_source else None,
        webhook=data.get("webhook"),
        webhook_events_filter=data.get("webhook_events_filter"),
        cancel_after_seconds=cancel_after_seconds,
        partial_images=partial_images,
    )


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
        partial_images=request.partial_images,
    )
    webhook = None
    if request.webhook is not None:
        webhook = request_webhook_check(url=request.webhook, events=request.webhook_events_filter)
    elif request.webhook_events_filter is not None:
        raise WebhookFilterWithoutUrl()
    prompt_screen(tenant=tenant, api_key=api_key, prompt=request.prompt)
    quote = price_quote(
        tenant=tenant, model_id=validated.model_id, quality=validated.quality, size=validated.size, n=validated.n
    )
    return PreparedGeneration(request=request, validated=validated, quote=quote, webhook=webhook)


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


def _generation_new(
    *, tenant: Tenant, api_key: ApiKey | None, prepared: PreparedGeneration, public_id: str
) -> Generation:
    request, validated, quote = prepared.request, prepared.validated, prepared.quote
    generation = Generation(
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
        upstream_interface=validated.interface,
        requested_model_id=validated.requested_model_id,
        price_id=quote.price_id,
        unit_cost_micros=quote.unit_cost_micros,
        unit_price_micros=quote.unit_price_micros,
        estimate_micros=quote.estimate_micros,
        max_attempts=settings.FORWARD_MAX_ATTEMPTS,
        webhook_url=prepared.webhook.url if prepared.webhook else "",
        webhook_events_filter=list(prepared.webhook.events) if prepared.webhook else [],
        deadline_at=deadline_from_now(request.cancel_after_seconds),
    )
    generation.images_known_empty()
    return generation


def generation_create(
    *, tenant: Tenant, api_key: ApiKey | None, prepared: PreparedGeneration, public_id: str, inputs: list[dict]
) -> Generation:
    """Create the queued generation, reserve its money and wake the forwarder. Must run inside the caller's
    transaction; the wallet row stays locked only from its conditional UPDATE to the caller's COMMIT."""
    generation = _generation_new(tenant=tenant, api_key=api_key, prepared=prepared, public_id=public_id)
    generation.save(force_insert=True)
    if inputs:
        GenerationInputImage.objects.bulk_create(
            [GenerationInputImage(generation=generation, **values) for values in inputs]
        )
    # One notice per submit, coalesced by the forwarders; sent at commit (a lost one costs the forwarder's recheck
    # interval, not the generation).
    notify_work_available()
    billing_reserve(tenant=tenant, api_key=api_key, reference=public_id, quote=prepared.quote)
    return generation


def _forwarder_wake_after_commit() -> None:
    """The generation is committed: from here on the answer is 202 whatever happens. A notice that cannot be sent
    only delays the pick-up to the forwarder's recheck interval (and the reaper re-sends lost wake-ups)."""
    try:
        notify_work_available()
    except DatabaseError:
        logger.warning("forwarder_wakeup_failed", exc_info=True)


def generation_submit(
    *, tenant: Tenant, api_key: ApiKey, request: GenerationRequest, idempotency: Idempotency | None = None
) -> SubmitResult:
    """Validate, screen and price outside the transaction; then the idempotency record, the generation, its hold
    and its wake-up commit together or not at all: in one statement when nothing else has to be written
    (`billing_reserve_at_once`), otherwise in one transaction. The caller renders the response after COMMIT from
    the returned generation."""
    prepared = generation_prepare(tenant=tenant, api_key=api_key, request=request)
    public_id = generation_public_id()
    # Input files are written before the transaction (no slow uploads under the wallet lock) and removed again
    # if it does not commit.
    inputs = _store_inputs(
        tenant=tenant, public_id=public_id, year_month=f"{timezone.now():%Y/%m}", request=prepared.request
    )
    if idempotency is None and not inputs:
        generation = _generation_new(tenant=tenant, api_key=api_key, prepared=prepared, public_id=public_id)
        notice = work_available_notice_sql()  # on PostgreSQL, sent by the same statement: no round trip of its own
        if billing_reserve_at_once(
            tenant=tenant,
            api_key=api_key,
            reference=public_id,
            quote=prepared.quote,
            rows=[generation],
            also=[notice] if notice else [],
        ):
            if notice is None:
                _forwarder_wake_after_commit()
            return SubmitResult(generation=generation)
        # Not possible in one statement, or refused: the transaction below re-checks and says which limit.
    try:
        with transaction.atomic():
            if idempotency is not None:
                # A request with the same key may have committed since the caller's replay check.
                replay = idempotency_begin(tenant=tenant, key=idempotency.key, fingerprint=idempotency.fingerprint)
                if replay is not None:
                    _delete_inputs(inputs)
                    return SubmitResult(replay=replay)
            generation = generation_create(
                tenant=tenant, api_key=api_key, prepared=prepared, public_id=public_id, inputs=inputs
            )
            if idempotency is not None:
                idempotency_complete(
                    tenant=tenant, key=idempotency.key, fingerprint=idempotency.fingerprint, generation=generation
                )
    except BaseException:
        _delete_inputs(inputs)
        raise
    return SubmitResult(generation=generation)
