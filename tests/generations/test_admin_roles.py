"""Staff roles: what Moderators, Billing and Support can and cannot do in the admin."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse

from accounts.models import User
from billing.models import Wallet
from generations.models import GenerationImage, TenantReviewSetting
from generations.staff_roles import BILLING, MODERATORS, STAFF_ROLES, SUPPORT, staff_groups_sync
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create

QUEUE = "/admin/generations/moderationqueueitem/"


def grant_url(wallet: Wallet) -> str:
    return reverse("admin:billing_wallet_operation", args=[wallet.pk, "grant"])


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def customer(db):
    return customer_create("studio")


@pytest.fixture
def held_image(customer) -> GenerationImage:
    TenantReviewSetting.objects.create(tenant=customer.tenant, mode=TenantReviewSetting.Mode.HOLD)
    return succeeded_generation(customer).images.get()


@pytest.fixture
def login(db):
    # The data migration created the groups, but transactional tests elsewhere flush them; syncing is idempotent.
    staff_groups_sync(group_model=Group, permission_model=Permission)

    def make(role: str) -> Client:
        user = User.objects.create_user(f"{role.lower()}@example.com", "pw", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        client = Client()
        client.force_login(user)
        return client

    return make


def test_the_migration_created_the_three_groups_with_their_permissions(db):
    # No sync here: non-transactional tests run before any flush (pytest-django orders them first), so the
    # groups are the data migrations' own.
    assert set(Group.objects.values_list("name", flat=True)) >= set(STAFF_ROLES)
    for name, perms in STAFF_ROLES.items():
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}
        assert granted == set(perms)


def test_a_moderator_can_work_the_queue_but_not_see_billing_or_tenants(login, held_image, customer):
    moderator = login(MODERATORS)
    wallet = Wallet.objects.get(tenant=customer.tenant)

    assert moderator.get(QUEUE).status_code == 200
    assert moderator.post(QUEUE, {"approve_one": held_image.pk}).status_code == 302
    held_image.refresh_from_db()
    assert held_image.review_status == GenerationImage.ReviewStatus.APPROVED

    assert moderator.get("/admin/billing/price/").status_code == 403
    assert moderator.get("/admin/billing/tokenprice/").status_code == 403
    assert moderator.get(reverse("admin:billing_report")).status_code == 403
    assert moderator.get(grant_url(wallet)).status_code == 403
    assert moderator.get("/admin/accounts/tenant/").status_code == 403
    assert moderator.get("/admin/accounts/auditevent/").status_code == 403


def test_support_can_view_everything_but_change_nothing(login, held_image, customer):
    support = login(SUPPORT)
    tenant_url = f"/admin/accounts/tenant/{quote(customer.tenant.pk)}/change/"
    wallet = Wallet.objects.get(tenant=customer.tenant)

    for url in ["/admin/accounts/tenant/", tenant_url, "/admin/accounts/apikey/", "/admin/accounts/auditevent/",
                "/admin/generations/generation/", "/admin/billing/ledgerentry/", "/admin/billing/price/",
                "/admin/billing/tokenprice/", "/admin/webhooks/webhookdelivery/", "/admin/generations/promptblockrule/"]:
        assert support.get(url).status_code == 200, url
    assert 'name="_save"' not in support.get(tenant_url).content.decode()

    assert support.post(tenant_url, {"name": "Renamed", "slug": "studio"}).status_code == 403
    refused = support.post("/admin/accounts/tenant/", {"action": "suspend", "_selected_action": [customer.tenant.pk]})
    assert (refused.status_code, b'value="suspend"' in refused.content) == (200, False)  # no such action offered
    customer.tenant.refresh_from_db()
    assert (customer.tenant.name, customer.tenant.status) == ("Studio", "active")
    assert support.get("/admin/generations/promptblockrule/add/").status_code == 403
    assert support.get("/admin/billing/tokenprice/add/").status_code == 403
    assert support.get(grant_url(wallet)).status_code == 403
    assert support.get(QUEUE).status_code == 403
    assert support.post(QUEUE, {"reject_one": held_image.pk, f"reason_{held_image.pk}": "x"}).status_code == 403
    held_image.refresh_from_db()
    assert held_image.review_status == GenerationImage.ReviewStatus.PENDING


def test_billing_can_grant_credit_and_read_reports_but_not_moderate(login, held_image, customer):
    billing = login(BILLING)
    wallet = Wallet.objects.get(tenant=customer.tenant)
    before = wallet.balance_micros

    grant = billing.post(grant_url(wallet),
                         {"amount": "10", "note": "goodwill", "reference": "admin_grant_" + "c" * 32})

    assert grant.status_code == 302
    assert Wallet.objects.get(pk=wallet.pk).balance_micros == before + 10_000_000
    assert billing.get(reverse("admin:billing_report")).status_code == 200
    assert billing.get("/admin/billing/price/add/").status_code == 200
    assert billing.get("/admin/billing/tokenprice/add/").status_code == 200
    assert billing.get("/admin/accounts/tenant/").status_code == 200
    assert billing.get(QUEUE).status_code == 403
    assert billing.get("/admin/accounts/apikey/").status_code == 403
    assert billing.post(f"/admin/accounts/tenant/{quote(customer.tenant.pk)}/change/", {"name": "x"}).status_code == 403
    # prompts and images are not the billing team's business
    assert billing.get("/admin/generations/generation/").status_code == 403
    thumbnail = reverse("admin:generations_image_thumbnail", args=[held_image.pk])
    assert billing.get(thumbnail).status_code == 403
