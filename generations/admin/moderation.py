"""The moderation queue (a grid of pending images with approve / reject), the staff thumbnails, and the history
of reviews and tenants' reports."""

import io
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from PIL import Image, UnidentifiedImageError

from accounts.models import Tenant
from accounts.services import actor_from_staff
from generations.admin.base import HistoryAdmin, thumbnail_tag
from generations.models import GenerationImage, ImageReport, ImageReview, ModerationQueueItem
from generations.services.moderation import RejectionReasonRequired, images_approve, images_reject
from generations.storage import blob_read

REVIEW_PERMISSION = "generations.review_images"
THUMBNAIL_PIXELS = 320
QUEUE_PAGE_SIZE = 48


def may_see_images(request: HttpRequest) -> bool:
    return request.user.has_perm(REVIEW_PERMISSION) or request.user.has_perm("generations.view_generation")



class _ImageColumns:
    """An image's thumbnail, tenant and a link to its generation, for the review and report history rows."""

    @admin.display(description="image")
    def thumbnail(self, row: ImageReview | ImageReport) -> str:
        return thumbnail_tag(row.image, size=64)

    @admin.display(description="tenant", ordering="image__generation__tenant__slug")
    def tenant(self, row: ImageReview | ImageReport) -> Tenant:
        return row.image.generation.tenant

    @admin.display(description="generation")
    def generation_link(self, row: ImageReview | ImageReport) -> str:
        generation = row.image.generation
        url = reverse("admin:generations_generation_change", args=[quote(generation.pk)])
        return format_html('<a href="{}">{} #{}</a>', url, generation.public_id, row.image.index)


@admin.register(ImageReview)
class ImageReviewAdmin(_ImageColumns, HistoryAdmin):
    list_display = ["created_at", "thumbnail", "tenant", "generation_link", "decision", "reviewer", "reason"]
    list_filter = ["decision", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["image__generation__public_id", "image__generation__tenant__slug", "reason", "reviewer__email"]
    list_select_related = ["image__generation__tenant", "reviewer"]


@admin.register(ImageReport)
class ImageReportAdmin(_ImageColumns, HistoryAdmin):
    list_display = ["created_at", "thumbnail", "tenant", "generation_link", "reason"]
    search_fields = ["image__generation__public_id", "image__generation__tenant__slug", "reason"]
    list_select_related = ["image__generation__tenant"]


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
                "generation_url": reverse("admin:generations_generation_change", args=[quote(image.generation_id)]),
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
