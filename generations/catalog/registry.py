"""The living catalog: CatalogModel rows read into specs, cached per process under the table's version and
reloaded as soon as any process saves a row, so staff edits are served at once without a restart.
"""

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.db.models import Count, Max

from generations.catalog.specs import CatalogRuleError, ModelSpec, spec_from_dict
from generations.models import CatalogModel
from project.readcache import request_memo

SEED_FILE = Path(__file__).parent / "data" / "models.json"
logger = logging.getLogger(__name__)
_lock = threading.Lock()
_loaded: dict[str, Any] = {"version": None, "entries": ()}


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


def catalog_row_spec_data(
    *,
    model_id: str,
    alias: str,
    display_name: str,
    description: str,
    family: str,
    edit_family: str,
    operations: Any,
    rules: Any,
) -> dict[str, Any]:
    """The dict `spec_from_dict` reads, from a row's columns and its `rules`."""
    columns = {
        "id": model_id,
        "alias": alias,
        "display_name": display_name,
        "description": description,
        "family": family,
        "edit_family": edit_family,
        "operations": operations,
    }
    overlap = set(columns) & set(rules if isinstance(rules, dict) else {})
    if overlap:
        raise CatalogRuleError(f"rules.{min(overlap)}", "is a column of its own; remove it from the rules.")
    return {**(rules if isinstance(rules, dict) else {"rules": rules}), **columns}


def _entries_from_rows() -> tuple[CatalogEntry, ...]:
    entries = []
    for row in CatalogModel.objects.select_related("replacement").order_by("model_id"):
        try:
            data = catalog_row_spec_data(
                model_id=row.model_id,
                alias=row.alias,
                display_name=row.display_name,
                description=row.description,
                family=row.family,
                edit_family=row.edit_family,
                operations=row.operations,
                rules=row.rules,
            )
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


def catalog_version() -> str:
    """The catalog's version: every save moves the newest `updated_at`, every delete the count. One small query
    per lookup keeps every process (web, workers) in step with staff edits without a shared cache to keep true."""
    state = CatalogModel.objects.aggregate(newest=Max("updated_at"), rows=Count("id"))
    newest = state["newest"].isoformat() if state["newest"] else "-"
    return f"{state['rows']}:{newest}"


def catalog_entries() -> tuple[CatalogEntry, ...]:
    """Every catalog row (retired ones too), reloaded when another save changed the version (checked once per
    request: a submit looks the catalog up several times)."""
    version = request_memo("catalog_version", catalog_version)
    if _loaded["version"] == version:
        return _loaded["entries"]
    with _lock:
        entries = _entries_from_rows()
        _loaded.update(version=version, entries=entries)
    return entries


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
