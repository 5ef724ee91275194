"""The event types a tenant can subscribe to. Publishers pass one of these to `webhook_event_publish`."""

from collections.abc import Collection

GENERATION_SUCCEEDED = "generation.succeeded"
GENERATION_FAILED = "generation.failed"
GENERATION_CANCELED = "generation.canceled"
IMAGE_REJECTED = "image.rejected"

EVENT_TYPES: tuple[str, ...] = (GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED, IMAGE_REJECTED)

# What a per-request webhook (`webhook` on a generation request) can ask for, and gets by default: each carries
# the generation itself as the body.
REQUEST_EVENT_TYPES: tuple[str, ...] = (GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED)


class UnknownEventType(ValueError):
    """An event type that is not in EVENT_TYPES: a programming error (the API refuses unknown names first)."""


def event_types_known(event_types: Collection[str]) -> list[str]:
    """The given types in EVENT_TYPES order, each once; UnknownEventType names any that is not one."""
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise UnknownEventType(f"unknown event types: {', '.join(unknown)}")
    return [event_type for event_type in EVENT_TYPES if event_type in event_types]
