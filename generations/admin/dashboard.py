"""The staff dashboard (the admin's landing page, `/admin/`) and its per-tenant page.

Every figure comes from the selectors the billing report and its CSV use (`billing.selectors.dashboard` over
`billing.selectors.reports`) and from `generations.selectors.metrics`; this module only arranges them. The apps
list that used to be the landing page is at `/admin/apps/`. Wired by `generations/admin/urls.py`, included before
the admin site's own URLs in `project/urls.py`.
"""

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import Tenant
from billing.selectors.alerts import tenants_near_limits
from billing.selectors.dashboard import (
    CHART_DAYS,
    PERIODS,
    dashboard_periods,
    money_by_period,
    money_held,
    spend_series,
    top_spenders,
)
from generations.selectors.metrics import generation_figures, queue_now
from webhooks.selectors import webhook_backlog

DEFAULT_CHART_DAYS = 30


def dashboard_figures(*, tenant: Tenant | None, days: int, now=None) -> dict[str, Any]:
    """Everything the page shows, as plain data (the browser test compares the page with this)."""
    now = now or timezone.now()
    periods = dashboard_periods(now=now)
    money = money_by_period(tenant=tenant, now=now)
    generations = generation_figures(tenant=tenant, periods=periods, now=now, chart_days=days)
    stats, failures = generations.stats, generations.failures
    queued, running = queue_now(tenant=tenant)
    month_start, _ = periods["month"]
    figures: dict[str, Any] = {
        "now": now,
        "periods": [(name, label, money[name], stats[name], failures[name]) for name, label in PERIODS],
        "queued": queued,
        "running": running,
        "held_micros": money_held(tenant=tenant),
        "webhook_backlog": webhook_backlog(tenant=tenant),
        "charts": {
            "days": days,
            "by_model": spend_series(tenant=tenant, now=now, days=days, by="model"),
            "failures": {"days": generations.failure_days, "series": generations.failure_series},
        },
        "top_keys": top_spenders(tenant=tenant, start=month_start, end=now, by="api_key"),
        "near_limits": tenants_near_limits(tenant=tenant, now=now),
    }
    if tenant is None:
        figures["charts"]["by_tenant"] = spend_series(tenant=None, now=now, days=days, by="tenant")
        figures["top_tenants"] = top_spenders(tenant=None, start=month_start, end=now, by="tenant")
    return figures


def _chart_days(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", DEFAULT_CHART_DAYS))
    except ValueError:
        return DEFAULT_CHART_DAYS
    return days if days in CHART_DAYS else DEFAULT_CHART_DAYS


def _render(request: HttpRequest, *, tenant: Tenant | None, title: str) -> HttpResponse:
    days = _chart_days(request)
    figures = dashboard_figures(tenant=tenant, days=days)
    charts = figures["charts"]
    chart_data = {
        "by_model": {"days": charts["by_model"].days, "series": charts["by_model"].series},
        "failures": charts["failures"],
    }
    if "by_tenant" in charts:
        chart_data["by_tenant"] = {"days": charts["by_tenant"].days, "series": charts["by_tenant"].series}
    context = {
        **admin.site.each_context(request),
        "title": title,
        "tenant": tenant,
        "figures": figures,
        "chart_data": chart_data,
        "chart_days": CHART_DAYS,
    }
    return TemplateResponse(request, "admin/dashboard.html", context)


def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Staff who may not see money (moderators, support) get the apps list, as before."""
    if not request.user.has_perm("billing.view_ledgerentry"):
        return admin.site.index(request)
    return _render(request, tenant=None, title="Dashboard")


def tenant_dashboard_view(request: HttpRequest, slug: str) -> HttpResponse:
    if not request.user.has_perm("billing.view_ledgerentry"):
        raise Http404
    tenant = get_object_or_404(Tenant, slug=slug)
    return _render(request, tenant=tenant, title=f"Tenant {tenant.slug}")
