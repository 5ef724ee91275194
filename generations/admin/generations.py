"""Generation history for staff: read-only pages with the images, the money and the ledger rows."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from billing.models import LedgerEntry
from billing.money import micros_to_usd
from generations.admin.base import HistoryAdmin, thumbnail_tag
from generations.models import Generation, GenerationImage


class GenerationImageInline(admin.TabularInline):
    model = GenerationImage
    extra = 0
    can_delete = False
    # Fits a 1366 px screen: the long hash and storage key are shortened, in full on hover.
    fields = ["thumbnail", "index", "review_status", "withheld", "content_type", "dimensions", "byte_size",
              "sha256_short", "file"]
    readonly_fields = fields

    @admin.display(description="image")
    def thumbnail(self, image: GenerationImage) -> str:
        return thumbnail_tag(image)

    @admin.display(description="size (px)")
    def dimensions(self, image: GenerationImage) -> str:
        return f"{image.width}×{image.height}"

    @admin.display(description="sha256")
    def sha256_short(self, image: GenerationImage) -> str:
        return format_html('<span title="{}">{}…</span>', image.sha256, image.sha256[:12])

    @admin.display(description="file")
    def file(self, image: GenerationImage) -> str:
        return format_html('<span title="{}">{}</span>', image.storage_key, image.storage_key.rsplit("/", 1)[-1])

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Generation)
class GenerationAdmin(HistoryAdmin):
    # Fits a 1366 px screen: attempts and the full error live on the detail page.
    list_display = ["public_id", "tenant", "model_id", "status", "images_returned", "error_code", "charged_usd",
                    "created_at"]
    list_filter = ["status", "operation", "model_id", ("tenant", admin.RelatedOnlyFieldListFilter),
                   ("created_at", admin.DateFieldListFilter), "error_code"]
    search_fields = ["public_id", "prompt", "tenant__slug", "api_key__prefix", "upstream_trace_id",
                     "upstream_task_id"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    inlines = [GenerationImageInline]
    fieldsets = [
        (None, {"fields": ["public_id", "tenant", "api_key", "status", "cancel_requested", "created_at",
                           "started_at", "finished_at", "files_deleted_at"]}),
        ("Request", {"fields": ["model_id", "operation", "prompt", "negative_prompt", "n", "size", "quality",
                                "seed", "params", "upstream_body", "webhook_url", "webhook_events_filter"]}),
        ("Attempts and errors", {"fields": ["attempts", "max_attempts", "not_before", "lease_expires_at",
                                            "error_code", "error_message", "upstream_status", "upstream_trace_id",
                                            "upstream_task_id", "unknown_outcomes"]}),
        ("Money", {"fields": ["price_id", "unit_cost_usd", "unit_price_usd", "estimated_usd",
                              "images_returned", "charged_usd", "upstream_cost_usd", "usage",
                              "ledger_entries"]}),
    ]

    @admin.display(description="unit cost (USD)")
    def unit_cost_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.unit_cost_micros)

    @admin.display(description="unit price (USD)")
    def unit_price_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.unit_price_micros)

    @admin.display(description="estimated (USD)")
    def estimated_usd(self, generation: Generation) -> str:
        return micros_to_usd(generation.estimate_micros)

    @admin.display(description="upstream cost (USD)")
    def upstream_cost_usd(self, generation: Generation) -> str:
        return "" if generation.upstream_cost_micros is None else micros_to_usd(generation.upstream_cost_micros)

    def get_readonly_fields(self, request: HttpRequest, obj: Generation | None = None) -> list[str]:
        return [field for _, options in self.fieldsets for field in options["fields"]]

    @admin.display(description="charged (USD)", ordering="charged_micros")
    def charged_usd(self, generation: Generation) -> str:
        return "" if generation.charged_micros is None else micros_to_usd(generation.charged_micros)

    @admin.display(description="ledger entries")
    def ledger_entries(self, generation: Generation) -> str:
        entries = LedgerEntry.objects.filter(reference=generation.public_id).order_by("created_at", "id")
        if not entries:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e.created_at.strftime("%Y-%m-%d %H:%M:%S"), e.get_kind_display(), micros_to_usd(e.amount_micros),
              e.images, e.note) for e in entries),
        )
        return format_html(
            "<table><thead><tr><th>at</th><th>kind</th><th>amount (USD)</th><th>images</th><th>note</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )
