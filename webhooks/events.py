"""The event types a tenant can subscribe to. Publishers pass one of these to `webhook_event_publish`."""

GENERATION_SUCCEEDED = "generation.succeeded"
GENERATION_FAILED = "generation.failed"
GENERATION_CANCELED = "generation.canceled"
IMAGE_REJECTED = "image.rejected"

EVENT_TYPES: tuple[str, ...] = (GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED, IMAGE_REJECTED)

# What a per-request webhook (`webhook` on a generation request) can ask for, and gets by default: each carries
# the generation itself as the body.
REQUEST_EVENT_TYPES: tuple[str, ...] = (GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED)
