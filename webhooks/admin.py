from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.services import actor_from_staff
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from webhooks.services.endpoints import webhook_endpoint_disable, webhook_endpoint_update


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Tenants manage endpoints through the API; staff can see them and switch them off or on. No secret here."""

    list_display = ["id", "tenant", "url", "enabled", "consecutive_failures", "disabled_at", "created_at"]
    list_filter = ["enabled", "created_at"]
    search_fields = ["id", "url", "tenant__slug"]
    fields = [
        "id",
        "tenant",
        "url",
        "description",
        "event_types",
        "enabled",
        "disabled_at",
        "disabled_reason",
        "consecutive_failures",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    actions = ["disable", "enable"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> bool:
        return False

    @admin.action(description="Disable selected endpoints", permissions=["change"])
    def disable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_disable(
                endpoint=endpoint, actor=actor_from_staff(request=request), reason="Disabled by staff."
            )
        self.message_user(request, f"Disabled {queryset.count()} endpoint(s).", messages.SUCCESS)

    @admin.action(description="Re-enable selected endpoints", permissions=["change"])
    def enable(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_endpoint_update(endpoint=endpoint, actor=actor_from_staff(request=request), enabled=True)
        self.message_user(request, f"Re-enabled {queryset.count()} endpoint(s).", messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "type", "created_at"]
    list_filter = ["type", "created_at"]
    search_fields = ["id", "tenant__slug"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "endpoint",
        "target_url",
        "event_type",
        "status",
        "attempts",
        "last_response_status",
        "delivered_at",
        "created_at",
    ]
    list_filter = ["status", "event__type", "created_at"]
    search_fields = ["id", "endpoint__id", "endpoint__url", "url", "event__id", "event__tenant__slug"]
    list_select_related = ["endpoint", "event"]

    @admin.display(description="URL")
    def target_url(self, obj: WebhookDelivery) -> str:
        return obj.target_url

    @admin.display(description="Event type", ordering="event__type")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type
