"""Reads of generations (scoped to one tenant) and staff reports over the catalog. `metrics` (a module of this
package): the staff dashboard's operational figures."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce

from accounts.models import Tenant
from generations.catalog.registry import lifecycle_status
from generations.models import CatalogModel, Generation, GenerationImage
from project import errors


class ImageNotFound(errors.NotFound):
    code = "not_found"
    message = "No such image."


class ContentRejected(errors.LegallyUnavailable):
    code = "content_rejected"
    message = "This image was rejected by moderation and is no longer available."


class ImagePendingReview(errors.Forbidden):
    code = "image_pending_review"
    message = "This image is withheld until a moderator reviews it."


class ImageGone(errors.Gone):
    code = "gone"
    message = "This image was deleted (on request or after the retention period); its metadata remains."


def generation_list(
    *,
    tenant: Tenant,
    status: str | None = None,
    model: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    api_key_prefix: str | None = None,
) -> QuerySet[Generation]:
    queryset = Generation.objects.filter(tenant=tenant).select_related("api_key")
    if status:
        queryset = queryset.filter(status=status)
    if model:
        queryset = queryset.filter(model_id=model)
    if created_after:
        queryset = queryset.filter(created_at__gte=created_after)
    if created_before:
        queryset = queryset.filter(created_at__lt=created_before)
    if api_key_prefix:
        queryset = queryset.filter(api_key__prefix=api_key_prefix)
    return queryset.prefetch_related(Prefetch("images", queryset=GenerationImage.objects.order_by("index")),
                                     "input_images")


def generation_is_final(*, generation_id: int) -> bool:
    """Whether the generation has reached a final state (what a waiting client re-reads)."""
    return Generation.objects.filter(pk=generation_id, status__in=Generation.FINAL_STATUSES).exists()


def generation_stream_state(*, generation_id: int) -> tuple[str, int]:
    """What an event stream re-reads: the generation's status and, while it is queued, how many of its tenant's
    queued generations were submitted before it (0: it is next)."""
    generation = Generation.objects.only("status", "tenant_id").get(pk=generation_id)
    if generation.status != Generation.Status.QUEUED:
        return generation.status, 0
    ahead = Generation.objects.filter(
        tenant_id=generation.tenant_id, status=Generation.Status.QUEUED, pk__lt=generation_id
    ).count()
    return generation.status, ahead


def generations_in_progress(*, tenant: Tenant) -> tuple[int, int]:
    """(running, queued) for the tenant: two counts, each on its partial index."""
    mine = Generation.objects.filter(tenant=tenant)
    return (
        mine.filter(status=Generation.Status.RUNNING).count(),
        mine.filter(status=Generation.Status.QUEUED).count(),
    )


def generations_cancel_requested(*, ids: list[int]) -> list[int]:
    """Which of these generations a tenant asked to cancel (the forwarder's check for cancel notices it missed)."""
    return list(Generation.objects.filter(id__in=ids, cancel_requested=True).values_list("id", flat=True))


def image_keys_recorded(*, keys: list[str]) -> set[str]:
    """Which of these storage keys an image row records."""
    return set(GenerationImage.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True))


def image_get(*, generation: Generation, index: int) -> GenerationImage | None:
    return generation.images.filter(index=index).first()


def _serve_refusal(image: GenerationImage) -> type[errors.DomainError] | None:
    """The one rule for which images a tenant may be given (file, signed link, OpenAI `data`): files not deleted,
    not rejected by moderation and not withheld for review."""
    if image.generation.files_deleted_at is not None:
        return ImageGone
    if image.review_status == GenerationImage.ReviewStatus.REJECTED:
        return ContentRejected
    if image.withheld:
        return ImagePendingReview
    return None


def image_is_serveable(*, image: GenerationImage) -> bool:
    return _serve_refusal(image) is None


def image_serveable_get(*, image: GenerationImage | None) -> GenerationImage:
    """The image, if it may be served; otherwise the refusal saying why."""
    if image is None:
        raise ImageNotFound()
    refusal = _serve_refusal(image)
    if refusal is not None:
        raise refusal()
    return image


def image_list_serveable(*, generation: Generation) -> list[GenerationImage]:
    return [image for image in generation.images.order_by("index") if image_is_serveable(image=image)]


@dataclass(frozen=True)
class ShutdownUse:
    tenant_slug: str
    generations: int
    images: int


@dataclass(frozen=True)
class ShutdownRow:
    model_id: str
    status: str
    shutdown_at: datetime | None
    replacement: str | None
    tenants: list[ShutdownUse]


def catalog_shutdown_report(*, now: datetime, within_days: int = 90) -> list[ShutdownRow]:
    """Models that are retired, deprecated, or shut down within `within_days`, soonest first, each with the
    tenants that used it this calendar month (UTC), asked for directly or through its replacement."""
    horizon = now + timedelta(days=within_days)
    rows = (
        CatalogModel.objects.select_related("replacement")
        .filter(Q(status__in=["deprecated", "retired"]) | Q(shutdown_at__lte=horizon))
        .order_by(F("shutdown_at").asc(nulls_last=True), "model_id")
    )
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    report = []
    for row in rows:
        uses = (
            Generation.objects.filter(created_at__gte=month)
            .filter(Q(model_id=row.model_id) | Q(requested_model_id=row.model_id))
            .values("tenant__slug")
            .annotate(generations=Count("id"), images=Coalesce(Sum("images_returned"), 0))
            .order_by("-generations", "tenant__slug")
        )
        report.append(
            ShutdownRow(
                model_id=row.model_id,
                status=lifecycle_status(status=row.status, shutdown_at=row.shutdown_at, now=now),
                shutdown_at=row.shutdown_at,
                replacement=row.replacement.model_id if row.replacement else None,
                tenants=[ShutdownUse(use["tenant__slug"], use["generations"], use["images"]) for use in uses],
            )
        )
    return report
