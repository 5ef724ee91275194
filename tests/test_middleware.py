"""The middleware stack under ASGI (as the Procfile serves it): API requests skip the browser-only layers and cross
one thread hop; staff pages keep sessions and CSRF exactly as Django's own middleware does."""

import asyncio
import re

import httpx
import pytest
from asgiref import sync
from django.db import connections

from accounts.models import User
from project.asgi import application
from tests.generations.support import LOW_SQUARE, customer_create

pytestmark = pytest.mark.django_db(transaction=True)  # the ASGI app's threads use their own connections


@pytest.fixture(autouse=True)
def connections_per_request(monkeypatch):
    """As under the Procfile's pool: each request's thread gives its connection back when the request ends."""
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)


def _asgi(requests):
    async def run():
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            return await requests(client)

    return asyncio.run(run())


@pytest.fixture
def hops(monkeypatch):
    """Counts asgiref's sync_to_async calls (each is a hop to a thread and back)."""
    counted = {"n": 0}
    original = sync.SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        counted["n"] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(sync.SyncToAsync, "__call__", counting)
    return counted


def test_an_api_submit_crosses_few_thread_hops_and_gets_the_security_headers_without_a_session(hops) -> None:
    customer = customer_create()
    headers = {"Authorization": f"Bearer {customer.key.secret}"}
    body = {**LOW_SQUARE, "prompt": "a lighthouse at dawn"}
    _asgi(lambda client: client.post("/v1/generations", json=body, headers=headers))  # warm the caches
    hops["n"] = 0

    response = _asgi(lambda client: client.post("/v1/generations", json=body, headers=headers))

    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert response.headers["X-Request-Id"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "set-cookie" not in response.headers and "Cookie" not in response.headers.get("Vary", "")
    # The view, plus the handler's own (request_started / request_finished receivers, closing the response).
    # Django's own middleware under ASGI made it 18 (two per browser layer).
    assert hops["n"] <= 6, hops["n"]


def test_staff_pages_keep_sessions_and_csrf_under_asgi(hops) -> None:
    User.objects.create_superuser("root@example.com", "correct horse battery")

    async def login(client: httpx.AsyncClient):
        page = await client.get("/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        form = {"username": "root@example.com", "password": "correct horse battery", "next": "/admin/"}
        client.cookies.set("csrftoken", "x" * 32)
        refused = await client.post("/admin/login/", data=form, headers={"Referer": "http://127.0.0.1/admin/login/"})
        client.cookies.set("csrftoken", page.cookies["csrftoken"])
        accepted = await client.post(
            "/admin/login/", data={**form, "csrfmiddlewaretoken": token},
            headers={"Referer": "http://127.0.0.1/admin/login/"},
        )
        client.cookies.set("sessionid", accepted.cookies["sessionid"])
        index = await client.get("/admin/")
        return page, refused, accepted, index

    page, refused, accepted, index = _asgi(login)

    assert page.status_code == 200 and page.cookies["csrftoken"]
    assert refused.status_code == 403  # no valid CSRF token
    assert accepted.status_code == 302 and accepted.headers["Location"] == "/admin/"
    assert index.status_code == 200 and "Dashboard" in index.text  # the staff dashboard is the landing page
    assert index.headers["X-Frame-Options"] == "DENY"
