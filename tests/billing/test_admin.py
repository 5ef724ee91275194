import csv
import io

import pytest
from django.contrib.admin.utils import quote
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent, Tenant, User
from accounts.services import SYSTEM
from billing.models import LedgerEntry, Plan, Price, Wallet
from billing.services.ledger import billing_capture, billing_release
from billing.services.plans import plan_assign
from billing.services.statements import statement_close

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("staff@example.com", "pw-123456789"))
    return client


@pytest.fixture
def billed(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_ok", n=2)
    billing_capture(reference="gen_ok", images=2)
    reserve("gen_failed", n=1)
    billing_release(reference="gen_failed", upstream_cost_micros=10_000, reason="upstream 500")


def test_billing_report_shows_price_cost_refunded_cost_margin_and_a_chart(
    staff_client: Client, billed
) -> None:
    today = timezone.now().date().isoformat()
    page = staff_client.get(
        "/admin/billing/ledgerentry/report/", {"start": today, "end": today, "group_by": "model"}
    )
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html and "test/flat-model" in html
    # price 2 × 0.012, cost 2 × 0.010, refunded failure cost 0.010 → margin −0.006 (pages show dollars)
    for amount in ("$0.024", "$0.02", "$0.01", "−$0.006"):
        assert amount in html


def test_billing_report_streams_csv(staff_client: Client, billed, tenant: Tenant) -> None:
    today = timezone.now().date().isoformat()
    response = staff_client.get(
        "/admin/billing/ledgerentry/report/",
        {"tenant": tenant.pk, "start": today, "end": today, "group_by": "day", "export": "csv"},
    )
    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "day",
        "requests",
        "images",
        "price_usd",
        "cost_usd",
        "refunded_cost_usd",
        "margin_usd",
        "actual_images",
        "actual_cost_usd",
        "actual_estimate_usd",
        "actual_drift_percent",
    ]
    # No answer reported usage here: the actual cost is unknown, not zero.
    assert rows[1] == [today, "1", "2", "0.024000", "0.020000", "0.010000", "-0.006000", "0", "", "", ""]


def test_staff_grant_credit_through_the_wallet_page_once_and_audited(
    staff_client: Client, tenant: Tenant
) -> None:
    wallet = Wallet.objects.create(tenant=tenant)
    url = f"/admin/billing/wallet/{wallet.pk}/operations/grant/"
    assert staff_client.get(url).status_code == 200
    form = {"amount": "12.5", "note": "bank transfer", "reference": "admin_grant_" + "a" * 32}
    assert staff_client.post(url, form).status_code == 302
    assert staff_client.post(url, form).status_code == 302  # double submit
    wallet.refresh_from_db()
    assert wallet.balance_micros == 12_500_000
    assert (
        AuditEvent.objects.filter(action="wallet.granted", actor_user__email="staff@example.com").count() == 1
    )


def test_staff_adjustment_needs_a_reason_and_cannot_overdraw(staff_client: Client, tenant: Tenant) -> None:
    wallet = Wallet.objects.create(tenant=tenant)
    url = f"/admin/billing/wallet/{wallet.pk}/operations/adjust/"
    no_reason = staff_client.post(url, {"amount": "-1", "reason": "", "reference": "admin_adjust_" + "1" * 32})
    overdraw = staff_client.post(url, {"amount": "-1", "reason": "chargeback", "reference": "admin_adjust_" + "2" * 32})
    assert no_reason.status_code == overdraw.status_code == 200
    assert "exceed the available" in overdraw.content.decode()
    assert not LedgerEntry.objects.filter(tenant=tenant).exists()


def test_wallets_and_ledger_cannot_be_edited_in_the_admin(
    staff_client: Client, tenant: Tenant, billed
) -> None:
    wallet = Wallet.objects.get(tenant=tenant)
    entry = LedgerEntry.objects.filter(tenant=tenant).first()
    assert staff_client.get(f"/admin/billing/wallet/{quote(wallet.pk)}/change/").status_code == 200
    staff_client.post(f"/admin/billing/wallet/{quote(wallet.pk)}/change/", {"balance_micros": 999})
    assert Wallet.objects.get(pk=wallet.pk).balance_micros == wallet.balance_micros == 976_000
    assert (
        staff_client.post(f"/admin/billing/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert staff_client.get("/admin/billing/ledgerentry/").status_code == 200


def test_adding_a_price_in_the_admin_supersedes_the_current_one_and_is_audited(staff_client: Client) -> None:
    form = {
        "model_id": "openai/gpt-image-2",
        "quality": "low",
        "size": "1024x1024",
        "cost_usd": "0.012",
        "effective_from_0": timezone.now().date().isoformat(),
        "effective_from_1": "00:00:00",
        "note": "new",
    }
    response = staff_client.post("/admin/billing/price/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    rows = Price.objects.filter(model_id="openai/gpt-image-2", quality="low", size="1024x1024")
    assert sorted(rows.values_list("cost_micros", flat=True)) == [6_000, 12_000]
    assert rows.filter(effective_to__isnull=True).get().cost_micros == 12_000
    assert AuditEvent.objects.filter(action="price.set", actor_user__email="staff@example.com").exists()


def test_statement_has_a_printable_page_in_the_admin(staff_client: Client, tenant: Tenant, billed) -> None:
    statement = statement_close(tenant=tenant, period_start=timezone.now().date().replace(day=1))
    page = staff_client.get(f"/admin/billing/statement/{statement.pk}/print/")
    assert page.status_code == 200 and "$0.024" in page.content.decode()
    assert staff_client.get(f"/admin/billing/statement/{quote(statement.pk)}/change/").status_code == 200


@pytest.mark.parametrize(
    "page",
    [
        "price/",
        "price/add/",
        "plan/",
        "plan/add/",
        "tenantplan/",
        "tenantplan/add/",
        "wallet/",
        "ledgerentry/",
        "statement/",
        "ledgerentry/report/",
    ],
)
def test_every_billing_admin_page_renders(staff_client: Client, billed, page: str) -> None:
    assert staff_client.get(f"/admin/billing/{page}").status_code == 200


def test_wallet_and_price_change_pages_render(staff_client: Client, tenant: Tenant, billed) -> None:
    wallet = Wallet.objects.get(tenant=tenant)
    page = staff_client.get(f"/admin/billing/wallet/{quote(wallet.pk)}/change/").content.decode()
    assert f"/admin/billing/wallet/{wallet.pk}/operations/grant/" in page and "credit-limit" in page
    price = Price.objects.first()
    assert staff_client.get(f"/admin/billing/price/{quote(price.pk)}/change/").status_code == 200


def test_plan_changes_in_the_admin_are_audited(staff_client: Client) -> None:
    from billing.models import Plan

    plan = Plan.objects.get(name="default")
    form = {
        "name": "default",
        "is_default": "on",
        "markup_bps": "2500",
        "allowed_models": "[]",
        "max_n": "10",
        "max_concurrent": "8",
        "images_per_day": "1000",
        "images_per_month": "20000",
        "monthly_spend_limit_micros": "",
        "requests_per_minute": "600",
        "key_monthly_budget_micros": "",
    }
    response = staff_client.post(f"/admin/billing/plan/{quote(plan.pk)}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    event = AuditEvent.objects.get(action="plan.saved")
    assert (event.before["markup_bps"], event.after["markup_bps"]) == (2000, 2500)


def test_staff_without_change_wallet_permission_cannot_grant(tenant: Tenant) -> None:
    from django.contrib.auth.models import Permission

    viewer = User.objects.create_user("viewer@example.com", "pw-123456789", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_wallet"))
    client = Client()
    client.force_login(viewer)
    wallet = Wallet.objects.create(tenant=tenant)
    url = f"/admin/billing/wallet/{wallet.pk}/operations/grant/"
    assert client.post(url, {"amount": "5", "note": "", "reference": "admin_grant_" + "b" * 32}).status_code == 403
    assert Wallet.objects.get(pk=wallet.pk).balance_micros == 0


def test_billing_report_refuses_unbounded_date_ranges(staff_client: Client, billed) -> None:
    url = "/admin/billing/ledgerentry/report/"
    too_long = staff_client.get(url, {"start": "1900-01-01", "end": "2099-12-31", "group_by": "day"})
    assert too_long.status_code == 200 and "at most 400 days" in too_long.content.decode()
    edge = staff_client.get(url, {"start": "9999-12-01", "end": "9999-12-31", "group_by": "day"})
    assert edge.status_code == 200


def test_a_price_end_must_lie_ahead_and_an_ended_price_cannot_reopen(staff_client: Client) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from accounts.services import SYSTEM
    from billing.models import Price
    from billing.services.prices import price_end, price_set

    price = price_set(model_id="acme/model", quality="*", size="*", cost_micros=1, actor=SYSTEM,
                      effective_from=timezone.now() - timedelta(days=1))
    url = f"/admin/billing/price/{quote(price.pk)}/change/"
    past = staff_client.post(url, {"effective_to_0": "2000-01-01", "effective_to_1": "00:00:00"})
    assert past.status_code == 200 and "later than both" in past.content.decode()

    price_end(price=price, effective_to=timezone.now() - timedelta(seconds=1), actor=SYSTEM)
    reopen = staff_client.post(url, {"effective_to_0": "", "effective_to_1": ""})
    assert reopen.status_code == 200 and "cannot be reopened" in reopen.content.decode()
    assert Price.objects.get(pk=price.pk).effective_to is not None


def test_the_tenant_list_shows_plan_balance_and_usage_in_a_fixed_number_of_queries(
    staff_client: Client, billed, tenant: Tenant, make_tenant
) -> None:
    def tenant_list() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            response = staff_client.get("/admin/accounts/tenant/")
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    _, queries_for_one = tenant_list()
    gold = Plan.objects.create(name="gold", markup_bps=1000, max_n=4)
    for slug in ("beta", "gamma", "delta"):
        plan_assign(tenant=make_tenant(slug, slug.title()), plan=gold, actor=SYSTEM)
    html, queries_for_four = tenant_list()

    assert queries_for_four == queries_for_one
    assert '<td class="field-plan_name">default</td>' in html
    assert html.count('<td class="field-plan_name">gold</td>') == 3
    assert '<td class="field-balance_usd">$0.976</td>' in html  # 1 USD granted, 2 × 0.012 captured
    assert '<td class="field-images_this_month">2</td>' in html
    assert '<td class="field-charged_this_month_usd">$0.024</td>' in html
    assert html.count('<td class="field-balance_usd">—</td>') == 3  # no wallet yet
