"""Webhook events about generations (the outbox lives in the webhooks app).

The event's data is the generation exactly as `GET /v1/generations/{id}` renders it, so a receiver needs no second
call. Rendering is the API serializer's job; it is used here on purpose so the two can never drift apart.
"""

from generations.api.serializers import GenerationSerializer
from generations.models import Generation
from webhooks.events import GENERATION_CANCELED, GENERATION_FAILED, GENERATION_SUCCEEDED
from webhooks.services.publishing import EventToPublish, webhook_events_publish
from webhooks.services.request_webhooks import RequestWebhook

EVENT_BY_STATUS = {
    Generation.Status.SUCCEEDED: GENERATION_SUCCEEDED,
    Generation.Status.FAILED: GENERATION_FAILED,
    Generation.Status.CANCELED: GENERATION_CANCELED,
}


def generation_final_event_publish(generation: Generation) -> None:
    generation_final_events_publish([generation])


def generation_final_events_publish(generations: list[Generation]) -> None:
    # One serializer for the batch: DRF builds its fields once instead of once per generation.
    rendered = GenerationSerializer(generations, many=True).data
    webhook_events_publish(
        events=[
            EventToPublish(
                tenant=generation.tenant,
                event_type=EVENT_BY_STATUS[generation.status],
                data=data,
                request_webhook=_request_webhook(generation),
            )
            for generation, data in zip(generations, rendered, strict=True)
        ]
    )


def _request_webhook(generation: Generation) -> RequestWebhook | None:
    if not generation.webhook_url:
        return None
    return RequestWebhook(url=generation.webhook_url, events=tuple(generation.webhook_events_filter))
