"""The moderation queue, blocklist, review-mode and generation pages of the admin."""

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts.models import AuditEvent, User
from generations.models import GenerationImage, ImageReview, PromptBlockRule, TenantReviewSetting
from generations.staff_roles import MODERATORS, staff_groups_sync
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create

QUEUE = "/admin/generations/moderationqueueitem/"
Status = GenerationImage.ReviewStatus


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def customer(db):
    return customer_create("studio")


@pytest.fixture
def held(customer):
    TenantReviewSetting.objects.create(tenant=customer.tenant, mode=TenantReviewSetting.Mode.HOLD)
    return succeeded_generation(customer, prompt="a lighthouse at dusk", n=2)


@pytest.fixture
def superuser_client(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root@example.com", "pw"))
    return client


def test_the_queue_shows_pending_images_with_prompt_tenant_model_and_reason(superuser_client, held, customer):
    other = customer_create("other")
    succeeded_generation(other, prompt="not reviewed")

    page = superuser_client.get(QUEUE)

    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="mq-card"') == 2
    assert "a lighthouse at dusk" in html and "studio" in html and "openai/gpt-image-2" in html
    assert "Held (review mode" in html
    assert "not reviewed" not in html


def test_queue_filters_by_tenant_model_and_reason(superuser_client, held, customer):
    other = customer_create("other")
    reported = succeeded_generation(other, prompt="reported one")
    other.client.post(f"/v1/generations/{reported.public_id}/images/0/report", {"reason": "weird"}, format="json")

    def cards(query: str) -> int:
        return superuser_client.get(QUEUE + query).content.decode().count('class="mq-card"')

    assert cards("") == 3
    assert cards("?tenant=other") == 1
    assert cards("?reason=reported") == 1
    assert cards("?reason=held") == 2
    assert cards("?reason=sampled") == 0
    assert cards("?model=openai/gpt-image-2&tenant=studio") == 2
    assert cards("?model=nope") == 0


def test_rejecting_one_image_from_the_queue(superuser_client, held, customer):
    image = held.images.get(index=0)

    response = superuser_client.post(QUEUE + "?tenant=studio", {"reject_one": image.pk, f"reason_{image.pk}": "gore"})

    assert response.status_code == 302 and response["Location"].endswith("?tenant=studio")
    image.refresh_from_db()
    assert (image.review_status, image.withheld) == (Status.REJECTED, False)
    assert ImageReview.objects.get(image=image).reason == "gore"
    assert superuser_client.get(QUEUE).content.decode().count('class="mq-card"') == 1
    download = customer.client.get(f"/v1/generations/{held.public_id}/images/0")
    assert download.status_code == 451


def test_rejecting_without_a_reason_changes_nothing(superuser_client, held):
    image = held.images.get(index=0)

    response = superuser_client.post(QUEUE, {"reject_one": image.pk}, follow=True)

    assert "A rejection needs a reason." in response.content.decode()
    image.refresh_from_db()
    assert image.review_status == Status.PENDING


def test_bulk_approve_and_bulk_reject(superuser_client, held, customer):
    second = succeeded_generation(customer, n=2)
    first_ids = list(held.images.values_list("pk", flat=True))
    second_ids = list(second.images.values_list("pk", flat=True))

    superuser_client.post(QUEUE, {"image_ids": first_ids, "bulk": "approve"})
    superuser_client.post(QUEUE, {"image_ids": second_ids, "bulk": "reject", "bulk_reason": "spam"})

    assert set(held.images.values_list("review_status", "withheld")) == {(Status.APPROVED, False)}
    assert set(second.images.values_list("review_status", flat=True)) == {Status.REJECTED}
    assert AuditEvent.objects.filter(action="image.approved").count() == 2
    assert AuditEvent.objects.filter(action="image.rejected").count() == 2
    assert "Nothing to review" in superuser_client.get(QUEUE).content.decode()


def test_thumbnails_are_served_to_reviewers_only(superuser_client, held, customer):
    image = held.images.get(index=0)
    url = f"{QUEUE}image/{image.pk}/thumbnail/"

    served = superuser_client.get(url)
    assert served.status_code == 200 and served["Content-Type"] == "image/jpeg"
    assert Client().get(url).status_code == 302  # to the login page

    clerk = User.objects.create_user("clerk@example.com", "pw", is_staff=True)
    client = Client()
    client.force_login(clerk)
    assert client.get(url).status_code == 403


def test_the_generation_page_is_read_only_with_thumbnails_and_ledger_entries(superuser_client, held):
    url = f"/admin/generations/generation/{quote(held.pk)}/change/"

    page = superuser_client.get(url)
    html = page.content.decode()

    assert page.status_code == 200
    assert "/thumbnail/" in html
    assert "Hold" in html and "Capture" in html
    assert 'name="_save"' not in html
    assert superuser_client.post(url, {"prompt": "changed"}).status_code == 403
    assert superuser_client.get(f"/admin/generations/generation/{held.pk}/delete/").status_code == 403
    listing = superuser_client.get("/admin/generations/generation/?q=lighthouse")
    assert held.public_id in listing.content.decode()


def test_staff_add_a_blocklist_rule_and_bad_regexes_are_refused(superuser_client):
    bad = superuser_client.post("/admin/generations/promptblockrule/add/",
                                {"kind": "regex", "pattern": "(a+)+", "enabled": "on"})
    assert bad.status_code == 200 and "repeated group" in bad.content.decode()
    assert not PromptBlockRule.objects.exists()

    good = superuser_client.post("/admin/generations/promptblockrule/add/",
                                 {"kind": "term", "pattern": "forbidden", "enabled": "on", "note": "test"})

    assert good.status_code == 302
    event = AuditEvent.objects.get(action="prompt_block_rule.created")
    assert event.actor_user.email == "root@example.com" and event.after["pattern"] == "forbidden"


def test_staff_set_a_review_mode_and_it_is_audited(superuser_client, customer):
    response = superuser_client.post("/admin/generations/tenantreviewsetting/add/",
                                     {"tenant": customer.tenant.pk, "mode": "sample", "sample_percent": "25"})

    assert response.status_code == 302
    assert TenantReviewSetting.objects.get(tenant=customer.tenant).sample_percent == 25
    event = AuditEvent.objects.get(action="review_mode.changed")
    assert event.after == {"mode": "sample", "sample_percent": 25} and event.actor_user.email == "root@example.com"


def test_the_tenant_list_shows_plan_balance_and_usage_this_month(superuser_client, customer):
    succeeded_generation(customer, n=2)

    html = superuser_client.get("/admin/accounts/tenant/").content.decode()

    assert "studio" in html
    assert "$49.99" in html  # 50 USD opening credit minus two captured images
    assert "default" in html
    assert "$0.0144" in html  # 2 × 0.0072 charged this month


def test_a_moderator_sees_the_queue_on_the_admin_index(db, held):
    staff_groups_sync(group_model=Group, permission_model=Permission)  # transactional tests flush migration data
    moderator = User.objects.create_user("m@example.com", "pw", is_staff=True)
    moderator.groups.add(Group.objects.get(name=MODERATORS))
    client = Client()
    client.force_login(moderator)

    index = client.get("/admin/").content.decode()

    assert QUEUE in index
    assert "/admin/accounts/tenant/" not in index


def test_a_stale_approve_cannot_undo_a_rejection(superuser_client, held):
    image = held.images.get(index=0)
    superuser_client.post(QUEUE, {"reject_one": image.pk, f"reason_{image.pk}": "gore"})
    superuser_client.post(QUEUE, {"image_ids": [image.pk], "bulk": "approve"})  # the same page, still open
    image.refresh_from_db()
    assert image.review_status == Status.REJECTED
    assert ImageReview.objects.filter(image=image).count() == 1


def test_a_rejection_reason_longer_than_kept_is_refused_and_the_image_stays_pending(superuser_client, held):
    image = held.images.get(index=0)
    page = superuser_client.post(QUEUE, {"reject_one": image.pk, f"reason_{image.pk}": "x" * 501}, follow=True)
    assert page.status_code == 200 and "at most 500 characters" in page.content.decode()
    image.refresh_from_db()
    assert image.review_status == Status.PENDING


def test_moderators_see_thumbnails_of_queued_images_only(db, held, customer):
    from django.urls import reverse

    staff_groups_sync(group_model=Group, permission_model=Permission)
    moderator = User.objects.create_user("mod@example.com", "pw", is_staff=True)
    moderator.groups.add(Group.objects.get(name=MODERATORS))
    client = Client()
    client.force_login(moderator)
    unreviewed = succeeded_generation(customer_create("elsewhere"), prompt="never queued").images.get()

    assert client.get(reverse("admin:generations_image_thumbnail", args=[held.images.get(index=0).pk])).status_code == 200
    assert client.get(reverse("admin:generations_image_thumbnail", args=[unreviewed.pk])).status_code == 403
