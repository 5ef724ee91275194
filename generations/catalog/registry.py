"""The living catalog: CatalogModel rows read into specs, cached per process in `project.readcache` and reloaded
as soon as any process saves or deletes a row (the save bumps the shared version token), so staff edits are served
at once without a restart. Code that writes rows around `save()` (a `QuerySet.update`, raw SQL) calls
`readcache_bump()`.
"""

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.utils import timezone

from generations.catalog.specs import CatalogRuleError, ModelSpec, spec_from_dict
from generations.models import CatalogModel
from project.readcache import readcache_get

SEED_FILE = Path(__file__).parent / "data" / "models.json"
logger = logging.getLogger(__name__)


def lifecycle_status(*, status: str, shutdown_at: datetime | None, now: datetime | None = None) -> str:
    """The status the calendar gives a model: past its `shutdown_at` it is retired whatever its row says (the
    vendor no longer serves it and AIHubMix bills a call once sent), with no staff edit and no deploy."""
    if shutdown_at is not None and shutdown_at <= (now or timezone.now()):
        return "retired"
    return status


@dataclass(frozen=True)
class CatalogEntry:
    spec: ModelSpec
    row_status: str = "active"  # as staff set it; `status` adds the calendar
    deprecated_at: datetime | None = None
    shutdown_at: datetime | None = None
    replacement: str | None = None  # the replacement's model id
    serve_with_replacement: bool = False
    former_ids: tuple[str, ...] = ()  # ids it was published under before: a client sending one still finds it

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def status(self) -> str:
        # Computed on every read: the cached entries outlive a shutdown date, the version token does not move then.
        return lifecycle_status(status=self.row_status, shutdown_at=self.shutdown_at)


def catalog_row_spec_data(row: CatalogModel) -> dict[str, Any]:
    """The dict `spec_from_dict` reads, from a row's columns and its `rules`."""
    columns = {
        "id": row.model_id,
        "alias": row.alias,
        "display_name": row.display_name,
        "description": row.description,
        "family": row.family,
        "edit_family": row.edit_family,
        "operations": row.operations,
    }
    rules = row.rules
    overlap = set(columns) & set(rules if isinstance(rules, dict) else {})
    if overlap:
        raise CatalogRuleError(f"rules.{min(overlap)}", "is a column of its own; remove it from the rules.")
    return {**(rules if isinstance(rules, dict) else {"rules": rules}), **columns}


def _entries_from_rows() -> tuple[CatalogEntry, ...]:
    entries = []
    # Drafts are not part of the served catalog: unknown to lookups, prices, /v1/models and the forwarder alike.
    rows = CatalogModel.objects.exclude(status=CatalogModel.Status.DRAFT).select_related("replacement")
    for row in rows.order_by("model_id"):
        try:
            data = catalog_row_spec_data(row)
            spec = _spec_parsed(json.dumps(data, sort_keys=True))
        except CatalogRuleError as exc:
            # Saves are validated; a row written around them (raw SQL) must not take the whole catalog down.
            logger.error("catalog row skipped: %s: %s", row.model_id, exc)
            continue
        entries.append(
            CatalogEntry(
                spec=spec,
                row_status=row.status,
                deprecated_at=row.deprecated_at,
                shutdown_at=row.shutdown_at,
                replacement=row.replacement.model_id if row.replacement else None,
                serve_with_replacement=row.serve_with_replacement,
                former_ids=tuple(name for name in row.former_ids or () if isinstance(name, str)),
            )
        )
    return tuple(entries)


@lru_cache(maxsize=512)
def _spec_parsed(data: str) -> ModelSpec:
    # Rows rarely change between reloads: parse each distinct one once.
    return spec_from_dict(json.loads(data))


def catalog_entries() -> tuple[CatalogEntry, ...]:
    """Every catalog row (retired ones too, drafts never). A warm lookup costs no query: the request's one read of the shared
    version token (which every catalog save or delete replaces) says whether this process's copy is current."""
    return readcache_get("catalog:entries", _entries_from_rows)


@lru_cache(maxsize=1)
def catalog_seed_data() -> tuple[dict[str, Any], ...]:
    """The shipped catalog file's entries (rules, lifecycle and published prices), as the seed migration reads them."""
    return tuple(json.loads(SEED_FILE.read_text())["models"])


def catalog_seed_specs(*, retired: bool = True) -> list[ModelSpec]:
    """The shipped specs without the database (tests parametrize over these at collection time); `retired=False`
    leaves out the models the shipped data retires."""
    return [
        spec_from_dict({key: value for key, value in entry.items() if key not in ("lifecycle", "pricing")})
        for entry in catalog_seed_data()
        if retired or (entry.get("lifecycle") or {}).get("status") != "retired"
    ]
