import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from accounts.models import AuditEvent, Tenant, User
from webhooks.models import WebhookDelivery
from webhooks.services.publishing import webhook_event_publish

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("staff@example.com", "pw"))
    return client


def test_staff_see_endpoints_without_their_secret(
    staff_client: Client, tenant: Tenant, make_endpoint
) -> None:
    endpoint = make_endpoint(tenant)

    listing = staff_client.get("/admin/webhooks/webhookendpoint/")
    detail = staff_client.get(f"/admin/webhooks/webhookendpoint/{quote(endpoint.pk)}/change/")

    assert listing.status_code == 200 and endpoint.url in listing.content.decode()
    assert detail.status_code == 200
    secret_body = endpoint.secret.removeprefix("whsec_")
    assert secret_body not in listing.content.decode() and secret_body not in detail.content.decode()


def test_staff_can_disable_an_endpoint_and_it_is_audited(
    staff_client: Client, tenant: Tenant, make_endpoint
) -> None:
    endpoint = make_endpoint(tenant)

    response = staff_client.post(
        "/admin/webhooks/webhookendpoint/", {"action": "disable", "_selected_action": [endpoint.pk]}
    )

    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "Disabled by staff."
    audit = AuditEvent.objects.get(action="webhook_endpoint.disabled", target_id=endpoint.pk)
    assert audit.actor_type == AuditEvent.ActorType.STAFF


# The second id once came up at random: Django's admin reads "_3A" in a URL as ":", so links to such an object
# must be built with admin's quote() (it writes "_" as "_5F"), as the admin's own lists do.
@pytest.mark.parametrize("delivery_id", [None, "whd_3A7adIXikUVlDh4XFGmnryO2"])
def test_deliveries_are_read_only_and_filterable(
    staff_client: Client, tenant: Tenant, make_endpoint, delivery_id: str | None
) -> None:
    make_endpoint(tenant)
    event = webhook_event_publish(tenant=tenant, event_type="image.rejected", data={"id": "img_1"})
    if delivery_id:
        WebhookDelivery.objects.filter(event=event).update(id=delivery_id)
    delivery = WebhookDelivery.objects.get(event=event)

    listing = staff_client.get("/admin/webhooks/webhookdelivery/", {"status__exact": "pending"})
    detail = staff_client.get(f"/admin/webhooks/webhookdelivery/{quote(delivery.pk)}/change/")

    assert listing.status_code == 200 and delivery.pk in listing.content.decode()
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert staff_client.get("/admin/webhooks/webhookdelivery/add/").status_code == 403
