"""Catalog sync's two actions, each on one row of the report and audited: disable a model the upstream no longer
lists (it is retired: refused with 410, or served by its replacement if staff chose so), and add a model the
upstream lists as a draft (not offered until staff set its vendor, family, rules and price and publish it).

Each action recomputes the report from the upstream list it is given under a lock on the catalog, so a stale page or
a second click cannot retire a model the upstream lists again, or draft a model twice."""

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from accounts.services import Actor
from generations.models import CatalogModel
from generations.providers.model_list import UpstreamModel
from generations.selectors.catalog_sync import catalog_sync_report
from generations.services.catalog import catalog_model_save
from project import errors


class NotInSyncReport(errors.Conflict):
    code = "not_in_sync_report"
    message = "This model is not (or no longer) in the catalog sync report."


def _catalog_locked() -> None:
    # One sync action at a time: the report each one checks stays true until it commits.
    list(CatalogModel.objects.select_for_update().order_by("pk").values_list("pk", flat=True))


def _note(row_notes: str, line: str) -> str:
    return f"{row_notes.rstrip()}\n{line}".strip()


def catalog_sync_disable(*, model_id: str, upstream: Sequence[UpstreamModel], actor: Actor) -> CatalogModel:
    """Retire a model we offer that `upstream` (the list just read) does not list."""
    with transaction.atomic():
        _catalog_locked()
        missing = catalog_sync_report(upstream=upstream).missing_get(model_id)
        if missing is None:
            raise NotInSyncReport(
                f"{model_id} is not a model we offer that AIHubMix's list leaves out.", param="model"
            )
        row = CatalogModel.objects.get(model_id=missing.model_id)
        row.status = CatalogModel.Status.RETIRED
        row.notes = _note(
            row.notes, f"{timezone.now():%Y-%m-%d}: retired by catalog sync, AIHubMix's model list no longer lists it."
        )
        return catalog_model_save(row=row, actor=actor, action="catalog_model.disabled")


def catalog_sync_draft_add(*, name: str, upstream: Sequence[UpstreamModel], actor: Actor) -> CatalogModel:
    """Add an image model `upstream` lists and the catalog does not know, as a draft under the suggested id."""
    with transaction.atomic():
        _catalog_locked()
        new = catalog_sync_report(upstream=upstream).new_get(name)
        if new is None:
            raise NotInSyncReport(
                f"{name} is not an image model AIHubMix lists that the catalog lacks.", param="model"
            )
        model = new.upstream
        vendor, _, alias = new.suggested_id.partition("/")
        notes = [
            f"{timezone.now():%Y-%m-%d}: drafted by catalog sync from AIHubMix's model list, where it is"
            f" {model.model_id!r}.",
            f"Vendor {vendor!r} is a guess from the catalog's models of that name; set the family, operations and"
            " rules, price it, then make it active.",
        ]
        if model.pricing:
            notes.append(f"AIHubMix's list gives its pricing as {model.pricing}.")
        row = CatalogModel(
            model_id=new.suggested_id,
            alias=alias,
            display_name=(model.model_name or model.model_id)[:100],
            description=model.description,
            family="",  # unknown: staff choose the interface; a draft is never sent upstream
            operations=["generate"],
            rules={},
            status=CatalogModel.Status.DRAFT,
            notes="\n".join(notes),
        )
        return catalog_model_save(row=row, actor=actor, action="catalog_model.drafted")
