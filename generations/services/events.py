"""Webhook events about generations (the outbox lives in the webhooks app)."""

from typing import Any

from generations.models import Generation
from webhooks.services import webhook_event_publish

EVENT_BY_STATUS = {
    Generation.Status.SUCCEEDED: "generation.succeeded",
    Generation.Status.FAILED: "generation.failed",
    Generation.Status.CANCELED: "generation.canceled",
}


def generation_event_data(generation: Generation) -> dict[str, Any]:
    return {
        "id": generation.public_id,
        "object": "generation",
        "status": generation.status,
        "model": generation.model_id,
        "operation": generation.operation,
        "n": generation.n,
        "images_returned": generation.images_returned,
        "error": {"code": generation.error_code, "message": generation.error_message} if generation.error_code else None,
        "charged_micros": generation.charged_micros,
        "created_at": generation.created_at.isoformat(),
        "finished_at": generation.finished_at.isoformat() if generation.finished_at else None,
    }


def generation_final_event_publish(generation: Generation) -> None:
    webhook_event_publish(
        tenant=generation.tenant,
        event_type=EVENT_BY_STATUS[generation.status],
        data=generation_event_data(generation),
    )
