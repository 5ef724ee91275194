"""Staff pages for generations: read-only history, the prompt blocklist, review modes and the moderation queue."""

import io
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from PIL import Image, UnidentifiedImageError

from accounts.models import Tenant
from accounts.services import actor_from_staff
from billing.models import LedgerEntry
from billing.money import micros_to_usd
from generations.models import (
    CatalogModel,
    Generation,
    GenerationImage,
    ImageReport,
    ImageReview,
    ModerationQueueItem,
    PromptBlockRule,
    TenantReviewSetting,
)
from generations.selectors import catalog_shutdown_report
from generations.services.catalog import InvalidCatalogModel, catalog_model_check, catalog_model_save
from generations.services.moderation import (
    RejectionReasonRequired,
    images_approve,
    images_reject,
    prompt_block_rule_save,
    prompt_pattern_check,
    review_setting_save,
)
from generations.storage import blob_read

REVIEW_PERMISSION = "generations.review_images"
THUMBNAIL_PIXELS = 320
QUEUE_PAGE_SIZE = 48


class HistoryAdmin(admin.ModelAdmin):
    """History is looked at, never edited or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _thumbnail_tag(image: GenerationImage, *, size: int = 96) -> str:
    return format_html(
        '<a href="{url}" target="_blank"><img src="{url}" alt="{alt}" loading="lazy" '
        'style="max-width:{size}px;max-height:{size}px;border:1px solid var(--hairline-color)"></a>',
        url=reverse("admin:generations_image_thumbnail", args=[image.pk]),
        alt=str(image),
        size=size,
    )


def may_see_images(request: HttpRequest) -> bool:
    return request.user.has_perm(REVIEW_PERMISSION) or request.user.has_perm("generations.view_generation")


# --- Generations ----------------------------------------------------------------------------------------


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
        return _thumbnail_tag(image)

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


@admin.register(ImageReview)
class ImageReviewAdmin(HistoryAdmin):
    list_display = ["created_at", "image", "decision", "reviewer", "reason"]
    list_filter = ["decision", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["image__generation__public_id", "reason", "reviewer__email"]
    list_select_related = ["image__generation", "reviewer"]


@admin.register(ImageReport)
class ImageReportAdmin(HistoryAdmin):
    list_display = ["created_at", "image", "tenant", "reason"]
    search_fields = ["image__generation__public_id", "image__generation__tenant__slug", "reason"]
    list_select_related = ["image__generation__tenant"]

    @admin.display(description="tenant")
    def tenant(self, report: ImageReport) -> Tenant:
        return report.image.generation.tenant


# --- Blocklist and review modes (changes go through audited services) -----------------------------------


class PromptBlockRuleForm(forms.ModelForm):
    class Meta:
        model = PromptBlockRule
        fields = ["tenant", "kind", "pattern", "enabled", "note"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("pattern"):
            prompt_pattern_check(kind=data.get("kind", PromptBlockRule.Kind.TERM), pattern=data["pattern"])
        return data


@admin.register(PromptBlockRule)
class PromptBlockRuleAdmin(admin.ModelAdmin):
    """Rules are switched off rather than deleted, so audit events keep pointing at them."""

    form = PromptBlockRuleForm
    list_display = ["pattern", "kind", "scope", "enabled", "note", "updated_at"]
    list_filter = ["enabled", "kind", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["pattern", "note", "tenant__slug"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["tenant"]

    @admin.display(description="applies to", ordering="tenant__slug")
    def scope(self, rule: PromptBlockRule) -> str:
        return rule.tenant.slug if rule.tenant else "every tenant"

    def save_model(self, request: HttpRequest, obj: PromptBlockRule, form: forms.ModelForm, change: bool) -> None:
        prompt_block_rule_save(rule=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: PromptBlockRule | None = None) -> bool:
        return False


class TenantReviewSettingForm(forms.ModelForm):
    class Meta:
        model = TenantReviewSetting
        fields = ["tenant", "mode", "sample_percent"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("mode") == TenantReviewSetting.Mode.SAMPLE and not 0 < (data.get("sample_percent") or 0) <= 100:
            raise ValidationError({"sample_percent": "Sampling needs a percentage between 1 and 100."})
        return data


@admin.register(TenantReviewSetting)
class TenantReviewSettingAdmin(admin.ModelAdmin):
    form = TenantReviewSettingForm
    list_display = ["tenant", "mode", "sample_percent", "updated_at"]
    list_filter = ["mode"]
    search_fields = ["tenant__slug", "tenant__name"]
    autocomplete_fields = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: TenantReviewSetting | None = None) -> list[str]:
        return ["tenant"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: TenantReviewSetting, form: forms.ModelForm, change: bool) -> None:
        review_setting_save(setting=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: TenantReviewSetting | None = None) -> bool:
        return False


# --- Moderation queue -----------------------------------------------------------------------------------

REASONS = {
    "reported": "Reported by the tenant",
    "held": "Held (review mode 'hold')",
    "sampled": "Sampled (review mode 'sample')",
}


def _pending_images() -> QuerySet[GenerationImage]:
    return (
        GenerationImage.objects.filter(review_status=GenerationImage.ReviewStatus.PENDING)
        .select_related("generation__tenant", "report")
        .annotate(reported=Exists(ImageReport.objects.filter(image=OuterRef("pk"))))
        .order_by("created_at", "id")
    )


def _filtered(queryset: QuerySet[GenerationImage], filters: dict[str, str]) -> QuerySet[GenerationImage]:
    if filters.get("tenant"):
        queryset = queryset.filter(generation__tenant__slug=filters["tenant"])
    if filters.get("model"):
        queryset = queryset.filter(generation__model_id=filters["model"])
    reason = filters.get("reason")
    if reason == "reported":
        queryset = queryset.filter(reported=True)
    elif reason == "held":
        queryset = queryset.filter(reported=False, withheld=True)
    elif reason == "sampled":
        queryset = queryset.filter(reported=False, withheld=False)
    return queryset


def queue_reason(image: GenerationImage) -> str:
    if image.reported:  # type: ignore[attr-defined]
        return "reported"
    return "held" if image.withheld else "sampled"


@admin.register(ModerationQueueItem)
class ModerationQueueAdmin(admin.ModelAdmin):
    """A grid of pending images. Only users with `generations.review_images` see it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(REVIEW_PERMISSION)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("", self.admin_site.admin_view(self.queue_view), name="generations_moderationqueueitem_changelist"),
            path("image/<int:image_id>/thumbnail/", self.admin_site.admin_view(self.thumbnail_view),
                 name="generations_image_thumbnail"),
        ]

    def queue_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(REVIEW_PERMISSION):
            raise PermissionDenied
        filters = {name: request.GET.get(name, "") for name in ("tenant", "model", "reason")}
        if request.method == "POST":
            self._decide(request)
            query = urlencode({name: value for name, value in filters.items() if value})
            return HttpResponseRedirect(request.path + (f"?{query}" if query else ""))
        pending = _pending_images()
        page = Paginator(_filtered(pending, filters), QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
        cards = [
            {
                "image": image,
                "generation": image.generation,
                "reason": queue_reason(image),
                "reason_label": REASONS[queue_reason(image)],
                "report": image.report if image.reported else None,  # type: ignore[attr-defined]
                "thumbnail_url": reverse("admin:generations_image_thumbnail", args=[image.pk]),
                "generation_url": reverse("admin:generations_generation_change", args=[image.generation_id]),
            }
            for image in page.object_list
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Moderation queue",
            "opts": self.model._meta,
            "cards": cards,
            "page": page,
            "filters": filters,
            "pending_total": pending.count(),
            "tenants": Tenant.objects.filter(
                generations__images__review_status=GenerationImage.ReviewStatus.PENDING
            ).distinct().values_list("slug", flat=True),
            "models": pending.order_by().values_list("generation__model_id", flat=True).distinct(),
            "reasons": REASONS,
            "filter_query": urlencode({name: value for name, value in filters.items() if value}),
        }
        return TemplateResponse(request, "admin/moderation/queue.html", context)

    def _decide(self, request: HttpRequest) -> None:
        actor = actor_from_staff(request=request)
        if "approve_one" in request.POST or "reject_one" in request.POST:
            image_id = request.POST.get("approve_one") or request.POST.get("reject_one", "")
            ids = [int(image_id)] if image_id.isdigit() else []
            decision = "approve" if "approve_one" in request.POST else "reject"
            reason = request.POST.get(f"reason_{image_id}", "")
        else:
            ids = [int(value) for value in request.POST.getlist("image_ids") if value.isdigit()]
            decision, reason = request.POST.get("bulk", ""), request.POST.get("bulk_reason", "")
        if not ids or decision not in ("approve", "reject"):
            self.message_user(request, "Select at least one image and a decision.", messages.WARNING)
            return
        if decision == "approve":
            changed = images_approve(image_ids=ids, actor=actor)
            self.message_user(request, f"Approved {changed} image(s).", messages.SUCCESS)
            return
        try:
            changed = images_reject(image_ids=ids, reason=reason, actor=actor)
        except RejectionReasonRequired as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Rejected {changed} image(s).", messages.SUCCESS)

    def thumbnail_view(self, request: HttpRequest, image_id: int) -> HttpResponse:
        """A small copy of an image, for staff only (the tenant-facing download checks review status)."""
        if not may_see_images(request):
            raise PermissionDenied
        image = get_object_or_404(GenerationImage, pk=image_id)
        # Moderators see what is in their queue; the generation pages (view_generation) show every image.
        if not request.user.has_perm("generations.view_generation") and (
            image.review_status != GenerationImage.ReviewStatus.PENDING
        ):
            raise PermissionDenied
        try:
            with Image.open(io.BytesIO(blob_read(key=image.storage_key))) as source:
                source.thumbnail((THUMBNAIL_PIXELS, THUMBNAIL_PIXELS))
                output = io.BytesIO()
                source.convert("RGB").save(output, format="JPEG", quality=85)
        except (OSError, UnidentifiedImageError):
            return HttpResponse("The stored image cannot be read.", status=404, content_type="text/plain")
        response = HttpResponse(output.getvalue(), content_type="image/jpeg")
        response["Cache-Control"] = "private, no-store"
        return response


# --- Model catalog --------------------------------------------------------------------------------------


class CatalogModelForm(forms.ModelForm):
    """Refuses rules that could not be served, naming the broken rule, before anything is saved."""

    rules = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "style": "font-family: monospace"}),
        help_text=CatalogModel._meta.get_field("rules").help_text,
    )

    class Meta:
        model = CatalogModel
        fields = [
            "model_id", "alias", "display_name", "description", "family", "edit_family", "operations", "rules",
            "status", "shutdown_at", "replacement", "serve_with_replacement", "notes",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        row = CatalogModel(
            pk=self.instance.pk,
            **{name: data.get(name) for name in self.Meta.fields if name != "replacement"},
            replacement=data.get("replacement"),
        )
        row.rules = data.get("rules") or {}
        try:
            catalog_model_check(row=row)
        except InvalidCatalogModel as exc:
            field = exc.param if exc.param in self.fields else "rules"
            field = "model_id" if exc.param == "id" else field
            self.add_error(field, exc.message)
        return data


@admin.register(CatalogModel)
class CatalogModelAdmin(admin.ModelAdmin):
    """The living catalog: saves are validated and audited, and served by every process on its next request."""

    form = CatalogModelForm
    list_display = ["model_id", "alias", "family", "status", "shutdown_at", "replacement", "serve_with_replacement"]
    list_filter = ["status", "family"]
    search_fields = ["model_id", "alias", "display_name"]
    list_select_related = ["replacement"]
    autocomplete_fields = ["replacement"]
    readonly_fields = ["deprecated_at", "created_at", "updated_at"]
    change_list_template = "admin/generations/catalogmodel/change_list.html"

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: forms.ModelForm, change: bool) -> None:
        catalog_model_save(row=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: CatalogModel | None = None) -> bool:
        # Generations and prices keep pointing at model ids: retire a model instead.
        return False

    def get_urls(self) -> list[URLPattern]:
        return [
            path("shutdowns/", self.admin_site.admin_view(self.shutdowns_view), name="generations_catalog_shutdowns"),
            *super().get_urls(),
        ]

    def shutdowns_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Models nearing shutdown",
            "rows": catalog_shutdown_report(now=now, within_days=SHUTDOWN_HORIZON_DAYS),
            "within_days": SHUTDOWN_HORIZON_DAYS,
            "month_start": now.replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        }
        return TemplateResponse(request, "admin/generations/catalog_shutdowns.html", context)


SHUTDOWN_HORIZON_DAYS = 90
