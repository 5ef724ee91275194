"""Reads of generations, always scoped to one tenant."""

from datetime import datetime

from django.db.models import Prefetch, QuerySet

from accounts.models import Tenant
from generations.models import Generation, GenerationImage
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
    return queryset.prefetch_related(Prefetch("images", queryset=GenerationImage.objects.order_by("index")))


def generation_is_final(*, generation_id: int) -> bool:
    """Whether the generation has reached a final state (what a waiting client re-reads)."""
    return Generation.objects.filter(pk=generation_id, status__in=Generation.FINAL_STATUSES).exists()


def image_get(*, generation: Generation, index: int) -> GenerationImage | None:
    return generation.images.filter(index=index).first()


def _serve_refusal(image: GenerationImage) -> type[errors.DomainError] | None:
    """The one rule for which images a tenant may be given (file, signed link, OpenAI `data`): not rejected by
    moderation and not withheld for review."""
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
