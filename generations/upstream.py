"""The AIHubMix client, its public model list and output limits as configured in settings (the providers package never reads them)."""

from django.conf import settings

from generations.providers import AIHubMixClient
from generations.providers.model_list import UpstreamModel, model_list_fetch, model_list_url


def aihubmix_client_from_settings(*, calls_in_flight: int = 0) -> AIHubMixClient:
    """`calls_in_flight`: the caller's concurrency; the connection pool is never smaller (a call beyond the pool would
    wait for a connection and then fail as unreachable)."""
    return AIHubMixClient(
        api_key=settings.AIHUBMIX_API_KEY,
        base_url=settings.AIHUBMIX_BASE_URL,
        tasks_url=settings.AIHUBMIX_TASKS_URL,
        gemini_base_url=settings.AIHUBMIX_GEMINI_BASE_URL,
        connect_timeout_seconds=settings.AIHUBMIX_CONNECT_TIMEOUT_SECONDS,
        read_timeout_seconds=settings.AIHUBMIX_READ_TIMEOUT_SECONDS,
        model_read_timeout_seconds=settings.AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS,
        poll_deadline_seconds=settings.AIHUBMIX_POLL_DEADLINE_SECONDS,
        poll_interval_seconds=settings.AIHUBMIX_POLL_INTERVAL_SECONDS,
        max_connections=max(settings.AIHUBMIX_MAX_CONNECTIONS, calls_in_flight),
    )


def upstream_model_list_fetch() -> list[UpstreamModel]:
    """AIHubMix's public image model list, on the host of AIHUBMIX_BASE_URL (ModelListUnavailable naming the URL)."""
    return model_list_fetch(
        url=model_list_url(settings.AIHUBMIX_BASE_URL),
        connect_timeout_seconds=settings.AIHUBMIX_CONNECT_TIMEOUT_SECONDS,
    )
