"""Deleting a generation's image files: on the tenant's request (`DELETE /v1/generations/{id}`) or when the
tenant's retention period has passed. The generation row, its image metadata and every ledger entry stay.

The row is marked first, in its own transaction, so nothing serves the files from that moment on; the blobs are
removed after. Deleting again removes the blobs again (a no-op for those already gone), so a storage error part
way is repaired by retrying the DELETE.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.db import transaction
from django.utils import timezone

from accounts.services import Actor, audit_record
from billing.selectors.limits import tenants_retention_days
from generations.models import Generation, GenerationImage, GenerationInputImage
from generations.storage import blob_delete
from project import errors

logger = structlog.get_logger(__name__)


class GenerationNotFinished(errors.Conflict):
    code = "generation_not_finished"
    message = "The generation is still queued or running: cancel it, or wait until it has finished, then delete it."


def _blobs_delete(generation_ids: list[int]) -> int:
    keys = [
        *GenerationImage.objects.filter(generation_id__in=generation_ids).values_list("storage_key", flat=True),
        *GenerationInputImage.objects.filter(generation_id__in=generation_ids).values_list("storage_key", flat=True),
    ]
    for key in keys:
        blob_delete(key=key)
    return len(keys)


def generation_files_delete(*, generation: Generation, actor: Actor) -> Generation:
    """Remove a finished generation's input and output files. Queued or running → `GenerationNotFinished`."""
    with transaction.atomic():
        locked = Generation.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=generation.pk)
        if not locked.is_final:
            raise GenerationNotFinished()
        if locked.files_deleted_at is None:
            locked.files_deleted_at = timezone.now()
            locked.save(update_fields=["files_deleted_at", "updated_at"])
            audit_record(
                actor=actor,
                action="generation.files_deleted",
                target=locked,
                tenant=locked.tenant,
                after={"files_deleted_at": locked.files_deleted_at.isoformat()},
            )
    _blobs_delete([locked.pk])
    return locked


@dataclass(frozen=True)
class PurgeResult:
    generations: int
    files: int


def generation_files_purge_expired(*, now: datetime | None = None, batch: int = 500) -> PurgeResult:
    """Remove the files of finished generations older than their tenant's retention period (plan or override;
    tenants without one keep their files). At most `batch` generations per tenant per run: the hourly schedule
    comes back for the rest."""
    now = now or timezone.now()
    tenant_retention_days = tenants_retention_days()
    purged = files = 0
    for tenant_id, days in tenant_retention_days.items():
        cutoff = now - timedelta(days=days)
        with transaction.atomic():
            due = (
                Generation.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(
                    tenant_id=tenant_id,
                    status__in=Generation.FINAL_STATUSES,
                    files_deleted_at__isnull=True,
                    finished_at__lt=cutoff,
                )
                .order_by("finished_at")
            )
            ids = list(due.values_list("id", flat=True)[:batch])
            Generation.objects.filter(id__in=ids).update(files_deleted_at=now, updated_at=now)
        if ids:
            files += _blobs_delete(ids)
            purged += len(ids)
            logger.info("generations.files_purged", tenant=tenant_id, generations=len(ids), retention_days=days)
    return PurgeResult(generations=purged, files=files)
