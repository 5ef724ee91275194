import time
from datetime import timedelta

import httpx
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

import project.health
from project.health import REAPER_LAST_RUN_KEY, reaper_run_record
from tests.generations.processes import free_port, gunicorn, stack_environment, wait_http, wait_until

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
def test_healthz_reports_database_cache_storage_and_maintenance_lane(client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    reaper_run_record()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok", "checks": {"database": "ok", "cache": "ok", "storage": "ok", "maintenance": "ok"}
    }


@pytest.fixture
def process_started_long_ago(monkeypatch):
    monkeypatch.setattr(project.health, "_PROCESS_STARTED", -1e9)


@pytest.mark.usefixtures("shared_cache", "process_started_long_ago")
def test_healthz_fails_when_the_reaper_missed_three_periods(client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    settings.REAPER_PERIOD_SECONDS = 60
    almost = timezone.now() - timedelta(seconds=3 * 60 - 10)
    cache.set(REAPER_LAST_RUN_KEY, almost.isoformat())
    assert client.get("/healthz").status_code == 200
    stale = timezone.now() - timedelta(seconds=3 * 60 + 5)
    cache.set(REAPER_LAST_RUN_KEY, stale.isoformat())
    response = client.get("/healthz", HTTP_ACCEPT="text/html")  # JSON whatever the Accept header says
    assert response.status_code == 503 and response["Content-Type"] == "application/json"
    assert response["Retry-After"]
    body = response.json()
    assert body["status"] == "unavailable" and body["error"]["code"] == "service_unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["maintenance"].startswith("the maintenance lane last ran the reaper 18")
    assert "is `manage.py qcluster` running" in body["checks"]["maintenance"]
    cache.delete(REAPER_LAST_RUN_KEY)
    response = client.get("/healthz/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["maintenance"].startswith("the maintenance lane has never run the reaper")


@pytest.mark.usefixtures("shared_cache")
def test_a_fresh_process_is_ready_before_the_lane_had_its_first_period(client, settings, tmp_path, monkeypatch) -> None:
    """A restart on an existing database: the last reaper run is old, but this process only just started."""
    monkeypatch.setattr(project.health, "_PROCESS_STARTED", time.monotonic())
    settings.MEDIA_ROOT = str(tmp_path)
    cache.set(REAPER_LAST_RUN_KEY, (timezone.now() - timedelta(hours=2)).isoformat())
    response = client.get("/healthz/ready")
    assert response.status_code == 200, response.json()
    assert client.get("/healthz").status_code == 200


def test_liveness_asks_nothing_of_the_dependencies(client, settings) -> None:
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                   "LOCATION": "no_such_cache_table"}}
    assert client.get("/healthz/ready").status_code == 503
    response = client.get("/healthz/live")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the web process reads the cache rows this test writes
def test_a_restarted_web_process_is_healthy_then_reports_a_lane_that_does_not_run(aihubmix_sandbox,
                                                                                  tmp_path) -> None:
    """A real web process on an existing database whose last reaper run is two hours old: healthy at once; then,
    with no maintenance lane running, unhealthy after three periods; healthy again once the lane runs."""
    cache.set(REAPER_LAST_RUN_KEY, (timezone.now() - timedelta(hours=2)).isoformat(), timeout=None)
    period = 4
    port = free_port()
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media",
                            REAPER_PERIOD_SECONDS=str(period))
    url = f"http://127.0.0.1:{port}/healthz"
    launched = time.monotonic()  # the process starts after this: its age is at most the time since
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"):
        wait_http(url)
        first = httpx.get(url, timeout=10)
        assert first.status_code == 200, first.json()
        assert wait_until(lambda: httpx.get(url, timeout=10).status_code == 503, timeout=60)
        assert time.monotonic() - launched >= 3 * period  # not before its three periods
        assert "reaper" in httpx.get(url, timeout=10).json()["checks"]["maintenance"]
        reaper_run_record()  # the lane runs
        assert httpx.get(url, timeout=10).status_code == 200


@pytest.mark.usefixtures("shared_cache")
def test_the_scheduled_reaper_records_its_run(settings) -> None:
    from django_q.tasks import async_task

    cache.delete(REAPER_LAST_RUN_KEY)
    async_task("generations.tasks.reap_generations", sync=True)
    assert cache.get(REAPER_LAST_RUN_KEY) is not None
