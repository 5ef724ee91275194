"""Webhook events about generations (the outbox lives in the webhooks app).

The event's data is the generation exactly as `GET /v1/generations/{id}` renders it (`generations.rendering`, the
one rendering both use), so a receiver needs no second call.
"""

from generations.models import Generation, GenerationImage
from generations.rendering import generation_render
from webhooks.events import GENERATION_CANCELED, GENERATION_FAILED, GENERATION_STARTED, GENERATION_SUCCEEDED
from webhooks.selectors import webhook_tenants_subscribed
from webhooks.services.publishing import EventToPublish, webhook_events_publish
from webhooks.services.request_webhooks import RequestWebhook

EVENT_BY_STATUS = {
    Generation.Status.SUCCEEDED: GENERATION_SUCCEEDED,
    Generation.Status.FAILED: GENERATION_FAILED,
    Generation.Status.CANCELED: GENERATION_CANCELED,
}


def generation_final_events_publish(
    *, generations: list[Generation], images_of: dict[int, list[GenerationImage]] | None = None
) -> None:
    """One event per finished generation, in the caller's transaction. `images_of`: each generation's images (by
    pk, in index order) when the caller has just written them, so they are not read back."""
    webhook_events_publish(
        events=[
            EventToPublish(
                tenant=generation.tenant,
                event_type=EVENT_BY_STATUS[generation.status],
                data=generation_render(
                    generation, images=None if images_of is None else images_of.get(generation.pk, [])
                ),
                request_webhook=_request_webhook(generation),
            )
            for generation in generations
        ]
    )


def generation_started_events_publish(*, generations: list[Generation]) -> None:
    """`generation.started` for generations that have just been claimed, in the claim's transaction (the outbox row
    commits with `running`, or neither does). Opt-in: only generations whose per-request webhook asked for it or
    whose tenant has an endpoint naming it are rendered and recorded, so a claim nobody listens to costs one query."""
    if not generations:
        return
    subscribed = webhook_tenants_subscribed(
        tenant_ids={generation.tenant_id for generation in generations}, event_type=GENERATION_STARTED
    )
    wanted = [
        generation
        for generation in generations
        if generation.tenant_id in subscribed or GENERATION_STARTED in (generation.webhook_events_filter or [])
    ]
    webhook_events_publish(
        events=[
            EventToPublish(
                tenant=generation.tenant,
                event_type=GENERATION_STARTED,
                data=generation_render(generation, images=[]),  # just claimed: no images yet
                request_webhook=_request_webhook(generation),
            )
            for generation in wanted
        ]
    )


def _request_webhook(generation: Generation) -> RequestWebhook | None:
    if not generation.webhook_url:
        return None
    return RequestWebhook(url=generation.webhook_url, events=tuple(generation.webhook_events_filter))
