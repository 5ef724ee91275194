"""django-q2 entry points for webhook delivery. Thin: the outbox logic lives in `webhooks.services.delivery`."""

from django_q.tasks import async_task

from webhooks.services.delivery import (
    webhook_deliveries_claim_due,
    webhook_delivery_attempt,
    webhook_delivery_claim,
)

# Claims per sweep; anything beyond waits for the next minute rather than flooding the queue at once.
SWEEP_BATCH = 500


def deliver_webhook(delivery_id: str) -> None:
    """Queued when an event is published: send the first attempt right away."""
    attempt = webhook_delivery_claim(delivery_id=delivery_id)
    if attempt is not None:
        webhook_delivery_attempt(delivery_id=delivery_id, attempt=attempt)


def send_webhook_attempt(delivery_id: str, attempt: int) -> None:
    webhook_delivery_attempt(delivery_id=delivery_id, attempt=attempt)


def deliver_due_webhooks() -> int:
    """Scheduled every minute: retries that came due, and first attempts whose queued task was lost."""
    claimed = webhook_deliveries_claim_due(limit=SWEEP_BATCH)
    for delivery_id, attempt in claimed:
        async_task("webhooks.tasks.send_webhook_attempt", delivery_id, attempt)
    return len(claimed)
