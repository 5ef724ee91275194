from collections.abc import Callable

import pytest

from billing.models import Plan
from tests.generations.support import Customer, customer_create


@pytest.fixture
def make_customer() -> Callable[..., Customer]:
    return customer_create


@pytest.fixture
def roomy_plan(db: None) -> Plan:
    """The default plan's markup without its concurrency and volume limits."""
    return Plan.objects.create(name="roomy", markup_bps=2000, max_n=10, max_concurrent=None)


@pytest.fixture
def forwarding(settings, tmp_path, aihubmix_sandbox):
    """Real stack below the API: the sandbox over HTTP, files on disk, retries without waiting."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FORWARD_BACKOFF_BASE_SECONDS = 0.0
    settings.FORWARD_BACKOFF_MAX_SECONDS = 0.0
    return aihubmix_sandbox
