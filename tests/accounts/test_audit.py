"""The audit trail: every change staff or tenants make leaves one event, and the admin shows it read-only."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.admin.utils import quote
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Tenant, User
from accounts.services import (
    SYSTEM,
    Actor,
    InvalidKeyBudget,
    api_key_budget_set,
    api_key_create,
    api_key_revoke,
    audit_record,
)
from billing.models import Plan, Price, TenantPlan, Wallet
from billing.services.wallets import billing_account_open, wallet_adjust, wallet_grant
from generations.models import TenantReviewSetting
from generations.services.moderation import images_approve, images_reject
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create
from webhooks.services.endpoints import webhook_endpoint_create, webhook_endpoint_update

AUDIT = "/admin/accounts/auditevent/"


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser("root@example.com", "pw")


@pytest.fixture
def staff_client(staff: User) -> Client:
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.force_login(staff)
    return client


def only_event(action: str) -> AuditEvent:
    return AuditEvent.objects.get(action=action)


# --- One event per action -------------------------------------------------------------------------------


def test_creating_and_revoking_a_key_is_audited(staff_client, staff, tenant):
    issued = api_key_create(tenant=tenant, name="ci", actor=Actor(user=staff))

    staff_client.post("/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [issued.api_key.prefix]})

    created, revoked = only_event("api_key.created"), only_event("api_key.revoked")
    assert (created.tenant, created.actor_user, created.after["prefix"]) == (tenant, staff, issued.api_key.prefix)
    assert (revoked.actor_user, revoked.ip_address, revoked.after) == (staff, "203.0.113.7", {"revoked": True})


def test_a_key_revoked_by_another_key_names_that_key_as_actor(tenant, admin_key):
    target = api_key_create(tenant=tenant, name="old")
    api_key_revoke(api_key=target.api_key, actor=Actor(api_key=admin_key.api_key, ip_address="198.51.100.1"))

    event = only_event("api_key.revoked")
    assert (event.actor_type, event.actor_api_key, event.ip_address) == ("api_key", admin_key.api_key, "198.51.100.1")


def test_suspending_and_reactivating_a_tenant_is_audited(staff_client, staff, tenant):
    staff_client.post("/admin/accounts/tenant/", {"action": "suspend", "_selected_action": [tenant.pk]})
    staff_client.post("/admin/accounts/tenant/", {"action": "reactivate", "_selected_action": [tenant.pk]})

    suspended, reactivated = only_event("tenant.suspended"), only_event("tenant.reactivated")
    assert (suspended.before, suspended.after, suspended.actor_user) == (
        {"status": "active"}, {"status": "suspended"}, staff)
    assert reactivated.after == {"status": "active"}


def test_changing_a_plan_and_a_tenant_override_is_audited(staff_client, staff, tenant):
    plan = Plan.objects.create(name="pro", markup_bps=1000)
    billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=0)

    staff_client.post(f"/admin/billing/plan/{quote(plan.pk)}/change/", {
        "name": "pro", "markup_bps": "1500", "allowed_models": "[]", "max_n": "10",
    })
    assignment = TenantPlan.objects.get(tenant=tenant)
    staff_client.post(f"/admin/billing/tenantplan/{quote(assignment.pk)}/change/", {
        "tenant": tenant.pk, "plan": plan.pk, "images_per_day": "5",
    })

    plan_event = AuditEvent.objects.filter(action="plan.saved", actor_user=staff).get()
    assert (plan_event.before["markup_bps"], plan_event.after["markup_bps"]) == (1000, 1500)
    override = AuditEvent.objects.filter(action="tenant_plan.saved", actor_user=staff).get()
    assert (override.tenant, override.after["images_per_day"]) == (tenant, 5)


def test_setting_and_ending_a_price_is_audited(staff_client, staff):
    staff_client.post("/admin/billing/price/add/", {
        "model_id": "qianfan/irag-1.0", "quality": "*", "size": "*", "cost_usd": "0.02",  # the one unpriced model
        "effective_from_0": "2026-01-01", "effective_from_1": "00:00:00", "note": "",
    })
    price = Price.objects.get(model_id="qianfan/irag-1.0")
    staff_client.post(f"/admin/billing/price/{quote(price.pk)}/change/", {
        "effective_to_0": "2027-01-01", "effective_to_1": "00:00:00",
    })

    assert only_event("price.set").after["cost_micros"] == 20_000
    ended = only_event("price.changed")
    assert (ended.before, ended.actor_user) == ({"effective_to": None}, staff)
    assert ended.after["effective_to"].startswith("2027-01-01")


def test_granting_and_adjusting_credit_is_audited(staff, tenant):
    billing_account_open(tenant=tenant, plan=None, opening_credit_micros=0)
    wallet_grant(tenant=tenant, amount_micros=5_000_000, reference="topup-1", actor=Actor(user=staff))
    wallet_adjust(tenant=tenant, amount_micros=-1_000_000, reason="refund reversal", reference="adj-1",
                  actor=Actor(user=staff))

    granted, adjusted = only_event("wallet.granted"), only_event("wallet.adjusted")
    assert (granted.tenant, granted.actor_user) == (tenant, staff)
    assert (adjusted.tenant, adjusted.actor_user) == (tenant, staff)
    assert Wallet.objects.get(tenant=tenant).balance_micros == 4_000_000


def test_review_decisions_are_audited(settings, tmp_path, staff):
    settings.MEDIA_ROOT = str(tmp_path)
    customer = customer_create("studio")
    TenantReviewSetting.objects.create(tenant=customer.tenant, mode=TenantReviewSetting.Mode.HOLD)
    first, second = succeeded_generation(customer, n=2).images.order_by("index")

    images_approve(image_ids=[first.pk], actor=Actor(user=staff))
    images_reject(image_ids=[second.pk], reason="unsafe", actor=Actor(user=staff))

    approved, rejected = only_event("image.approved"), only_event("image.rejected")
    assert (approved.tenant, approved.target_id, approved.after["withheld"]) == (customer.tenant, str(first.pk), False)
    assert (rejected.before["review_status"], rejected.after["reason"]) == ("pending", "unsafe")


def test_webhook_endpoint_changes_are_audited(settings, staff_client, staff, tenant):
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    issued = webhook_endpoint_create(tenant=tenant, url="http://127.0.0.1:9/hook", event_types=["image.rejected"],
                                     actor=SYSTEM)
    webhook_endpoint_update(endpoint=issued.endpoint, actor=SYSTEM, description="renamed")
    staff_client.post("/admin/webhooks/webhookendpoint/", {"action": "disable",
                                                           "_selected_action": [issued.endpoint.pk]})

    assert only_event("webhook_endpoint.created").tenant == tenant
    assert only_event("webhook_endpoint.updated").after["description"] == "renamed"
    assert only_event("webhook_endpoint.disabled").actor_user == staff


# --- The admin ------------------------------------------------------------------------------------------


@pytest.fixture
def trail(db, staff):
    acme = Tenant.objects.create(slug="acme", name="Acme")
    globex = Tenant.objects.create(slug="globex", name="Globex")
    events = [
        (acme, Actor(user=staff), "tenant.suspended", datetime(2026, 3, 1, 12, tzinfo=UTC)),
        (acme, SYSTEM, "price.set", datetime(2026, 3, 5, 23, 59, tzinfo=UTC)),
        (globex, SYSTEM, "tenant.suspended", datetime(2026, 3, 6, 0, 0, tzinfo=UTC)),
    ]
    for tenant, actor, action, at in events:
        event = audit_record(actor=actor, action=action, target=tenant, tenant=tenant, after={"note": "x, \"y\""})
        AuditEvent.objects.filter(pk=event.pk).update(created_at=at)
    return acme, globex


def listed_actions(client: Client, query: str) -> list[str]:
    response = client.get(AUDIT + query)
    assert response.status_code == 200
    return [event.action for event in response.context["cl"].result_list]


def test_the_audit_list_filters_by_tenant_actor_action_and_date_range(staff_client, staff, trail):
    acme, _ = trail

    assert listed_actions(staff_client, f"?tenant__id__exact={acme.pk}") == ["price.set", "tenant.suspended"]
    assert listed_actions(staff_client, f"?actor_user__id__exact={staff.pk}") == ["tenant.suspended"]
    assert listed_actions(staff_client, "?actor_type__exact=system") == ["tenant.suspended", "price.set"]
    assert listed_actions(staff_client, "?action=tenant.suspended") == ["tenant.suspended", "tenant.suspended"]
    assert listed_actions(staff_client, "?created_from=2026-03-02&created_to=2026-03-05") == ["price.set"]
    assert listed_actions(staff_client, "?created_from=2026-03-06") == ["tenant.suspended"]
    assert staff_client.get(AUDIT + "?created_from=yesterday")["Location"].endswith("?e=1")


def test_the_csv_export_streams_the_filtered_events(staff_client, trail):
    acme, _ = trail
    listing = staff_client.get(AUDIT + f"?tenant__id__exact={acme.pk}").content.decode()
    export_url = reverse("admin:accounts_auditevent_export") + f"?tenant__id__exact={acme.pk}"
    assert export_url in listing.replace("&amp;", "&")

    response = staff_client.get(export_url)

    assert response.streaming and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(row["action"], row["tenant"]) for row in rows] == [("tenant.suspended", "acme"), ("price.set", "acme")]
    assert rows[0]["actor_user"] == "root@example.com" and rows[1]["actor_type"] == "system"
    assert rows[0]["after"] == '{"note":"x, \\"y\\""}'
    assert rows[0]["created_at"] == "2026-03-01T12:00:00+00:00"


def test_audit_events_cannot_be_added_changed_or_deleted_in_the_admin(staff_client, trail):
    event = AuditEvent.objects.first()

    assert staff_client.get(AUDIT + "add/").status_code == 403
    assert staff_client.post(f"{AUDIT}{quote(event.pk)}/change/", {"action": "forged"}).status_code == 403
    assert staff_client.post(f"{AUDIT}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    page = staff_client.get(f"{AUDIT}{quote(event.pk)}/change/").content.decode()
    assert 'name="_save"' not in page and "deletelink" not in page
    assert AuditEvent.objects.filter(pk=event.pk, action=event.action).exists()


def test_staff_without_audit_permission_cannot_export(db, trail):
    clerk = User.objects.create_user("clerk@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(reverse("admin:accounts_auditevent_export")).status_code == 403


def test_keys_are_named_by_prefix_in_the_audit_trail_and_admin_never_by_their_hash(staff_client, staff, tenant):
    issued = api_key_create(tenant=tenant, name="ci", actor=Actor(user=staff))
    hashed = issued.api_key.hashed_key

    assert only_event("api_key.created").target_id == issued.api_key.prefix
    for page in ("/admin/accounts/apikey/", f"/admin/accounts/apikey/{quote(issued.api_key.prefix)}/change/",
                 "/admin/accounts/auditevent/", "/admin/accounts/auditevent/export.csv"):
        response = staff_client.get(page)
        body = response.content if hasattr(response, "content") else b"".join(response.streaming_content)
        assert response.status_code == 200, page
        assert hashed.encode() not in body and hashed.split("$")[-1].encode() not in body, page


def test_a_key_budget_changed_in_the_admin_is_audited_and_must_not_be_negative(staff_client, staff, tenant):
    issued = api_key_create(tenant=tenant, name="ci")
    url = f"/admin/accounts/apikey/{quote(issued.api_key.prefix)}/change/"

    # The staff form takes dollars (stored as micros) and refuses a negative amount.
    refused = staff_client.post(url, {"monthly_budget_micros": "-1"})
    assert refused.status_code == 200 and not AuditEvent.objects.filter(action="api_key.budget_changed").exists()
    assert staff_client.get(url).status_code == 200
    staff_client.post(url, {"monthly_budget_micros": "5.00"})

    event = only_event("api_key.budget_changed")
    assert (event.actor_user, event.before, event.after) == (
        staff, {"monthly_budget_micros": None}, {"monthly_budget_micros": 5_000_000}
    )
    with pytest.raises(InvalidKeyBudget, match="non-negative"):
        api_key_budget_set(api_key=issued.api_key, monthly_budget_micros=-1, actor=Actor(user=staff))


def test_an_out_of_range_audit_date_filter_is_not_a_server_error(staff_client, trail):
    assert staff_client.get("/admin/accounts/auditevent/?created_to=9999-12-31").status_code == 200
    assert staff_client.get("/admin/accounts/auditevent/export.csv?created_to=9999-12-31").status_code == 200
