"""Repeated failed authentications from one address are throttled (429 + Retry-After) before any key lookup;
good keys and other addresses are not affected."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ATTACKER = "203.0.113.7"
NEIGHBOUR = "198.51.100.9"


@pytest.fixture
def limited(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "auth-failures"}}
    settings.AUTH_FAILURE_LIMIT = 5
    settings.AUTH_FAILURE_WINDOW_SECONDS = 60
    cache.clear()
    yield settings
    cache.clear()


def _get(secret: str, address: str):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client.get("/v1/quota")


def test_failures_past_the_limit_are_429_with_retry_after_and_no_key_lookup(limited, admin_key) -> None:
    assert _get(admin_key.secret, ATTACKER).status_code == 200  # a good key, remembered as good
    for attempt in range(5):
        response = _get(f"guess{attempt:03d}.wrongsecret", ATTACKER)
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_api_key"
    malformed = _get("no-dot-in-here", ATTACKER)
    assert malformed.status_code == 429

    with CaptureQueriesContext(connection) as queries:
        blocked = _get("guess999.wrongsecret", ATTACKER)
    assert blocked.status_code == 429
    error = blocked.json()["error"]
    assert error["code"] == "too_many_failed_authentications"
    assert error["request_id"] == blocked["X-Request-Id"]
    assert 1 <= int(blocked["Retry-After"]) <= 60
    assert not [q for q in queries.captured_queries if "api_key" in q["sql"].lower()], "looked the key up"

    # The good key still works from the throttled address, and other addresses are untouched.
    assert _get(admin_key.secret, ATTACKER).status_code == 200
    neighbour = _get("guess000.wrongsecret", NEIGHBOUR)
    assert neighbour.status_code == 401


def test_successful_requests_do_not_count_as_failures(limited, admin_key) -> None:
    for _ in range(12):
        assert _get(admin_key.secret, ATTACKER).status_code == 200
    assert _get("guess000.wrongsecret", ATTACKER).status_code == 401


def test_a_suspended_tenant_is_403_and_not_counted_as_a_failed_guess(limited, admin_key, tenant) -> None:
    tenant.status = tenant.Status.SUSPENDED
    tenant.save()
    for _ in range(7):
        assert _get(admin_key.secret, ATTACKER).status_code == 403
    assert _get("guess000.wrongsecret", ATTACKER).status_code == 401
