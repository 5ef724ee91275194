"""The staff dashboard and a tenant page in headless Chromium at 1366×900: no sideways scrolling, every chart drawn
(pixels on its canvas, a table fallback), and the figures on the page equal the selectors' figures for a seeded
data set. Screenshots land in artifacts/dashboard*.png."""

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.admin.utils import quote
from django.utils import timezone

from billing.money import micros_to_dollars
from generations.admin.dashboard import dashboard_figures
from tests.browser.chromium import CHROMIUM, page_fits, staff_page
from tests.generations.dashboard_support import dashboard_seed

ARTIFACTS = Path(settings.BASE_DIR) / "artifacts"
WIDTH = 1366

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs /usr/bin/chromium"),
    pytest.mark.django_db(transaction=True),
]


def _expected(figures: dict) -> dict[str, str]:
    """The page's `data-figure` texts as the selectors give them."""
    expected = {
        "queued": str(figures["queued"]),
        "running": str(figures["running"]),
        "held": micros_to_dollars(figures["held_micros"]),
        "webhook_backlog": str(figures["webhook_backlog"]),
    }
    for name, _label, money, stats, _failures in figures["periods"]:
        expected[f"{name}-revenue"] = micros_to_dollars(money.price_micros)
        expected[f"{name}-cost"] = micros_to_dollars(money.upstream_cost_micros)
        expected[f"{name}-margin"] = micros_to_dollars(money.margin_micros)
        expected[f"{name}-requests"] = str(stats.requests)
        expected[f"{name}-images"] = str(money.images)
    return expected


def test_dashboard_and_tenant_page_at_1366_px(live_server, settings, tmp_path, monkeypatch) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    seeded = dashboard_seed()
    pages = {
        "dashboard": ("/admin/", None, 3),
        "dashboard-tenant": (f"/admin/dashboard/tenants/{seeded.studio.tenant.slug}/?days=7", seeded.studio.tenant, 2),
    }
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    with staff_page(live_server, email="root@example.com", width=WIDTH, next_path="/admin/") as page:
        for name, (path, tenant, charts) in pages.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, name
            page.wait_for_selector("canvas[data-rendered=true]")
            figures = dashboard_figures(tenant=tenant, days=7 if tenant else 30)
            shown = page.evaluate(
                "Object.fromEntries([...document.querySelectorAll('[data-figure]')]"
                ".map(e => [e.dataset.figure, e.textContent.trim()]))"
            )
            expected = _expected(figures)
            assert {key: shown[key] for key in expected} == expected, name
            assert figures["periods"][2][2].requests > 0  # the seeded month is not empty
            # Every chart is drawn: its canvas has non-transparent pixels, and its table fallback has rows.
            painted = page.evaluate(
                "[...document.querySelectorAll('canvas')].map(c => { const d = c.getContext('2d')"
                ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; })"
            )
            assert len(painted) == charts and all(count > 1000 for count in painted), (name, painted)
            assert page.locator("details.fallback table tbody tr").count() >= charts, name
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            page_fits(page, width=WIDTH, name=name)
            assert "micros" not in page.inner_text("body").lower(), name


def test_fixed_staff_pages_fit_1366_px(live_server, settings, tmp_path, monkeypatch) -> None:
    """Each page issue 22 fixed, screenshotted: no sideways scroll (page or list box), money in dollars."""
    from accounts.models import User
    from accounts.services import SYSTEM, Actor
    from generations.models import CatalogModel
    from generations.services.catalog import catalog_model_save
    from generations.services.moderation import images_reject

    settings.MEDIA_ROOT = str(tmp_path / "media")
    seeded = dashboard_seed()
    generation = seeded.studio.tenant.generations.filter(status="succeeded", n=2).get()
    images_reject(image_ids=[generation.images.get(index=1).pk], reason="test",
                  actor=Actor(user=User.objects.get(email="root@example.com")))
    overdue = CatalogModel.objects.order_by("model_id").first()
    if overdue is not None:
        overdue.status = "deprecated"
        overdue.shutdown_at = timezone.now() - timedelta(days=3)
        catalog_model_save(row=overdue, actor=SYSTEM)
    pages = {
        "admin-generations": "/admin/generations/generation/",
        "admin-generation": f"/admin/generations/generation/{quote(generation.pk)}/change/",
        "admin-catalog": "/admin/generations/catalogmodel/",
        "admin-shutdowns": "/admin/generations/catalogmodel/shutdowns/",
        "admin-ledger": "/admin/billing/ledgerentry/",
        "admin-image-reviews": "/admin/generations/imagereview/",
        "admin-prices": "/admin/billing/price/",
        "admin-billing-report": "/admin/billing/ledgerentry/report/",
    }
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

    ARTIFACTS.mkdir(exist_ok=True)
    with staff_page(live_server, email="root@example.com", width=WIDTH, next_path="/admin/apps/") as page:
        for name, path in pages.items():
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, name
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            page_fits(page, width=WIDTH, name=name)
            text = page.inner_text("#content")
            assert not re.search(r"\b\d+\.\d{6}\b", text), (name, re.findall(r"\b\d+\.\d{6}\b", text)[:3])
            if name == "admin-generation":
                first_image = page.locator("img[src*='/thumbnail/']").first.bounding_box()
                assert first_image is not None and first_image["y"] < 900  # on the first screen
            if name == "admin-ledger":
                assert "balance after" in text.lower() and "−$" in text and "+$" in text
            if name == "admin-image-reviews":
                assert page.locator("#result_list img[src*='/thumbnail/']").count() >= 1
                assert "studio" in page.inner_text("#result_list")
            if name == "admin-prices":
                assert "tenant price" in text.lower()
            if name == "admin-shutdowns" and overdue is not None:
                row = page.locator("tr.overdue", has_text=overdue.model_id)
                assert "overdue by 3 days" in row.inner_text()
