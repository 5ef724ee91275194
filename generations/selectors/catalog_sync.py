"""Catalog sync: our catalog next to AIHubMix's public list of image models. Which models we offer that the upstream
no longer lists, and which image models it lists that we do not know (drafts and retired rows count as known, so a
model is suggested once and a retired one is not offered back). The comparison is pure (`catalog_sync_diff`); the
catalog's side is read from the rows (`catalog_sync_report`).

A name matches a catalog row by its id, its upstream name (the id's part after the vendor), its alias or a former
id, case-insensitively: AIHubMix lists bare names (`gpt-image-2`), our ids carry the vendor (`openai/gpt-image-2`).
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from generations.catalog.registry import lifecycle_status
from generations.models import CatalogModel
from generations.providers.model_list import UpstreamModel

# The vendor part of a drafted model's id when nothing in the catalog suggests one: staff must replace it (a model
# with it cannot leave draft).
DRAFT_VENDOR = "unknown"
OFFERED = ("active", "deprecated")


@dataclass(frozen=True)
class CatalogName:
    """A catalog row as sync sees it: its names and its status (the calendar applied, or `draft`)."""

    model_id: str
    alias: str
    status: str
    former_ids: tuple[str, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        names = {self.model_id, self.alias}
        for name in (self.model_id, *self.former_ids):
            names |= {name, name.split("/", 1)[-1]}
        return frozenset(name.lower() for name in names if name)


@dataclass(frozen=True)
class MissingModel:
    """Offered here, not listed upstream: a call would fail there (and might be billed), so staff may disable it."""

    model_id: str
    alias: str
    status: str

    def as_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "alias": self.alias, "status": self.status, "action": "disable"}


@dataclass(frozen=True)
class NewModel:
    """Listed upstream, unknown here: staff may add it as a draft under `suggested_id`."""

    upstream: UpstreamModel
    suggested_id: str

    @property
    def name(self) -> str:
        return self.upstream.model_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.upstream.model_id,
            "model_name": self.upstream.model_name,
            "pricing": self.upstream.pricing,
            "suggested_id": self.suggested_id,
            "action": "add_draft",
        }


@dataclass(frozen=True)
class CatalogSyncReport:
    listed: int  # image models the upstream lists
    missing: tuple[MissingModel, ...]
    new: tuple[NewModel, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "missing_upstream": [row.as_dict() for row in self.missing],
            "new_upstream": [row.as_dict() for row in self.new],
        }

    def missing_get(self, model_id: str) -> MissingModel | None:
        return next((row for row in self.missing if row.model_id.lower() == model_id.strip().lower()), None)

    def new_get(self, name: str) -> NewModel | None:
        return next((row for row in self.new if row.name.lower() == name.strip().lower()), None)


def _first_word(name: str) -> str:
    """`gpt-image-3` → `gpt`, `wan2.8-image` → `wan`, `FLUX.2-max` → `flux`: what a vendor's models share."""
    return re.split(r"[^a-z]", name.lower(), maxsplit=1)[0]


def _suggested_id(name: str, catalog: Sequence[CatalogName]) -> str:
    """`<vendor>/<name>` as our ids are written. The vendor is the one every catalog model whose upstream name starts
    with the same word has (gpt → openai), else DRAFT_VENDOR; staff confirm it before publishing."""
    vendor, _, model = name.rpartition("/")
    model = re.sub(r"[^A-Za-z0-9_.-]+", "-", model).strip("-")[:80] or "model"
    if not vendor:
        word = _first_word(model)
        vendors = {
            row.model_id.split("/", 1)[0]
            for row in catalog
            if row.status != "draft" and len(word) >= 3 and _first_word(row.model_id.split("/", 1)[-1]) == word
        }
        vendor = vendors.pop() if len(vendors) == 1 else DRAFT_VENDOR
    vendor = re.sub(r"[^A-Za-z0-9_.-]+", "-", vendor).strip("-")[:19] or DRAFT_VENDOR  # the id fits 100 characters
    return f"{vendor}/{model}"


def catalog_sync_diff(*, catalog: Sequence[CatalogName], upstream: Sequence[UpstreamModel]) -> CatalogSyncReport:
    """The report, from the catalog's names and the upstream's list alone (no I/O)."""
    listed: dict[str, UpstreamModel] = {}
    for model in upstream:
        listed.setdefault(model.model_id.lower(), model)
    upstream_names = set(listed) | {name.split("/", 1)[-1] for name in listed}
    known = frozenset().union(*(row.names for row in catalog)) if catalog else frozenset()
    missing = tuple(
        MissingModel(model_id=row.model_id, alias=row.alias, status=row.status)
        for row in sorted(catalog, key=lambda row: row.model_id.lower())
        if row.status in OFFERED and not row.names & upstream_names
    )
    new = tuple(
        NewModel(upstream=model, suggested_id=_suggested_id(model.model_id, catalog))
        for name, model in sorted(listed.items())
        if name not in known and name.split("/", 1)[-1] not in known
    )
    return CatalogSyncReport(listed=len(listed), missing=missing, new=new)


def catalog_sync_names() -> list[CatalogName]:
    """Every catalog row, drafts included, read from the table (not the served catalog, which leaves drafts out)."""
    rows = CatalogModel.objects.only("model_id", "alias", "status", "shutdown_at", "former_ids")
    return [
        CatalogName(
            model_id=row.model_id,
            alias=row.alias,
            status=row.status if row.status == "draft" else lifecycle_status(status=row.status, shutdown_at=row.shutdown_at),
            former_ids=tuple(name for name in row.former_ids or () if isinstance(name, str)),
        )
        for row in rows
    ]


def catalog_sync_report(*, upstream: Sequence[UpstreamModel]) -> CatalogSyncReport:
    return catalog_sync_diff(catalog=catalog_sync_names(), upstream=upstream)
