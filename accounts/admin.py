"""Staff pages for accounts and the audit trail.

The tenant list's money columns (plan, balance, usage this month) are added by `billing.admin`, which replaces
this TenantAdmin with a subclass: accounts sits below billing and imports nothing from it.
"""

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from rest_framework_api_key.models import APIKey as LibraryApiKey

from accounts.models import ApiKey, AuditEvent, Membership, Tenant, User
from accounts.services import actor_from_staff, api_key_budget_set, api_key_revoke, tenant_set_status
from project.streaming_csv import csv_streaming_response

# djangorestframework-api-key registers its own APIKey model; our keys are accounts.ApiKey, so staff would see a
# second, always empty "API keys" entry.
if admin.site.is_registered(LibraryApiKey):
    admin.site.unregister(LibraryApiKey)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("full_name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["slug", "name"]
    readonly_fields = ["status", "created_at"]
    inlines = [MembershipInline]
    actions = ["suspend", "reactivate"]

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        return False

    @admin.action(description="Suspend selected tenants", permissions=["change"])
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.SUSPENDED, actor=actor_from_staff(request=request))
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).", messages.SUCCESS)

    @admin.action(description="Reactivate selected tenants", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(tenant=tenant, status=Tenant.Status.ACTIVE, actor=actor_from_staff(request=request))
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "tenant__slug"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are issued through the API or `create_api_key`; the admin shows the prefix, never the hash. The budget
    is typed in dollars through the form `billing.admin` substitutes."""

    list_display = ["prefix_link", "name", "tenant", "is_admin", "created", "last_used_at", "revoked"]
    list_display_links = None
    list_filter = ["revoked", "is_admin"]
    search_fields = ["prefix", "name", "tenant__slug"]
    fields = ["prefix", "name", "tenant", "user", "is_admin", "monthly_budget_micros", "created", "last_used_at",
              "revoked", "revoked_at", "expiry_date"]
    readonly_fields = ["prefix", "name", "tenant", "user", "is_admin", "created", "last_used_at", "revoked",
                       "revoked_at", "expiry_date"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        return False

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> ApiKey | None:
        # Change pages are addressed by prefix, never by the hash-bearing primary key.
        return self.get_queryset(request).filter(prefix=object_id).first()

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle" aria-label="Select all">'))
    def action_checkbox(self, api_key: ApiKey) -> str:
        # Same widget as Django's, carrying the prefix instead of the hash-bearing primary key.
        checkbox = forms.CheckboxInput({"class": "action-select", "aria-label": f"Select {api_key.prefix}"})
        return checkbox.render(helpers.ACTION_CHECKBOX_NAME, api_key.prefix)

    def response_action(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> HttpResponse | None:
        prefixes = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        post = request.POST.copy()
        post.setlist(
            helpers.ACTION_CHECKBOX_NAME,
            [str(pk) for pk in ApiKey.objects.filter(prefix__in=prefixes).values_list("pk", flat=True)],
        )
        request.POST = post
        return super().response_action(request, queryset)

    @admin.display(description="prefix", ordering="prefix")
    def prefix_link(self, api_key: ApiKey) -> str:
        url = reverse("admin:accounts_apikey_change", args=[quote(api_key.prefix)])
        return format_html('<a href="{}">{}</a>', url, api_key.prefix)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        # The only editable field is the budget; it goes through the audited service.
        api_key_budget_set(
            api_key=ApiKey.objects.get(pk=obj.pk),
            monthly_budget_micros=obj.monthly_budget_micros,
            actor=actor_from_staff(request=request),
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_key_revoke(api_key=api_key, actor=actor_from_staff(request=request))
        self.message_user(request, "Revoked the selected keys.", messages.SUCCESS)


class DateRangeFilter(admin.ListFilter):
    """`created_at` between two dates (UTC, both inclusive), typed into two date inputs."""

    title = "date range"
    template = "admin/accounts/date_range_filter.html"
    parameters = ("created_from", "created_to")

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.parameters:
            if name in params:
                value = params.pop(name)
                self.used_parameters[name] = value[-1] if isinstance(value, list) else value

    def has_output(self) -> bool:
        return True

    def expected_parameters(self) -> list[str]:
        return list(self.parameters)

    def _day(self, name: str) -> datetime | None:
        text = self.used_parameters.get(name)
        if not text:
            return None
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise IncorrectLookupParameters(f"{name} must be a date (YYYY-MM-DD).") from exc
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        start, end = self._day("created_from"), self._day("created_to")
        if start is not None:
            queryset = queryset.filter(created_at__gte=start)
        if end is not None:
            queryset = queryset.filter(created_at__lt=end + timedelta(days=1)) if end.date() < date.max else queryset
        return queryset

    def choices(self, changelist: Any) -> Iterator[dict[str, Any]]:
        yield {
            "values": {name: self.used_parameters.get(name, "") for name in self.parameters},
            "keep": [
                (key, value)
                for key, values in changelist.params.items()
                if key not in self.parameters
                for value in (values if isinstance(values, list) else [values])
            ],
            "clear_query_string": changelist.get_query_string(remove=list(self.parameters)),
        }


AUDIT_CSV_COLUMNS = ["created_at", "action", "actor_type", "actor_user", "actor_api_key", "tenant", "target_type",
                     "target_id", "ip_address", "before", "after"]


def audit_csv_rows(events: QuerySet[AuditEvent]) -> Iterator[list[Any]]:
    yield AUDIT_CSV_COLUMNS
    rows = events.values_list(
        "created_at", "action", "actor_type", "actor_user__email", "actor_api_key__prefix", "tenant__slug",
        "target_type", "target_id", "ip_address", "before", "after",
    )
    for created_at, *rest, before, after in rows.iterator(chunk_size=2000):
        yield [created_at.isoformat(), *("" if value is None else value for value in rest),
               "" if before is None else _json(before), "" if after is None else _json(after)]


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _models_by_name() -> dict[str, type[Model]]:
    # Audit rows name their target by class name; looked up through the registry so accounts imports no app above.
    return {model.__name__: model for model in apps.get_models()}


def _admin_change_url(obj: Model) -> str | None:
    if not admin.site.is_registered(type(obj)):
        return None
    meta = obj._meta
    object_id = obj.prefix if isinstance(obj, ApiKey) else obj.pk
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[quote(object_id)])
    except NoReverseMatch:
        return None


def audit_target(event: AuditEvent) -> tuple[str, str | None]:
    """The target by name ("Image gen_abc#1", "Price openai/gpt-image-1 low 1024x1024") with a link to its admin
    page (for an image, its generation's), or its type and id when it no longer exists."""
    model = _models_by_name().get(event.target_type)
    if model is None:
        return f"{event.target_type} {event.target_id}", None
    lookup = {"prefix": event.target_id} if model is ApiKey else {"pk": event.target_id}
    try:
        obj = model._default_manager.filter(**lookup).first()
    except (ValueError, TypeError, DjangoValidationError):
        obj = None
    name = capfirst(model._meta.verbose_name)
    if obj is None:
        return f"{name} {event.target_id} (deleted)", None
    for candidate in (obj, getattr(obj, "generation", None)):
        if isinstance(candidate, Model) and (url := _admin_change_url(candidate)):
            return f"{name} {obj}", url
    return f"{name} {obj}", None


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Append-only: nobody, superusers included, can add, change or delete events here."""

    list_display = ["created_at", "action", "actor", "tenant", "target", "ip_address"]
    readonly_fields = ["target"]
    list_filter = [
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "actor_type",
        ("actor_user", admin.RelatedOnlyFieldListFilter),
        "action",
        DateRangeFilter,
    ]
    search_fields = ["action", "target_id", "tenant__slug", "actor_user__email", "actor_api_key__prefix"]
    list_select_related = ["tenant", "actor_user", "actor_api_key"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    @admin.display(description="actor")
    def actor(self, event: AuditEvent) -> str:
        if event.actor_user is not None:
            return event.actor_user.email
        if event.actor_api_key is not None:
            return f"key {event.actor_api_key.prefix}"
        return event.get_actor_type_display()

    @admin.display(description="target")
    def target(self, event: AuditEvent) -> str:
        label, url = audit_target(event)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("export.csv", self.admin_site.admin_view(self.export_csv_view), name="accounts_auditevent_export"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        query = request.GET.urlencode()
        export_url = reverse("admin:accounts_auditevent_export") + (f"?{query}" if query else "")
        return super().changelist_view(request, {**(extra_context or {}), "export_url": export_url})

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        """The events the change list shows with the same filters and search, streamed as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        events = changelist.get_queryset(request).order_by("created_at", "id")
        return csv_streaming_response(
            audit_csv_rows(events),
            filename=f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv",
            content_type="text/csv; charset=utf-8",
        )
