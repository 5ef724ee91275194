from datetime import timedelta

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from project.health import WORKER_HEARTBEAT_KEY, worker_heartbeat_record

pytestmark = pytest.mark.django_db


def test_openapi_schema_generates_without_warnings(capsys) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err


def test_schema_declares_bearer_security(client) -> None:
    schema = client.get("/v1/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API key issued to your tenant."
    }


def test_swagger_ui_uses_local_assets(client) -> None:
    page = client.get("/v1/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "unpkg" not in page


@pytest.fixture
def shared_cache(settings):
    """Health checks run on other threads: with the database cache they would not see this test's transaction."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.mark.usefixtures("shared_cache")
def test_healthz_reports_database_cache_storage_and_worker(client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    worker_heartbeat_record()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "worker": "ok"}
    }


@pytest.mark.usefixtures("shared_cache")
def test_healthz_fails_when_no_worker_ran_recently(client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    stale = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS + 5)
    cache.set(WORKER_HEARTBEAT_KEY, stale.isoformat())
    response = client.get("/healthz", HTTP_ACCEPT="text/html")  # JSON whatever the Accept header says
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response["Retry-After"]
    body = response.json()
    assert body["status"] == "unavailable" and body["error"]["code"] == "service_unavailable"
    assert body["checks"]["database"] == "ok" and "heartbeat" in body["checks"]["worker"]
    cache.delete(WORKER_HEARTBEAT_KEY)
    assert client.get("/healthz").status_code == 503


@pytest.mark.usefixtures("shared_cache")
def test_a_worker_task_records_the_heartbeat(settings) -> None:
    from django_q.tasks import async_task

    cache.delete(WORKER_HEARTBEAT_KEY)
    async_task("generations.tasks.reap_generations", sync=True)
    assert cache.get(WORKER_HEARTBEAT_KEY) is not None
