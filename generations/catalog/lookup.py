"""Finding a model in the catalog: by id, alias or upstream name, among the enabled ones (`DISABLED_MODELS`), and
which model a request runs on once lifecycle is applied (a retired model refused, or served by its replacement)."""

from dataclasses import dataclass

from django.conf import settings

from generations.catalog.registry import CatalogEntry, catalog_entries
from generations.catalog.specs import ModelSpec
from project import errors
from project.readcache import readcache_get


class UnknownModel(errors.InvalidRequest):
    code = "unknown_model"
    message = "This model does not exist or is not available."

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown or unavailable model {name!r}; GET /v1/models lists them.", param="model")


class ModelRetired(errors.Gone):
    code = "model_retired"
    message = "This model has been retired."


def _enabled(spec: ModelSpec) -> bool:
    disabled = set(getattr(settings, "DISABLED_MODELS", ()))
    return spec.id not in disabled and spec.alias not in disabled


def catalog_list() -> list[CatalogEntry]:
    """Every enabled catalog entry, retired ones included (GET /v1/models shows their lifecycle)."""
    return [entry for entry in catalog_entries() if _enabled(entry.spec)]


def _names_index(*, enabled_only: bool) -> dict[str, CatalogEntry]:
    """Lower-cased id, alias and upstream name → entry; the first entry (in catalog order) to claim a name keeps it.
    Built once per catalog version and DISABLED_MODELS: a submit looks names up several times, and scanning every
    entry each time was a noticeable part of its CPU."""
    disabled = frozenset(getattr(settings, "DISABLED_MODELS", ()))

    def build() -> dict[str, CatalogEntry]:
        index: dict[str, CatalogEntry] = {}
        for entry in catalog_list() if enabled_only else catalog_entries():
            spec = entry.spec
            for name in (spec.id, spec.alias, spec.upstream_model):
                index.setdefault(name.lower(), entry)
        # Former ids last: a current id or alias always wins over an old name that happens to collide with it.
        for entry in catalog_list() if enabled_only else catalog_entries():
            for name in entry.former_ids:
                index.setdefault(name.lower(), entry)
        return index

    return readcache_get(("catalog:names", enabled_only, disabled), build)


def catalog_entry_find(name: str, *, enabled_only: bool) -> CatalogEntry | None:
    """By id, alias or upstream name, case-insensitively; None when there is no such (enabled) model."""
    wanted = (name or "").strip().lower() if isinstance(name, str) else ""
    return _names_index(enabled_only=enabled_only).get(wanted)


def catalog_entry_get(name: str) -> CatalogEntry:
    """By id (`openai/gpt-image-1`) or alias (`gpt-image-1`), among enabled models."""
    entry = catalog_entry_find(name, enabled_only=True)
    if entry is None:
        raise UnknownModel(name)
    return entry


def model_get(name: str) -> ModelSpec:
    return catalog_entry_get(name).spec


def model_id_resolve(name: str) -> str | None:
    """The catalog id for an id or alias (enabled or not), None if the catalog has no such model."""
    entry = catalog_entry_find(name, enabled_only=False)
    return entry.id if entry else None


@dataclass(frozen=True)
class ServedModel:
    """The model a request runs on: the one asked for, or a retired model's replacement."""

    requested: CatalogEntry
    served: CatalogEntry

    @property
    def replaced(self) -> bool:
        return self.requested.id != self.served.id


def model_serve(name: str) -> ServedModel:
    """Refuses a retired model (410 naming its replacement) unless staff chose to serve it with the replacement."""
    entry = catalog_entry_get(name)
    if entry.status != "retired":
        return ServedModel(requested=entry, served=entry)
    replacement = catalog_entry_find(entry.replacement, enabled_only=True) if entry.replacement else None
    usable = replacement is not None and replacement.status != "retired"
    if entry.serve_with_replacement and usable:
        return ServedModel(requested=entry, served=replacement)
    when = f" on {entry.shutdown_at:%Y-%m-%d}" if entry.shutdown_at else ""
    hint = f" Use {replacement.id} instead." if usable else ""
    raise ModelRetired(f"{entry.id} was retired{when}.{hint}", param="model")
