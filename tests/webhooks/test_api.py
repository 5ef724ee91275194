from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from accounts.models import AuditEvent, Tenant
from accounts.services import IssuedApiKey
from tests.webhooks.conftest import received
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services.publishing import webhook_event_publish
from webhooks.tasks import deliver_webhook

pytestmark = pytest.mark.django_db

ENDPOINT_FIELDS = {
    "id",
    "url",
    "description",
    "events",
    "enabled",
    "disabled_at",
    "disabled_reason",
    "consecutive_failures",
    "created_at",
    "updated_at",
}


@pytest.fixture
def hook_url(receiver: HTTPServer) -> str:
    return receiver.url_for("/hook")


@pytest.fixture
def endpoint(admin_client: APIClient, hook_url: str) -> dict:
    response = admin_client.post("/v1/webhook-endpoints", {"url": hook_url}, format="json")
    assert response.status_code == 201
    return response.json()


def test_admin_key_creates_an_endpoint_and_sees_its_secret_once(
    admin_client: APIClient, hook_url: str
) -> None:
    response = admin_client.post(
        "/v1/webhook-endpoints",
        {"url": hook_url, "events": ["generation.failed", "generation.succeeded"], "description": "prod"},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == ENDPOINT_FIELDS | {"secret"}
    assert body["id"].startswith("we_") and body["secret"].startswith("whsec_")
    assert body["events"] == ["generation.succeeded", "generation.failed"]
    assert body["enabled"] is True and body["description"] == "prod"
    assert set(admin_client.get(f"/v1/webhook-endpoints/{body['id']}").json()) == ENDPOINT_FIELDS
    assert all("secret" not in item for item in admin_client.get("/v1/webhook-endpoints").json()["results"])
    audit = AuditEvent.objects.get(action="webhook_endpoint.created", target_id=body["id"])
    assert audit.actor_type == AuditEvent.ActorType.API_KEY and "secret" not in audit.after


def test_an_endpoint_without_events_receives_every_event(admin_client: APIClient, endpoint: dict) -> None:
    assert endpoint["events"] == []


def test_member_key_cannot_manage_endpoints(
    api_client: Callable[..., APIClient], member_key: IssuedApiKey, hook_url: str
) -> None:
    client = api_client(member_key)
    assert client.get("/v1/webhook-endpoints").status_code == 403
    response = client.post("/v1/webhook-endpoints", {"url": hook_url}, format="json")
    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_an_unknown_event_type_is_a_validation_error(admin_client: APIClient, hook_url: str) -> None:
    response = admin_client.post(
        "/v1/webhook-endpoints", {"url": hook_url, "events": ["generation.exploded"]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["param"].startswith("events")


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://localhost:8443/hook",
        "https://[::1]/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "http://93.184.215.14/hook",
        "https://user:pass@93.184.215.14/hook",
        "ftp://93.184.215.14/hook",
    ],
)
def test_private_loopback_link_local_and_plain_http_urls_are_refused(
    settings, admin_client: APIClient, url: str
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False

    response = admin_client.post("/v1/webhook-endpoints", {"url": url}, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("webhook_url_not_allowed", "url")
    assert not WebhookEndpoint.objects.exists()


def test_a_public_https_url_is_accepted_when_private_targets_are_refused(
    settings, admin_client: APIClient
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = admin_client.post(
        "/v1/webhook-endpoints", {"url": "https://93.184.215.14/hook"}, format="json"
    )
    assert response.status_code == 201


def test_patch_changes_url_events_and_description_and_is_audited(
    admin_client: APIClient, endpoint: dict, receiver: HTTPServer
) -> None:
    new_url = receiver.url_for("/v2/hook")
    response = admin_client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}",
        {"url": new_url, "events": ["image.rejected"], "description": "moderation"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["url"], body["events"], body["description"]) == (new_url, ["image.rejected"], "moderation")
    audit = AuditEvent.objects.get(action="webhook_endpoint.updated", target_id=endpoint["id"])
    assert audit.before["url"] == endpoint["url"] and audit.after["url"] == new_url


def test_patch_to_a_loopback_url_is_refused_when_private_targets_are_off(
    settings, admin_client: APIClient, endpoint: dict
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = False
    response = admin_client.patch(
        f"/v1/webhook-endpoints/{endpoint['id']}", {"url": "https://127.0.0.1:9/x"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_url_not_allowed"
    assert WebhookEndpoint.objects.get(pk=endpoint["id"]).url == endpoint["url"]


def test_delete_disables_the_endpoint_and_patch_re_enables_it(
    admin_client: APIClient, endpoint: dict, tenant: Tenant
) -> None:
    url = f"/v1/webhook-endpoints/{endpoint['id']}"

    disabled = admin_client.delete(url)
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False and disabled.json()["disabled_at"]
    assert admin_client.delete(url).status_code == 200
    assert (
        AuditEvent.objects.filter(action="webhook_endpoint.disabled", target_id=endpoint["id"]).count() == 1
    )
    assert admin_client.get(url).status_code == 200
    event = webhook_event_publish(tenant=tenant, event_type="generation.canceled", data={"id": "gen_1"})
    assert not WebhookDelivery.objects.filter(event=event).exists()

    enabled = admin_client.patch(url, {"enabled": True}, format="json").json()
    assert (enabled["enabled"], enabled["disabled_at"], enabled["disabled_reason"]) == (True, None, "")


def test_rotate_secret_returns_a_new_secret_that_signs_deliveries(
    admin_client: APIClient, endpoint: dict, tenant: Tenant, receiver: HTTPServer
) -> None:
    receiver.expect_request("/hook").respond_with_data("ok")

    response = admin_client.post(f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret")

    assert response.status_code == 200
    new_secret = response.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != endpoint["secret"]
    event = webhook_event_publish(tenant=tenant, event_type="generation.succeeded", data={"id": "gen_1"})
    deliver_webhook(WebhookDelivery.objects.get(event=event).id)
    [request] = received(receiver)
    assert Webhook(new_secret).verify(request.get_data(), dict(request.headers))["data"] == {"id": "gen_1"}


def test_deliveries_are_listed_newest_first_with_their_outcome(
    admin_client: APIClient, endpoint: dict, tenant: Tenant, receiver: HTTPServer
) -> None:
    receiver.expect_ordered_request("/hook").respond_with_data("ok")
    receiver.expect_ordered_request("/hook").respond_with_data("nope", status=500)
    events = [
        webhook_event_publish(tenant=tenant, event_type=event_type, data={"id": f"gen_{index}"})
        for index, event_type in enumerate(["generation.succeeded", "generation.failed", "image.rejected"])
    ]
    for event in events[:2]:
        deliver_webhook(WebhookDelivery.objects.get(event=event).id)
    url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    listed = admin_client.get(url).json()["results"]

    assert [item["event_id"] for item in listed] == [event.id for event in reversed(events)]
    pending, retrying, succeeded = listed
    assert (pending["status"], pending["attempts"], pending["event_type"]) == ("pending", 0, "image.rejected")
    assert (retrying["status"], retrying["attempts"], retrying["last_response_status"]) == ("pending", 1, 500)
    assert retrying["last_error"].startswith("HTTP 500") and retrying["next_attempt_at"]
    assert (succeeded["status"], succeeded["last_response_status"], succeeded["last_error"]) == (
        "succeeded",
        200,
        "",
    )
    assert succeeded["delivered_at"] and succeeded["created_at"] and succeeded["last_attempt_at"]
    only_succeeded = admin_client.get(url, {"status": "succeeded"}).json()["results"]
    assert [item["id"] for item in only_succeeded] == [succeeded["id"]]
    bad = admin_client.get(url, {"status": "lost"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


def test_deliveries_are_cursor_paginated(admin_client: APIClient, endpoint: dict, tenant: Tenant) -> None:
    for index in range(5):
        webhook_event_publish(tenant=tenant, event_type="generation.succeeded", data={"id": f"gen_{index}"})
    url = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

    first = admin_client.get(url, {"limit": 2}).json()
    second = admin_client.get(first["next"]).json()
    third = admin_client.get(second["next"]).json()

    pages = [first["results"], second["results"], third["results"]]
    assert [len(page) for page in pages] == [2, 2, 1] and third["next"] is None
    assert len({item["id"] for page in pages for item in page}) == 5


def test_other_tenants_endpoints_are_not_found(
    admin_client: APIClient,
    make_tenant: Callable[..., Tenant],
    make_key: Callable[..., IssuedApiKey],
    api_client: Callable[..., APIClient],
    hook_url: str,
) -> None:
    other_client = api_client(make_key(make_tenant("globex"), admin=True))
    theirs = other_client.post("/v1/webhook-endpoints", {"url": hook_url}, format="json").json()
    base = f"/v1/webhook-endpoints/{theirs['id']}"

    responses = [
        admin_client.get(base),
        admin_client.patch(base, {"description": "mine now"}, format="json"),
        admin_client.delete(base),
        admin_client.post(f"{base}/rotate-secret"),
        admin_client.get(f"{base}/deliveries"),
    ]

    assert [response.status_code for response in responses] == [404] * 5
    assert {response.json()["error"]["code"] for response in responses} == {"not_found"}
    assert admin_client.get("/v1/webhook-endpoints").json()["results"] == []
    unchanged = WebhookEndpoint.objects.get(pk=theirs["id"])
    assert unchanged.enabled and unchanged.description == "" and unchanged.secret == theirs["secret"]
