"""The contract every response keeps: a request id, the one JSON error shape (unknown paths, crashes and outages
included), and strict, bounded input on every route."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest
from django.conf import settings
from django.db import OperationalError
from rest_framework.test import APIClient

from accounts.services import api_key_create
from project.health import reaper_run_record
from tests.generations.support import LOW_SQUARE, customer_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer():
    return customer_create("contract")


def _error(response) -> dict:
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    return response.json()["error"]


# --- Request ids ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("get", "/v1/quota", 200), ("get", "/v1/generations/gen_nope", 404), ("get", "/v1/no-such-thing", 404),
     ("get", "/nowhere", 404), ("post", "/v1/generations", 400), ("get", "/healthz", 200)],
)
def test_every_response_carries_a_generated_request_id(customer, settings, tmp_path, method, path, status) -> None:
    # /healthz healthy: a cache its checking threads see (this process's, not the test transaction's database
    # cache) holding a reaper run, and a writable storage.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "request-ids"}}
    settings.MEDIA_ROOT = str(tmp_path)
    reaper_run_record()
    response = getattr(customer.client, method)(path, {}, format="json") if method == "post" else \
        getattr(customer.client, method)(path)
    assert response.status_code == status
    assert uuid.UUID(response["X-Request-Id"])
    if response.status_code >= 400:
        assert _error(response)["request_id"] == response["X-Request-Id"]


def test_a_sane_incoming_request_id_is_echoed_in_header_body_and_logs(customer, caplog) -> None:
    incoming = "client-trace_0123456789:abc"
    with caplog.at_level("INFO"):
        response = customer.client.get("/v1/generations/gen_missing", HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 404
    assert response["X-Request-Id"] == incoming
    assert _error(response)["request_id"] == incoming
    logged = [record.msg for record in caplog.records if isinstance(record.msg, dict)
              and record.msg.get("event") in ("request_started", "request_finished")]
    # One line per request at INFO (request_started is DEBUG), carrying the id and the user agent.
    assert [entry["event"] for entry in logged] == ["request_finished"]
    assert {entry["request_id"] for entry in logged} == {incoming}
    assert "user_agent" in logged[0] and logged[0]["ip"] == "127.0.0.1"


@pytest.mark.parametrize("incoming", ["x" * 129, "short", "has space in it", "<script>alert(1)</script>", "é" * 12])
def test_an_unsafe_incoming_request_id_is_replaced(customer, incoming) -> None:
    response = customer.client.get("/v1/quota", HTTP_X_REQUEST_ID=incoming)
    assert response.status_code == 200
    assert response["X-Request-Id"] != incoming and uuid.UUID(response["X-Request-Id"])


# --- One error shape ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/generations/gen_x/nope", "/v1/", "/", "/static-nothing"])
def test_unknown_paths_are_json_404_not_found(customer, path) -> None:
    for client in (customer.client, APIClient()):
        response = client.get(path)
        assert response.status_code == 404
        error = _error(response)
        assert error["code"] == "not_found" and error["request_id"] == response["X-Request-Id"]


@pytest.mark.parametrize("path", ["/admin/no-such-app/", "/admin/accounts/no-such-model/"])
def test_unknown_admin_pages_are_djangos_html_404_for_staff(admin_client_staff, path) -> None:
    response = admin_client_staff.get(path, HTTP_ACCEPT="text/html")
    assert response.status_code == 404
    assert response["Content-Type"] == "text/html; charset=utf-8" and b"<h1>Not Found</h1>" in response.content


def test_an_unknown_admin_page_sends_a_signed_out_browser_to_the_login_page(client) -> None:
    response = client.get("/admin/no-such-app/", HTTP_ACCEPT="text/html")
    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/admin/no-such-app/")


def test_outside_the_admin_a_browser_gets_the_json_404_too(client) -> None:
    response = client.get("/nowhere", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert response.status_code == 404 and _error(response)["code"] == "not_found"


@pytest.fixture
def admin_client_staff(client, django_user_model):
    user = django_user_model.objects.create_superuser("root@example.com", "correct horse battery")
    client.force_login(user)
    return client


def _crashing_client(customer) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {customer.key.secret}")
    return client


def test_an_unexpected_exception_is_json_500_internal_error_without_internals(customer, monkeypatch) -> None:
    def explode(**_: object) -> None:
        raise RuntimeError("secret internals at 0xdeadbeef")

    monkeypatch.setattr("generations.api.quota_views.quota_status", explode)
    response = _crashing_client(customer).get("/v1/quota")
    assert response.status_code == 500
    error = _error(response)
    assert error["code"] == "internal_error" and error["request_id"] == response["X-Request-Id"]
    assert "secret" not in response.content.decode() and "Traceback" not in response.content.decode()


def test_a_database_error_inside_a_view_is_503_with_retry_after(customer, monkeypatch) -> None:
    def down(**_: object) -> None:
        raise OperationalError("connection to server at 10.0.0.5 failed")

    monkeypatch.setattr("generations.api.quota_views.quota_status", down)
    response = _crashing_client(customer).get("/v1/quota")
    assert response.status_code == 503
    assert _error(response)["code"] == "service_unavailable"
    assert response["Retry-After"] == str(settings.DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS)
    assert "10.0.0.5" not in response.content.decode()


# Everything under /v1/images/ is the OpenAI-compatible API: its clients (the `openai` SDK) read OpenAI's shape.
OPENAI_ERROR_KEYS = {"message", "type", "param", "code", "request_id"}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("post", "/v1/images/variations", 404, "not_found"), ("get", "/v1/images/", 404, "not_found"),
     ("post", "/v1/images/generations/extra", 404, "not_found"), ("get", "/v1/images/generations", 405,
                                                                  "method_not_allowed")],
)
def test_errors_under_v1_images_are_in_openais_shape(customer, method, path, status, code) -> None:
    for client in (customer.client, APIClient()):
        response = getattr(client, method)(path)
        if client is not customer.client and status == 405:
            status, code = 401, "authentication_required"  # the key is checked before the method
        assert response.status_code == status, (path, response.content)
        error = _error(response)
        assert set(error) == OPENAI_ERROR_KEYS, error
        assert error["code"] == code and error["type"] in ("invalid_request_error", "authentication_error")
        assert error["request_id"] == response["X-Request-Id"]
    native = _error(customer.client.post("/v1/imagesx/variations"))
    assert "type" not in native and native["code"] == "not_found"  # the prefix is /v1/images/, not a string match


def test_a_crash_under_v1_images_is_in_openais_shape(customer, monkeypatch) -> None:
    async def explode(**_: object) -> None:
        raise OperationalError("connection to server at 10.0.0.5 failed")

    # Outside DRF: the wait on the event loop (generations/api/waiting.py), after the view submitted.
    monkeypatch.setattr("generations.api.waiting.wait_for_generation", explode)
    response = _crashing_client(customer).post("/v1/images/generations", {**LOW_SQUARE, "prompt": "a cat"},
                                                format="json")
    assert response.status_code == 503 and response["Retry-After"]
    error = _error(response)
    assert set(error) == OPENAI_ERROR_KEYS and error["code"] == "service_unavailable"
    assert error["type"] == "api_error" and "10.0.0.5" not in response.content.decode()


def test_the_outage_breakers_503_under_v1_images_is_in_openais_shape(customer, monkeypatch) -> None:
    monkeypatch.setattr("project.db_outage._open_since", 1.0)  # the breaker is open: answered by the middleware
    openai_shaped = _error(customer.client.post("/v1/images/generations", {"prompt": "x"}, format="json"))
    native = _error(customer.client.get("/v1/quota"))
    assert set(openai_shaped) == OPENAI_ERROR_KEYS and openai_shaped["code"] == "service_unavailable"
    assert "type" not in native and native["code"] == "service_unavailable"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


_OUTAGE_PROBE = textwrap.dedent(
    """
    import json, django
    django.setup()
    from django.test import Client
    client = Client(raise_request_exception=False)
    results = {}
    for name, path, headers in [
        ("healthz", "/healthz", {}),
        ("api", "/v1/generations", {"HTTP_AUTHORIZATION": "Bearer abcdefgh.secretsecret"}),
        ("openai", "/v1/images/generations", {"HTTP_AUTHORIZATION": "Bearer abcdefgh.secretsecret"}),
        ("unknown", "/v1/nope", {}),
    ]:
        response = (client.post(path, {"prompt": "x"}, content_type="application/json", **headers)
                    if name == "openai" else client.get(path, **headers))
        results[name] = {"status": response.status_code, "type": response["Content-Type"],
                         "retry_after": response.get("Retry-After"), "request_id": response.get("X-Request-Id"),
                         "body": response.content.decode()}
    print(json.dumps(results))
    """
)


@pytest.mark.slow
def test_with_the_database_down_the_api_and_healthz_answer_json_503(tmp_path) -> None:
    """A separate process whose database does not answer (connection refused, as when PostgreSQL is down)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/gone",
        "MEDIA_ROOT": str(tmp_path),
        "LOG_LEVEL": "CRITICAL",
    }
    env.pop("CACHE_URL", None)  # the database cache, down with the database
    completed = subprocess.run(
        [sys.executable, "-c", _OUTAGE_PROBE], env=env, cwd=settings.BASE_DIR, capture_output=True, text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    for name in ("healthz", "api", "openai"):
        result = results[name]
        assert result["status"] == 503, (name, result)
        assert result["type"].startswith("application/json") and result["retry_after"]
        body = json.loads(result["body"])
        assert body["error"]["code"] == "service_unavailable"
        assert body["error"]["request_id"] == result["request_id"]
        assert "Traceback" not in result["body"] and "psycopg" not in result["body"]
    assert json.loads(results["healthz"]["body"])["checks"]["database"] != "ok"
    assert results["unknown"]["status"] == 404 and json.loads(results["unknown"]["body"])["error"]["code"] == "not_found"


# --- Strict, bounded input on every route -----------------------------------------------------------------------

NUL_ROUTES = [
    ("get", "/v1/generations/gen_%00x", 404, "not_found"),
    ("post", "/v1/generations/gen_%00x/cancel", 404, "not_found"),
    ("get", "/v1/generations/gen_%00x/images/0", 404, "not_found"),
    ("post", "/v1/generations/gen_%00x/images/0/report", 404, "not_found"),
    ("get", "/v1/files/tok%00en", 404, "not_found"),
    ("get", "/v1/models/gpt%00image", 404, "not_found"),
    ("post", "/v1/api-keys/ab%00cd/revoke", 404, "not_found"),
    ("get", "/v1/webhook-endpoints/we_%00", 404, "not_found"),
    ("patch", "/v1/webhook-endpoints/we_%00", 404, "not_found"),
    ("delete", "/v1/webhook-endpoints/we_%00", 404, "not_found"),
    ("post", "/v1/webhook-endpoints/we_%00/rotate-secret", 404, "not_found"),
    ("get", "/v1/webhook-endpoints/we_%00/deliveries", 404, "not_found"),
    ("get", "/v1/statements/1%00", 404, "not_found"),
    ("get", "/v1/generations?model=gpt%00", 400, "validation_error"),
    ("get", "/v1/generations?api_key=ab%00", 400, "validation_error"),
    ("get", "/v1/generations?status=%00", 400, "validation_error"),
    ("get", "/v1/generations?cursor=%00", 400, "invalid_cursor"),
    ("get", "/v1/webhook-deliveries?status=%00", 400, "validation_error"),
    ("get", "/v1/usage?group_by=%00", 400, "validation_error"),
]


@pytest.mark.parametrize(("method", "path", "status", "code"), NUL_ROUTES)
def test_a_nul_byte_in_a_path_or_query_is_a_json_4xx(customer, method, path, status, code) -> None:
    admin = api_key_create(tenant=customer.tenant, name="admin", is_admin=True)  # every route is open to it
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin.secret}")
    response = getattr(client, method)(path)
    assert (response.status_code, _error(response)["code"]) == (status, code), path


DEEP = 950
JSON_ENDPOINTS = [
    ("post", "/v1/generations"),
    ("post", "/v1/api-keys"),
    ("post", "/v1/webhook-endpoints"),
    ("patch", "/v1/webhook-endpoints/we_1"),
    ("post", "/v1/generations/gen_1/images/0/report"),
    ("post", "/v1/images/generations"),
]


@pytest.mark.parametrize("body", ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP,
                                  "[" * 100_000 + "]" * 100_000, '{"model": "gpt-image-2", "params": ' +
                                  '{"x":' * DEEP + "1" + "}" * DEEP + "}"])
@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_deeply_nested_json_is_400_malformed_request_on_every_json_endpoint(customer, method, path, body) -> None:
    admin = customer_create("contract-admin")
    key = api_key_create(tenant=admin.tenant, name="admin", is_admin=True)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.secret}")
    response = getattr(client, method)(path, body, content_type="application/json")
    assert response.status_code == 400, (path, response.status_code, response.content[:300])
    assert _error(response)["code"] == "malformed_request"
    assert "Recursion" not in response.content.decode()


def test_nesting_within_the_limit_still_parses(customer) -> None:
    body = {**LOW_SQUARE, "prompt": "a cat", "params": {"a": {"b": {"c": 1}}}}
    response = customer.client.post("/v1/generations", body, format="json")
    # Parsed fine; refused by the catalog for the unknown vendor parameter, not by the parser.
    assert response.status_code == 400 and _error(response)["code"] != "malformed_request"
