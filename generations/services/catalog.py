"""Writes to the model catalog: staff edits (validated, audited, served at once) and the sandbox's demo prices.

The catalog and its published prices are seeded by migration generations 0010_catalog_seed, nowhere else."""

from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from accounts.services import Actor, audit_record
from billing.selectors.prices import price_list_current
from billing.services.prices import price_set
from generations.catalog.lookup import catalog_list
from generations.catalog.registry import catalog_row_spec_data, lifecycle_status
from generations.catalog.specs import CatalogRuleError, ModelSpec, alias_check, model_id_check, spec_from_dict
from generations.models import CatalogModel
from generations.selectors.catalog_sync import DRAFT_VENDOR
from project import errors


class InvalidCatalogModel(errors.InvalidRequest):
    code = "invalid_catalog_model"


def catalog_model_spec(*, row: CatalogModel) -> ModelSpec:
    """The spec a row would be served as; raises InvalidCatalogModel naming the broken rule."""
    try:
        return spec_from_dict(catalog_row_spec_data(row))
    except CatalogRuleError as exc:
        raise InvalidCatalogModel(str(exc), param=exc.field) from exc


def catalog_model_check(*, row: CatalogModel) -> ModelSpec | None:
    """Everything a save must satisfy: valid rules, a unique alias among ids and aliases, a sound replacement.
    A draft is checked for its names only (None: it has no spec yet); its rules are checked when it is published."""
    previous = CatalogModel.objects.filter(pk=row.pk).values_list("status", flat=True).first() if row.pk else None
    if row.status == CatalogModel.Status.DRAFT:
        if previous not in (None, CatalogModel.Status.DRAFT):
            # Generations may be queued for it, and a draft is never sent upstream: retire it instead.
            raise InvalidCatalogModel("A published model cannot go back to draft; retire it instead.", param="status")
        try:
            model_id_check(row.model_id)
            alias_check(row.alias)
        except CatalogRuleError as exc:
            raise InvalidCatalogModel(str(exc), param=exc.field) from exc
        spec = None
    else:
        if row.model_id.split("/", 1)[0] == DRAFT_VENDOR:
            raise InvalidCatalogModel(
                f"Set the vendor: {row.model_id!r} starts with the placeholder {DRAFT_VENDOR!r}.", param="id"
            )
        spec = catalog_model_spec(row=row)
    others = CatalogModel.objects.exclude(pk=row.pk) if row.pk else CatalogModel.objects.all()
    names = {row.model_id.lower(), row.alias.lower()}
    clash = others.filter(model_id__iexact=row.alias).first() or others.filter(alias__iexact=row.model_id).first()
    if clash or others.filter(alias__iexact=row.alias).exists() or others.filter(model_id__iexact=row.model_id).exists():
        raise InvalidCatalogModel(f"{min(names)!r} already names another catalog model.", param="alias")
    if row.replacement_id is not None:
        if row.pk is not None and row.replacement_id == row.pk:
            raise InvalidCatalogModel("A model cannot replace itself.", param="replacement")
        replacement = CatalogModel.objects.get(pk=row.replacement_id)
        if replacement.status == CatalogModel.Status.DRAFT:
            raise InvalidCatalogModel(f"{replacement.model_id} is a draft, not offered yet.", param="replacement")
        if lifecycle_status(status=replacement.status, shutdown_at=replacement.shutdown_at) == "retired":
            raise InvalidCatalogModel(f"{replacement.model_id} is retired itself.", param="replacement")
    if row.serve_with_replacement and row.replacement_id is None:
        raise InvalidCatalogModel("Serving with a replacement needs a replacement.", param="serve_with_replacement")
    if row.status == CatalogModel.Status.ACTIVE and row.shutdown_at is not None:
        raise InvalidCatalogModel("An active model has no shutdown date; mark it deprecated.", param="status")
    return spec


def _snapshot(row: CatalogModel) -> dict[str, Any]:
    data = model_to_dict(row)
    data.pop("id", None)
    for key in ("deprecated_at", "shutdown_at"):
        data[key] = data[key].isoformat() if data.get(key) else None
    return data


def catalog_model_save(*, row: CatalogModel, actor: Actor, action: str | None = None) -> CatalogModel:
    """Validate, save and audit (as `action`, else created / changed); every process serves the new rules on its
    next request (the save moves the catalog's version)."""
    catalog_model_check(row=row)
    with transaction.atomic():
        previous = CatalogModel.objects.filter(pk=row.pk).first() if row.pk else None
        leaving_service = previous is None or previous.status in ("active", "draft")
        if row.status in ("deprecated", "retired") and leaving_service:
            row.deprecated_at = row.deprecated_at or timezone.now()
        if row.status in ("active", "draft"):
            row.deprecated_at = None
        row.save()
        audit_record(
            actor=actor,
            action=action or ("catalog_model.created" if previous is None else "catalog_model.changed"),
            target=row,
            tenant=None,
            before=_snapshot(previous) if previous else None,
            after=_snapshot(row),
        )
    return row


DEMO_PRICE_MICROS = 10_000
DEMO_PRICE_NOTE = "DEMO PRICE for the local sandbox (bootstrap_demo), not an AIHubMix price"


def catalog_demo_prices_set(*, actor: Actor) -> list[str]:
    """Local sandbox only: give every servable model without any current price an obvious flat demo price
    (0.01 USD per image, any quality and size), so a newcomer can try them all. Returns the models priced."""
    priced = set(price_list_current().values_list("model_id", flat=True))
    missing = [entry.id for entry in catalog_list() if entry.status != "retired" and entry.id not in priced]
    for model_id in missing:
        price_set(model_id=model_id, quality="*", size="*", cost_micros=DEMO_PRICE_MICROS, actor=actor, note=DEMO_PRICE_NOTE)
    return missing
