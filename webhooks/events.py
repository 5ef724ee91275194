"""The event types a tenant can subscribe to. Publishers pass one of these to `webhook_event_publish`."""

from collections.abc import Collection

GENERATION_STARTED = "generation.started"
GENERATION_SUCCEEDED = "generation.succeeded"
GENERATION_FAILED = "generation.failed"
GENERATION_CANCELED = "generation.canceled"
IMAGE_REJECTED = "image.rejected"
# A capture left the tenant's available money at or below its plan's low-balance threshold / brought its month's
# spend to the plan's alert percentage of its spend limit: once per crossing.
WALLET_LOW_BALANCE = "wallet.low_balance"
SPEND_LIMIT_NEAR = "spend_limit.near"

EVENT_TYPES: tuple[str, ...] = (
    GENERATION_STARTED,
    GENERATION_SUCCEEDED,
    GENERATION_FAILED,
    GENERATION_CANCELED,
    IMAGE_REJECTED,
    WALLET_LOW_BALANCE,
    SPEND_LIMIT_NEAR,
)

# Delivered only to those who name them: an endpoint with an empty filter ("every event") and a per-request webhook
# without `webhook_events_filter` keep getting what they got before `generation.started` existed (one event per
# generation, when it ends), not a second delivery per generation they never asked for.
OPT_IN_EVENT_TYPES: frozenset[str] = frozenset({GENERATION_STARTED})

# Replicate's `webhook_events_filter` names, accepted as spellings of ours.
EVENT_ALIASES: dict[str, str] = {"start": GENERATION_STARTED}

# What a per-request webhook (`webhook` on a generation request) can ask for: each carries the generation itself
# as the body. Without a filter it gets the terminal ones (REQUEST_DEFAULT_EVENT_TYPES).
REQUEST_EVENT_TYPES: tuple[str, ...] = (GENERATION_STARTED, GENERATION_SUCCEEDED, GENERATION_FAILED, GENERATION_CANCELED)
REQUEST_DEFAULT_EVENT_TYPES: tuple[str, ...] = tuple(e for e in REQUEST_EVENT_TYPES if e not in OPT_IN_EVENT_TYPES)

# What an event filter may name (the API's choices): our event types and Replicate's aliases.
EVENT_FILTER_NAMES: tuple[str, ...] = (*EVENT_TYPES, *EVENT_ALIASES)


class UnknownEventType(ValueError):
    """An event type that is not in EVENT_TYPES: a programming error (the API refuses unknown names first)."""


def event_types_canonical(event_types: Collection[str]) -> set[str]:
    """The names with Replicate's aliases (`start`) replaced by our event types."""
    return {EVENT_ALIASES.get(event_type, event_type) for event_type in event_types}


def event_filter_wants(event_types: Collection[str], event_type: str) -> bool:
    """Whether a filter (an endpoint's `events`) wants this event: an empty filter wants every event type except
    the opt-in ones."""
    if not event_types:
        return event_type not in OPT_IN_EVENT_TYPES
    return event_type in event_types


def event_types_known(event_types: Collection[str]) -> list[str]:
    """The given types (aliases resolved) in EVENT_TYPES order, each once; UnknownEventType names any that is
    not one."""
    event_types = event_types_canonical(event_types)
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        raise UnknownEventType(f"unknown event types: {', '.join(unknown)}")
    return [event_type for event_type in EVENT_TYPES if event_type in event_types]
