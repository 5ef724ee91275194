import time
from datetime import timedelta

import httpx
import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone

from project import health
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
def started_long_ago(monkeypatch):
    """This process has been up for longer than three reaper periods."""
    monkeypatch.setattr(health, "PROCESS_STARTED", time.monotonic() - 24 * 3600)


@pytest.fixture
def just_started(monkeypatch):
    monkeypatch.setattr(health, "PROCESS_STARTED", time.monotonic())


@pytest.mark.usefixtures("shared_cache", "started_long_ago")
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
    assert body["checks"]["database"] == "ok" and "reaper" in body["checks"]["maintenance"]
    cache.delete(REAPER_LAST_RUN_KEY)
    assert client.get("/healthz").status_code == 503


@pytest.mark.usefixtures("shared_cache", "just_started")
@pytest.mark.parametrize("last_run", [timedelta(hours=2), None], ids=["restart on an existing database", "new one"])
def test_a_fresh_process_is_healthy_until_the_lane_has_had_three_periods(client, settings, tmp_path,
                                                                          last_run) -> None:
    """A node restarted on an existing database finds the lane's last run from before the restart: it must not be
    taken out of the load balancer before the maintenance lane (restarted with it) has had its periods to run."""
    settings.MEDIA_ROOT = str(tmp_path)
    settings.REAPER_PERIOD_SECONDS = 60
    cache.delete(REAPER_LAST_RUN_KEY)
    if last_run is not None:
        cache.set(REAPER_LAST_RUN_KEY, (timezone.now() - last_run).isoformat())
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"]["maintenance"] == "ok"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # the web process reads the cache rows this test writes
def test_a_restarted_web_process_is_healthy_then_reports_a_lane_that_does_not_run(aihubmix_sandbox,
                                                                                  tmp_path) -> None:
    """A real web process on an existing database whose last reaper run is two hours old: healthy at once; then,
    with no maintenance lane running, unhealthy after three periods; healthy again once the lane runs."""
    cache.set(REAPER_LAST_RUN_KEY, (timezone.now() - timedelta(hours=2)).isoformat(), timeout=None)
    period = 2
    port = free_port()
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media",
                            REAPER_PERIOD_SECONDS=str(period))
    url = f"http://127.0.0.1:{port}/healthz"
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"):
        wait_http(url)
        started = time.monotonic()
        first = httpx.get(url, timeout=10)
        assert first.status_code == 200, first.json()
        assert wait_until(lambda: httpx.get(url, timeout=10).status_code == 503, timeout=30)
        assert time.monotonic() - started > 3 * period - 1  # not before its three periods
        assert "reaper" in httpx.get(url, timeout=10).json()["checks"]["maintenance"]
        reaper_run_record()  # the lane runs
        assert httpx.get(url, timeout=10).status_code == 200


@pytest.mark.usefixtures("shared_cache")
def test_the_scheduled_reaper_records_its_run(settings) -> None:
    from django_q.tasks import async_task

    cache.delete(REAPER_LAST_RUN_KEY)
    async_task("generations.tasks.reap_generations", sync=True)
    assert cache.get(REAPER_LAST_RUN_KEY) is not None
