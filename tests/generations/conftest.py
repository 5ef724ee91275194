import threading
from collections.abc import Callable

import pytest
from django.db import connections

from billing.models import Plan
from generations.forwarder import forward_drain
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


@pytest.fixture
def background_forwarder(forwarding):
    """A forwarder in this process: drains whatever the live server queues, until the test ends."""
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                if not forward_drain().claimed:
                    stop.wait(0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="test-forwarder", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)
