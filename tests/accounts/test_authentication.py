from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, Tenant
from accounts.services import Actor, IssuedApiKey, api_key_revoke, tenant_set_status

pytestmark = pytest.mark.django_db


def error_code(response) -> str:
    return response.json()["error"]["code"]


def test_missing_key_is_401_authentication_required(api_client: Callable[..., APIClient]) -> None:
    response = api_client().get("/v1/api-keys")
    assert response.status_code == 401
    assert error_code(response) == "authentication_required"
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Basic dXNlcjpwYXNz", "malformed_authorization"),
        ("Bearer", "malformed_authorization"),
        ("Bearer not-a-key-without-dot", "malformed_api_key"),
        ("Bearer abc.def ghi", "malformed_api_key"),
    ],
)
def test_malformed_authorization_is_401(admin_key: IssuedApiKey, header: str, code: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/v1/api-keys")
    assert response.status_code == 401
    assert error_code(response) == code


def test_unknown_key_is_401_invalid_api_key(api_client: Callable[..., APIClient], admin_key: IssuedApiKey) -> None:
    prefix = admin_key.secret.partition(".")[0]
    for secret in ("Zz9Zz9Zz.unknownsecretvalue", f"{prefix}.wrongsecretvalue"):
        response = api_client(secret).get("/v1/api-keys")
        assert response.status_code == 401
        assert error_code(response) == "invalid_api_key"


def test_revoked_key_is_401_api_key_revoked(api_client: Callable[..., APIClient], admin_key: IssuedApiKey) -> None:
    api_key_revoke(api_key=admin_key.api_key)
    response = api_client(admin_key).get("/v1/api-keys")
    assert response.status_code == 401
    assert error_code(response) == "api_key_revoked"


def test_suspended_tenant_is_403(api_client: Callable[..., APIClient], admin_key: IssuedApiKey, tenant: Tenant) -> None:
    tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, actor=Actor())
    response = api_client(admin_key).get("/v1/api-keys")
    assert response.status_code == 403
    assert error_code(response) == "tenant_suspended"


def test_valid_key_is_accepted_and_last_used_recorded(
    api_client: Callable[..., APIClient], admin_key: IssuedApiKey
) -> None:
    assert admin_key.api_key.last_used_at is None
    response = api_client(admin_key).get("/v1/api-keys")
    assert response.status_code == 200
    admin_key.api_key.refresh_from_db()
    assert admin_key.api_key.last_used_at is not None


def test_key_secret_is_stored_only_hashed(admin_key: IssuedApiKey) -> None:
    stored = ApiKey.objects.get(pk=admin_key.api_key.pk)
    secret_part = admin_key.secret.partition(".")[2]
    for value in (stored.hashed_key, stored.prefix, stored.id, stored.name):
        assert admin_key.secret not in value
        assert secret_part not in value
    assert stored.hashed_key != admin_key.secret
    assert stored.is_valid(admin_key.secret)
