from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, AuditEvent, Tenant
from accounts.services import IssuedApiKey

pytestmark = pytest.mark.django_db


def test_admin_key_creates_a_key_and_sees_its_secret_once(admin_client: APIClient, api_client) -> None:
    response = admin_client.post("/v1/api-keys", {"name": "ci bot"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "ci bot" and body["is_admin"] is False
    assert body["key"].startswith(body["prefix"] + ".")
    # the new key works
    assert api_client(body["key"]).get("/v1/api-keys").status_code == 403
    listed = admin_client.get("/v1/api-keys").json()["results"]
    assert {item["prefix"] for item in listed} >= {body["prefix"]}
    assert all("key" not in item and "hashed_key" not in item for item in listed)
    assert AuditEvent.objects.filter(action="api_key.created", target_id=body["id"]).exists()


def test_create_key_with_bad_input_is_400_and_creates_nothing(admin_client: APIClient) -> None:
    before = ApiKey.objects.count()
    response = admin_client.post("/v1/api-keys", {"name": "x" * 51}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["param"] == "name"
    assert ApiKey.objects.count() == before


def test_member_key_cannot_manage_keys(api_client: Callable[..., APIClient], member_key: IssuedApiKey) -> None:
    client = api_client(member_key)
    assert client.get("/v1/api-keys").status_code == 403
    response = client.post("/v1/api-keys", {"name": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_list_shows_prefix_name_dates_and_revocation(admin_client: APIClient, member_key: IssuedApiKey) -> None:
    admin_client.post(f"/v1/api-keys/{member_key.api_key.prefix}/revoke")
    items = {item["prefix"]: item for item in admin_client.get("/v1/api-keys").json()["results"]}
    revoked = items[member_key.api_key.prefix]
    assert revoked["revoked"] is True and revoked["revoked_at"]
    assert set(revoked) == {"id", "prefix", "name", "is_admin", "created_at", "last_used_at", "revoked", "revoked_at"}


def test_revoke_is_idempotent_and_audited_once(admin_client: APIClient, member_key: IssuedApiKey) -> None:
    url = f"/v1/api-keys/{member_key.api_key.prefix}/revoke"
    assert admin_client.post(url).status_code == 200
    assert admin_client.post(url).status_code == 200
    assert AuditEvent.objects.filter(action="api_key.revoked", target_id=member_key.api_key.prefix).count() == 1


def test_other_tenants_keys_are_invisible(
    admin_client: APIClient,
    make_tenant: Callable[..., Tenant],
    make_key: Callable[..., IssuedApiKey],
    api_client: Callable[..., APIClient],
) -> None:
    other = make_key(make_tenant("globex"), admin=True)
    listed = admin_client.get("/v1/api-keys").json()["results"]
    assert other.api_key.prefix not in {item["prefix"] for item in listed}
    response = admin_client.post(f"/v1/api-keys/{other.api_key.prefix}/revoke")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    other.api_key.refresh_from_db()
    assert other.api_key.revoked is False
    assert api_client(other).get("/v1/api-keys").status_code == 200


def test_list_is_cursor_paginated(admin_client: APIClient, tenant: Tenant, make_key) -> None:
    for index in range(5):
        make_key(tenant, name=f"k{index}")
    first = admin_client.get("/v1/api-keys?limit=2").json()
    assert len(first["results"]) == 2 and first["next"]
    seen = [item["prefix"] for item in first["results"]]
    page = first
    while page["next"]:
        page = admin_client.get(page["next"]).json()
        seen += [item["prefix"] for item in page["results"]]
    assert len(seen) == len(set(seen)) == 6
