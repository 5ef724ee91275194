"""The exact upstream body of an accepted request, and the call of a stored generation.

Nothing here refuses: `validation.py` has checked every value and chosen the interface before the body is built.
How a vendor spells a value on its native interface is the provider module's (`providers/predictions.py`); this
module passes it plain values and puts the answer where the catalog rules say.
"""

from typing import Any

from generations.catalog.lookup import UnknownModel, catalog_entry_find
from generations.catalog.specs import ModelSpec
from generations.providers import InputImage, ProviderCall, predictions


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def upstream_body_build(
    *,
    spec: ModelSpec,
    interface: str,
    operation: str,
    prompt: str,
    n: int,
    n_given: bool,
    size: str,
    size_given: bool,
    quality: str,
    negative_prompt: str | None,
    seed: int | None,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """The JSON body (or multipart fields) for `interface`, without input images: the provider module attaches
    those. `extras` are the client's `params`, already checked; `n_given` / `size_given` say whether the client
    gave them (some models get nothing when the upstream's own default applies)."""
    fields: dict[str, Any] = {"model": spec.upstream_model} if interface == "openai_compat" else {}
    fields["prompt"] = prompt
    fields.update(dict(spec.fixed))
    if spec.n_style == "field" and (spec.n_send_default or n_given):
        fields[spec.n_field] = n
    elif spec.n_style == "sequential":
        fields.update(predictions.sequential_count_fields(n))
    if spec.sizes.field and (spec.sizes.send_default or size_given):
        native = interface == "predictions"
        fields[spec.sizes.field] = predictions.size_value(spec.vendor, size) if native else size
    if quality:
        fields[spec.quality_field] = quality
    if negative_prompt:
        fields["negative_prompt"] = negative_prompt
    if seed is not None:
        _put(fields, spec.seed_path, seed)
    for param in spec.extras:
        if param.interface and param.interface != interface:
            continue
        if param.name in extras:
            _put(fields, param.upstream_path, extras[param.name])
        elif param.send_default and operation in param.operations:
            _put(fields, param.upstream_path, param.default)
    return fields if interface == "openai_compat" else {"input": fields}


def stored_interface(*, model_id: str, operation: str, body: dict[str, Any]) -> str:
    """The interface of a generation stored before interfaces were recorded: what its body was built for."""
    entry = catalog_entry_find(model_id, enabled_only=False)
    if entry is None:
        raise UnknownModel(model_id)
    family = entry.spec.family_for(operation)
    if family != "async_task" and "input" in body:
        return "predictions"
    return family if "input" in body or family == "openai_compat" else "openai_compat"


def provider_call_from_stored(
    *,
    model_id: str,
    interface: str,
    operation: str,
    body: dict[str, Any],
    images: list[InputImage],
    mask: InputImage | None = None,
) -> ProviderCall:
    """Rebuild the call of an accepted generation exactly as accepted, whatever the catalog says since."""
    return ProviderCall(
        model_id=model_id, family=interface, operation=operation, body=body, images=list(images), mask=mask
    )
