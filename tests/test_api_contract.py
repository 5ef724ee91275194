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
     ("get", "/nowhere", 404), ("post", "/v1/generations", 400), ("get", "/healthz", None)],
)
def test_every_response_carries_a_generated_request_id(customer, method, path, status) -> None:
    response = getattr(customer.client, method)(path, {}, format="json") if method == "post" else \
        getattr(customer.client, method)(path)
    assert status is None or response.status_code == status
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


def test_admin_pages_keep_their_html_404(admin_client_staff) -> None:
    response = admin_client_staff.get("/admin/accounts/tenant/999999/change/nope/")
    assert response.status_code in (302, 404)
    assert not response["Content-Type"].startswith("application/json")


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
    ("get", "/v1/generations/gen_%00x"),
    ("post", "/v1/generations/gen_%00x/cancel"),
    ("get", "/v1/generations/gen_%00x/images/0"),
    ("post", "/v1/generations/gen_%00x/images/0/report"),
    ("get", "/v1/files/tok%00en"),
    ("get", "/v1/models/gpt%00image"),
    ("post", "/v1/api-keys/ab%00cd/revoke"),
    ("get", "/v1/webhook-endpoints/we_%00"),
    ("patch", "/v1/webhook-endpoints/we_%00"),
    ("delete", "/v1/webhook-endpoints/we_%00"),
    ("post", "/v1/webhook-endpoints/we_%00/rotate-secret"),
    ("get", "/v1/webhook-endpoints/we_%00/deliveries"),
    ("get", "/v1/statements/1%00"),
    ("get", "/v1/generations?model=gpt%00"),
    ("get", "/v1/generations?api_key=ab%00"),
    ("get", "/v1/generations?status=%00"),
    ("get", "/v1/generations?cursor=%00"),
    ("get", "/v1/webhook-endpoints/we_1/deliveries?status=%00"),
    ("get", "/v1/usage?group_by=%00"),
]


@pytest.mark.parametrize(("method", "path"), NUL_ROUTES)
def test_a_nul_byte_in_a_path_or_query_is_a_json_4xx(customer, method, path) -> None:
    response = getattr(_crashing_client(customer), method)(path)
    if "?" in path and "cursor" in path:
        assert response.status_code in (200, 400)  # DRF reads a garbage cursor as "the first page"
        return
    assert 400 <= response.status_code < 500, (path, response.status_code)
    assert _error(response)["code"] in (
        "not_found", "validation_error", "invalid_cursor", "unknown_model", "permission_denied"
    )


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
    from accounts.services import api_key_create

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
