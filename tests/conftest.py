"""Shared fixtures. Tests marked `postgres` need real row locks and concurrency and are skipped on SQLite; tests
marked `slow` start a process or a server, or take seconds, and `make test-fast` leaves them out."""

import os
import subprocess
from collections.abc import Callable

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from accounts.models import Tenant
from accounts.services import IssuedApiKey, api_key_create, tenant_create


def pytest_report_header(config: pytest.Config) -> str:
    engine = "SQLite" if settings.DATABASE_IS_SQLITE else "PostgreSQL"
    return f"database: {engine} ({settings.DATABASES['default']['ENGINE']})"


# Fixtures that start a server for the tests using them: those tests are `slow` without having to say so.
SLOW_FIXTURES = {"moto_s3_url", "live_server"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if not settings.DATABASE_IS_SQLITE:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL=postgres://... (make test does in CI)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _processes_only_in_slow_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that starts a process (a server, a forwarder, a probe, a linter, a browser) must be marked `slow`, or
    `make test-fast` would run it: unmarked, it fails at its first process instead of slowing the fast suite."""
    if request.node.get_closest_marker("slow"):
        return

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail(f"{request.node.nodeid} starts a process: mark it @pytest.mark.slow", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)
    monkeypatch.setattr(os, "fork", refuse)
    monkeypatch.setattr(os, "posix_spawn", refuse)
    monkeypatch.setattr(os, "posix_spawnp", refuse)


@pytest.fixture(autouse=True)
def _fresh_read_cache() -> None:
    """Rows cached by one test must not serve the next (rolled-back ids are reused on SQLite)."""
    from project.readcache import readcache_clear

    readcache_clear()


@pytest.fixture
def make_tenant(db: None) -> Callable[..., Tenant]:
    counter = iter(range(1, 10_000))

    def make(slug: str | None = None, name: str = "") -> Tenant:
        return tenant_create(slug=slug or f"tenant-{next(counter)}", name=name)

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("acme", "Acme Inc")


@pytest.fixture
def make_key(db: None) -> Callable[..., IssuedApiKey]:
    def make(tenant: Tenant, *, admin: bool = False, name: str = "test") -> IssuedApiKey:
        return api_key_create(tenant=tenant, name=name, is_admin=admin)

    return make


@pytest.fixture
def admin_key(tenant: Tenant, make_key: Callable[..., IssuedApiKey]) -> IssuedApiKey:
    return make_key(tenant, admin=True, name="admin")


@pytest.fixture
def member_key(tenant: Tenant, make_key: Callable[..., IssuedApiKey]) -> IssuedApiKey:
    return make_key(tenant, name="member")


@pytest.fixture
def api_client() -> Callable[[IssuedApiKey | str | None], APIClient]:
    def make(key: IssuedApiKey | str | None = None) -> APIClient:
        client = APIClient()
        secret = key.secret if isinstance(key, IssuedApiKey) else key
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def admin_client(api_client: Callable[..., APIClient], admin_key: IssuedApiKey) -> APIClient:
    return api_client(admin_key)




@pytest.fixture(scope="session")
def aihubmix_sandbox_server():
    from aihubmix_sandbox.server import start_sandbox

    handle = start_sandbox(api_key="sk-sandbox-test")
    yield handle
    handle.stop()


@pytest.fixture
def aihubmix_sandbox(aihubmix_sandbox_server, settings):
    """The local AIHubMix over real HTTP (one server per session, counters and latency reset per test), with the
    settings pointing the app at it and output URLs on loopback allowed."""
    aihubmix_sandbox_server.reset()
    aihubmix_sandbox_server.latency = 0.0
    settings.AIHUBMIX_API_KEY = "sk-sandbox-test"
    settings.AIHUBMIX_BASE_URL = aihubmix_sandbox_server.base_url
    settings.AIHUBMIX_TASKS_URL = aihubmix_sandbox_server.tasks_url
    settings.AIHUBMIX_POLL_INTERVAL_SECONDS = 0.05
    settings.OUTPUT_FETCH_ALLOW_PRIVATE = True
    return aihubmix_sandbox_server


@pytest.fixture(autouse=True)
def _catalog_rows(request: pytest.FixtureRequest) -> None:
    """The catalog lives in rows seeded by a migration; transactional tests flush them, so put back what is
    missing before any test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None and not {"db", "transactional_db"} & set(request.fixturenames):
        return
    transactional = "transactional_db" in request.fixturenames or bool(marker and marker.kwargs.get("transaction"))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from importlib import import_module

    from django.apps import apps

    from generations.models import CatalogModel

    if not CatalogModel.objects.exists():
        # The one seed is the migration's: run it again, on the current models.
        import_module("generations.migrations.0010_catalog_seed").seed(apps, None)
        import_module("generations.migrations.0016_lifecycle_calendar_prices_former_ids").catalog_refresh(apps, None)
        import_module("generations.migrations.0017_token_prices_seed").token_prices_seed(apps, None)


@pytest.fixture(scope="session", autouse=True)
def _notification_listener_stopped(django_db_setup):
    """A process's notification listener holds a connection to the test database; close it before the drop."""
    yield
    from generations.notifications import notifications_stop

    notifications_stop()
