"""Which model ids may be priced. The catalog lives above billing (generations), so it registers its resolver
here at start-up (generations.apps) instead of billing importing it."""

from collections.abc import Callable

from project import errors

_resolver: Callable[[str], str | None] | None = None


class UnknownPricedModel(errors.InvalidRequest):
    code = "unknown_model"
    message = "No catalog model has this id or alias."


def model_id_resolver_register(resolver: Callable[[str], str | None]) -> None:
    global _resolver
    _resolver = resolver


def price_model_id_resolve(model_id: str) -> str:
    """The catalog id for an id or alias (a price saved under an alias would never match a generation)."""
    wanted = (model_id or "").strip()
    if not wanted:
        raise UnknownPricedModel("The model id must not be empty.", param="model_id")
    if _resolver is None:
        return wanted
    resolved = _resolver(wanted)
    if resolved is None:
        raise UnknownPricedModel(
            f"{wanted!r} is not a catalog model id or alias (GET /v1/models, or the admin's catalog, lists them).",
            param="model_id",
        )
    return resolved
