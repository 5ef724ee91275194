"""The staff billing report: its form, the page (table, daily chart) and the CSV export.

A view rather than a ModelAdmin; `billing.admin.ledger.LedgerEntryAdmin` wires it in (`admin:billing_report`).
"""

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.models import Tenant
from billing.periods import as_utc_start
from billing.reports import daily_chart_svg, report_csv_rows
from billing.selectors.reports import REPORT_GROUPS, ReportRow, billing_report
from project.streaming_csv import csv_streaming_response

REPORT_MAX_DAYS = 400


class ReportForm(forms.Form):
    tenant = forms.ModelChoiceField(queryset=Tenant.objects.all(), required=False, empty_label="All tenants")
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Inclusive (UTC).")
    group_by = forms.ChoiceField(choices=[(name, name.replace("_", " ")) for name in REPORT_GROUPS])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            raise forms.ValidationError("The end date is before the start date.")
        # The chart draws one bar per day: bound the range so a page can never grow without limit.
        if start and end and (end - start).days >= REPORT_MAX_DAYS:
            raise forms.ValidationError(f"Choose at most {REPORT_MAX_DAYS} days; export several ranges for more.")
        if end and end >= date.max - timedelta(days=1):
            raise forms.ValidationError("The end date is out of range.")
        return data


REPORT_GROUP_HEADINGS = {
    "day": ["day"],
    "tenant": ["tenant"],
    "model": ["model"],
    "model_quality_size": ["model", "quality", "size"],
    "api_key": ["tenant", "api key"],
    "day_model": ["day", "model"],
    "day_tenant": ["day", "tenant"],
    "month_model": ["month", "model"],
}


def billing_report_view(request: HttpRequest, *, model_admin: admin.ModelAdmin) -> HttpResponse:
    """Charged price, upstream cost and margin for a period, as a table with a daily chart or as CSV.

    Wired into the admin by `LedgerEntryAdmin.get_urls` (`admin:billing_report`)."""
    if not request.user.has_perm("billing.view_ledgerentry"):
        raise PermissionDenied
    today = timezone.now().date()
    form = ReportForm(request.GET or {"start": today.replace(day=1), "end": today, "group_by": "day"})
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "title": "Billing report",
        "form": form,
        "opts": model_admin.model._meta,
    }
    if not form.is_valid():
        return TemplateResponse(request, "admin/billing/report.html", context)
    tenant, start, end, group_by = (form.cleaned_data[k] for k in ("tenant", "start", "end", "group_by"))
    period = {
        "tenant": tenant,
        "start": as_utc_start(start),
        "end": as_utc_start(end) + timedelta(days=1),
    }
    headings = REPORT_GROUP_HEADINGS[group_by]
    if request.GET.get("export") == "csv":
        scope = tenant.slug if tenant else "all"
        return csv_streaming_response(
            report_csv_rows(headings, billing_report(group_by=group_by, **period)),
            filename=f"billing-{scope}-{start:%Y%m%d}-{end:%Y%m%d}-{group_by}.csv",
        )
    rows = list(billing_report(group_by=group_by, **period))
    daily = [(row.group[0], row) for row in billing_report(group_by="day", **period)]
    context.update(
        {
            "headings": headings,
            "rows": rows,
            "totals": _report_totals(rows),
            "chart": daily_chart_svg(_fill_days(daily, start, end)),
            "csv_query": urlencode(
                {
                    "tenant": tenant.pk if tenant else "",
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "group_by": group_by,
                    "export": "csv",
                }
            ),
        }
    )
    return TemplateResponse(request, "admin/billing/report.html", context)


def _report_totals(rows: list[ReportRow]) -> dict[str, int]:
    names = [
        "requests", "images", "price_micros", "cost_micros", "refunded_cost_micros", "margin_micros",
        "actual_images", "actual_cost_micros", "actual_estimate_micros",
    ]
    return {name: sum(getattr(row, name) for row in rows) for name in names}


def _fill_days(daily: list[tuple[date, ReportRow]], start: date, end: date) -> list[tuple[date, ReportRow]]:
    """One bar slot per calendar day, so quiet days show as gaps rather than disappearing."""
    by_day = dict(daily)
    empty = ReportRow(group=(), requests=0, images=0, price_micros=0, cost_micros=0, refunded_cost_micros=0)
    if not by_day:
        return []
    days = (end - start).days + 1
    return [(start + timedelta(days=i), by_day.get(start + timedelta(days=i), empty)) for i in range(days)]
