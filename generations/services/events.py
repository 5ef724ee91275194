"""Webhook events about generations (the outbox lives in the webhooks app).

The event's data is the generation exactly as `GET /v1/generations/{id}` renders it, so a receiver needs no second
call. Rendering is the API serializer's job; it is used here on purpose so the two can never drift apart.
"""

from generations.api.serializers import GenerationSerializer
from generations.models import Generation
from webhooks.events import GENERATION_CANCELED, GENERATION_FAILED, GENERATION_SUCCEEDED
from webhooks.services import RequestWebhook, webhook_event_publish

EVENT_BY_STATUS = {
    Generation.Status.SUCCEEDED: GENERATION_SUCCEEDED,
    Generation.Status.FAILED: GENERATION_FAILED,
    Generation.Status.CANCELED: GENERATION_CANCELED,
}


def generation_final_event_publish(generation: Generation) -> None:
    request_webhook = None
    if generation.webhook_url:
        request_webhook = RequestWebhook(url=generation.webhook_url, events=tuple(generation.webhook_events_filter))
    webhook_event_publish(
        tenant=generation.tenant,
        event_type=EVENT_BY_STATUS[generation.status],
        data=GenerationSerializer(generation).data,
        request_webhook=request_webhook,
    )
