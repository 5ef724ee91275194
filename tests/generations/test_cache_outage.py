"""Redis (CACHE_URL) unreachable while the database is fine: submits and reads go on, and what still needs Redis
answers 503 `service_unavailable`, never a 500.

The multi-host test found it: with the web host cut off, the rate limit's Redis INCR raised a ConnectionError that
became a 500, which clients (rightly) do not retry — the submission was lost to them."""

import socket

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from billing.models import Plan
from project.api.errors import api_exception_handler
from tests.generations.support import LOW_SQUARE, customer_create

pytestmark = pytest.mark.django_db


def redis_down(settings) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]  # bound, never listening: every connection is refused
    settings.CACHES = {"default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }}


def test_submits_and_reads_go_on_without_redis(settings) -> None:
    limited = Plan.objects.create(name="limited", markup_bps=2000, max_n=10, max_concurrent=None,
                                  requests_per_minute=3)
    customer = customer_create(plan=limited)
    # Changes to read-cached rows (plans, keys) still need Redis, to tell every process: made before it goes.
    redis_down(settings)

    accepted = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json")
    again = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a dog"}, format="json")
    read = customer.client.get(f"/v1/generations/{accepted.json()['id']}")
    over = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cow"}, format="json")  # 4th of 3
    customer.client.credentials(HTTP_AUTHORIZATION="Bearer not-a-key")
    stranger = customer.client.get("/v1/generations")

    assert [accepted.status_code, again.status_code, read.status_code] == [202, 202, 200]
    assert customer.wallet().held_micros == 2 * 7_200  # both held; the rate limit counted in the database
    assert over.status_code == 429 and over.json()["error"]["code"] == "rate_limited"
    assert stranger.status_code == 401


def test_what_still_needs_redis_answers_503_with_retry_after() -> None:
    response = api_exception_handler(RedisConnectionError("Error 111 connecting to 10.0.0.7:6379."), {})

    assert response.status_code == 503
    assert response.data["error"]["code"] == "service_unavailable"
    assert "6379" not in response.data["error"]["message"]
    assert int(response["Retry-After"]) >= 1
