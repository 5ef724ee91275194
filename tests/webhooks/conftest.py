from collections.abc import Callable, Iterator

import pytest
from django_q.conf import Conf
from pytest_httpserver import HTTPServer
from werkzeug import Request

from accounts.models import Tenant
from accounts.services import SYSTEM
from webhooks.models import WebhookEndpoint
from webhooks.services.endpoints import webhook_endpoint_create


@pytest.fixture(autouse=True)
def webhook_settings(settings) -> None:
    """Receivers in these tests live on loopback; retries come due at once unless a test sets a schedule."""
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOKS_RETRY_SCHEDULE_SECONDS = [0, 0]
    settings.WEBHOOKS_DISABLE_AFTER_FAILED_DELIVERIES = 5
    settings.WEBHOOKS_TIMEOUT_SECONDS = 5


@pytest.fixture
def q_sync(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 sync mode: async_task runs the task inline through the real worker and result monitor.

    django-q2 reads Q_CLUSTER once at import, so the flag is set on its Conf rather than in settings.
    """
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def receiver() -> Iterator[HTTPServer]:
    """A real HTTP server on 127.0.0.1 and an ephemeral port."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def received(server: HTTPServer) -> list[Request]:
    return [request for request, _response in server.log]


@pytest.fixture
def make_endpoint(receiver: HTTPServer) -> Callable[..., WebhookEndpoint]:
    def make(tenant: Tenant, *, path: str = "/hook", events: list[str] | None = None) -> WebhookEndpoint:
        issued = webhook_endpoint_create(
            tenant=tenant, url=receiver.url_for(path), event_types=events or [], actor=SYSTEM
        )
        return issued.endpoint

    return make
