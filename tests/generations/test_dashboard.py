"""The staff dashboard: the admin's landing page shows the selectors' figures; moderators keep the apps list."""

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from accounts.models import User
from billing.money import micros_to_dollars
from generations.admin.dashboard import dashboard_figures
from tests.generations.dashboard_support import dashboard_seed

pytestmark = pytest.mark.django_db


def _staff_client() -> Client:
    client = Client()
    client.force_login(User.objects.get(email="root@example.com"))
    return client


def test_dashboard_is_the_landing_page_with_the_selectors_figures() -> None:
    seeded = dashboard_seed()
    response = _staff_client().get("/admin/")
    assert response.status_code == 200
    page = response.content.decode()
    figures = dashboard_figures(tenant=None, days=30)
    month = {name: (money, stats) for name, _label, money, stats, _f in figures["periods"]}["month"]
    money, stats = month
    assert money.requests == 4 and money.images == 5  # 2 + 1 + 1 + 1 images charged
    assert stats.requests == 6 and stats.failed == 1  # 4 succeeded, 1 failed, 1 queued
    assert f'data-figure="month-revenue">{micros_to_dollars(money.price_micros)}<' in page
    assert f'data-figure="month-requests">{stats.requests}<' in page
    assert 'data-figure="queued">1<' in page
    assert "upstream_error: 1" in page
    assert f'href="/admin/dashboard/tenants/{seeded.studio.tenant.slug}/"' in page  # top tenants link
    assert "wallet.low_balance" in page  # lowbal crossed its threshold: listed near a limit, alert sent
    assert "/static/vendor/chartjs/chart.umd.min.js" in page
    assert _staff_client().get("/admin/apps/").status_code == 200


def test_tenant_page_shows_one_tenants_figures() -> None:
    seeded = dashboard_seed()
    response = _staff_client().get(f"/admin/dashboard/tenants/{seeded.lowbal.tenant.slug}/?days=7")
    assert response.status_code == 200
    figures = dashboard_figures(tenant=seeded.lowbal.tenant, days=7)
    money = figures["periods"][2][2]
    assert money.requests == 2
    assert f'data-figure="month-revenue">{micros_to_dollars(money.price_micros)}<' in response.content.decode()
    assert _staff_client().get("/admin/dashboard/tenants/nobody/").status_code == 404


def test_staff_without_billing_rights_land_on_the_apps_list() -> None:
    dashboard_seed()
    moderator = User.objects.create_user("mod@example.com", "pw", is_staff=True)
    moderator.groups.add(Group.objects.get_or_create(name="Moderators")[0])
    client = Client()
    client.force_login(moderator)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert b"data-figure" not in response.content
