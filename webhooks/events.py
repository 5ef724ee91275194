"""The event types a tenant can subscribe to. Publishers pass one of these to `webhook_event_publish`."""

GENERATION_SUCCEEDED = "generation.succeeded"
GENERATION_FAILED = "generation.failed"
GENERATION_CANCELED = "generation.canceled"
IMAGE_REJECTED = "image.rejected"

EVENT_TYPES: tuple[str, ...] = (GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED, IMAGE_REJECTED)
