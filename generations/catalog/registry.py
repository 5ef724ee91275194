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

from generations.catalog.specs import CatalogRuleError, ModelSpec, spec_from_dict
from generations.models import CatalogModel
from project.readcache import readcache_get

SEED_FILE = Path(__file__).parent / "data" / "models.json"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    spec: ModelSpec
    status: str = "active"
    deprecated_at: datetime | None = None
    shutdown_at: datetime | None = None
    replacement: str | None = None  # the replacement's model id
    serve_with_replacement: bool = False

    @property
    def id(self) -> str:
        return self.spec.id


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
    for row in CatalogModel.objects.select_related("replacement").order_by("model_id"):
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
                status=row.status,
                deprecated_at=row.deprecated_at,
                shutdown_at=row.shutdown_at,
                replacement=row.replacement.model_id if row.replacement else None,
                serve_with_replacement=row.serve_with_replacement,
            )
        )
    return tuple(entries)


@lru_cache(maxsize=512)
def _spec_parsed(data: str) -> ModelSpec:
    # Rows rarely change between reloads: parse each distinct one once.
    return spec_from_dict(json.loads(data))


def catalog_entries() -> tuple[CatalogEntry, ...]:
    """Every catalog row (retired ones too). A warm lookup costs no query: the request's one read of the shared
    version token (which every catalog save or delete replaces) says whether this process's copy is current."""
    return readcache_get("catalog:entries", _entries_from_rows)


@lru_cache(maxsize=1)
def catalog_seed_data() -> tuple[dict[str, Any], ...]:
    """The shipped catalog file's entries (rules, lifecycle and published prices), as the seed migration reads them."""
    return tuple(json.loads(SEED_FILE.read_text())["models"])


def catalog_seed_specs() -> list[ModelSpec]:
    """The shipped specs without the database (tests parametrize over these at collection time)."""
    return [
        spec_from_dict({key: value for key, value in entry.items() if key not in ("lifecycle", "pricing")})
        for entry in catalog_seed_data()
    ]
