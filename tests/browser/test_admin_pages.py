"""The main staff pages in headless Chromium at 1366 px: branded, no "View site" link, money in dollars (never
micros), lists that fit the screen, audit targets named and linked. Screenshots land in artifacts/admin-*.png."""

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.utils import quote
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.services import SYSTEM, Actor, api_key_budget_set
from billing.services.statements import statement_close
from generations.services.moderation import images_reject
from tests.browser.chromium import CHROMIUM, page_fits, staff_page
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create

ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"
WIDTH = 1366

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


def test_main_admin_pages_read_well_at_1366_px(live_server, settings, tmp_path, monkeypatch) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    User.objects.create_superuser("root@example.com", "correct horse battery")
    customer = customer_create("studio")
    generation = succeeded_generation(customer, prompt="a lighthouse on a cliff at dusk, oil painting", n=2)
    staff = User.objects.get(email="root@example.com")
    images_reject(image_ids=[generation.images.get(index=1).pk], reason="test", actor=Actor(user=staff))
    api_key_budget_set(api_key=customer.key.api_key, monthly_budget_micros=2_500_000, actor=SYSTEM)
    statement = statement_close(tenant=customer.tenant, period_start=timezone.now().date().replace(day=1))

    pages = {
        "index": "/admin/apps/",
        "tenants": "/admin/accounts/tenant/",
        "generations": "/admin/generations/generation/",
        "generation": f"/admin/generations/generation/{quote(generation.pk)}/change/",
        "ledger": "/admin/billing/ledgerentry/",
        "wallets": "/admin/billing/wallet/",
        "plans": "/admin/billing/plan/",
        "statement": f"/admin/billing/statement/{quote(statement.pk)}/change/",
        "api-key": f"/admin/accounts/apikey/{quote(customer.key.api_key.prefix)}/change/",
        "audit": "/admin/accounts/auditevent/",
    }
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    with staff_page(live_server, email="root@example.com", width=WIDTH, next_path="/admin/") as page:
        for name, path in pages.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, (name, response and response.status)
            page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)
            text = page.inner_text("body")
            assert "Image generation" in page.inner_text("#site-name"), name
            assert page.get_by_role("link", name="View site").count() == 0, name
            assert "micros" not in text.lower(), (name, [line for line in text.splitlines() if "icros" in line])
            page_fits(page, width=WIDTH, name=name)
            if name == "index":
                assert "API keys" in text and text.count("API keys") == 1 and "Api keys" not in text
            if name == "api-key":
                assert page.input_value("#id_monthly_budget_micros") == "2.500000"
        audit = page.goto(f"{live_server.url}{pages['audit']}")
        assert audit is not None
        review = page.locator("#result_list a", has_text="studio").first
        assert review.count() == 1
        image_link = page.locator("#result_list td.field-target a", has_text=f"{generation.public_id}#1").first
        assert image_link.get_attribute("href") == f"/admin/generations/generation/{quote(generation.pk)}/change/"
        assert "GenerationImage" not in page.inner_text("#result_list")
    assert AuditEvent.objects.filter(target_type="GenerationImage").exists()
