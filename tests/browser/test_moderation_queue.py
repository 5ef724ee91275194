"""A moderator rejects an image in the real admin, in headless Chromium, and the API stops serving it."""

import os
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission

from accounts.models import User
from generations.models import GenerationImage, TenantReviewSetting
from generations.staff_roles import MODERATORS, staff_groups_sync
from tests.browser.chromium import CHROMIUM, staff_page
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create

SCREENSHOT = Path(settings.BASE_DIR) / "artifacts" / "moderation-queue.png"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    # Under CI (.ci/run installs Chromium) a missing browser must fail, never skip.
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium at /usr/bin/chromium "
                                                     "(scripts/ci-system-packages.sh installs it)"),
    # The live server needs committed data. Transactional tests run last and flush the data migrations' rows,
    # so this test creates what it needs itself (groups, price) instead of relying on them.
    pytest.mark.django_db(transaction=True),
]


def test_a_moderator_rejects_an_image_from_the_queue_and_the_api_answers_451(
    live_server, settings, tmp_path, monkeypatch
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    staff_groups_sync(group_model=Group, permission_model=Permission)
    moderator = User.objects.create_user("moderator@example.com", "correct horse battery", is_staff=True)
    moderator.groups.add(Group.objects.get(name=MODERATORS))
    customer = customer_create("studio")
    TenantReviewSetting.objects.create(tenant=customer.tenant, mode=TenantReviewSetting.Mode.HOLD)
    generation = succeeded_generation(customer, prompt="a lighthouse on a cliff at dusk, oil painting", n=3)
    rejected = generation.images.get(index=1)

    # Playwright's sync API runs an asyncio loop in this thread; the ORM calls below are ordinary sync calls.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import expect

    with staff_page(live_server, email="moderator@example.com", width=1280, next_path="/admin/") as page:
        page.get_by_role("link", name="Moderation queue").first.click()

        cards = page.locator(".mq-card")
        expect(cards).to_have_count(3)
        for image in page.locator(".mq-card img").all():
            expect(image).to_have_js_property("complete", True)
            assert image.evaluate("img => img.naturalWidth") > 0
        SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        card = page.locator(f'.mq-card[data-image-id="{rejected.pk}"]')
        card.get_by_placeholder("Rejection reason").fill("graphic violence")
        card.get_by_role("button", name="Reject").click()

        expect(page.locator(".messagelist")).to_contain_text("Rejected 1 image(s).")
        expect(cards).to_have_count(2)
        expect(page.locator(f'.mq-card[data-image-id="{rejected.pk}"]')).to_have_count(0)

    rejected.refresh_from_db()
    assert rejected.review_status == GenerationImage.ReviewStatus.REJECTED
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {customer.key.secret}"},
                       timeout=10)
    with api:
        response = api.get(f"/v1/generations/{generation.public_id}/images/1")
        assert response.status_code == 451
        assert response.json()["error"]["code"] == "content_rejected"
        assert api.get(f"/v1/generations/{generation.public_id}/images/0").status_code == 403  # still held
