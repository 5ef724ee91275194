"""Turn a client's request into the exact upstream body, or refuse it naming the field."""

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings

from generations.catalog.registry import CatalogEntry, catalog_entries
from generations.catalog.specs import ModelSpec, ParamSpec
from generations.providers import InputImage, ProviderCall
from project import errors
from project.readcache import readcache_get

_DIMENSIONS = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RATIO = re.compile(r"^\d{1,3}(\.\d{1,2})?%$")


class UnknownModel(errors.InvalidRequest):
    code = "unknown_model"
    message = "This model does not exist or is not available."

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown or unavailable model {name!r}; GET /v1/models lists them.", param="model")


class ModelRetired(errors.Gone):
    code = "model_retired"
    message = "This model has been retired."


class InvalidGenerationRequest(errors.InvalidRequest):
    code = "invalid_parameter"


def _enabled(spec: ModelSpec) -> bool:
    disabled = set(getattr(settings, "DISABLED_MODELS", ()))
    return spec.id not in disabled and spec.alias not in disabled


def catalog_list() -> list[CatalogEntry]:
    """Every enabled catalog entry, retired ones included (GET /v1/models shows their lifecycle)."""
    return [entry for entry in catalog_entries() if _enabled(entry.spec)]


def model_catalog() -> list[ModelSpec]:
    return [entry.spec for entry in catalog_list()]


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
        return index

    return readcache_get(("catalog:names", enabled_only, disabled), build)


def _lookup(name: str, *, enabled_only: bool) -> CatalogEntry | None:
    wanted = (name or "").strip().lower() if isinstance(name, str) else ""
    return _names_index(enabled_only=enabled_only).get(wanted)


def catalog_entry_get(name: str) -> CatalogEntry:
    """By id (`openai/gpt-image-1`) or alias (`gpt-image-1`), among enabled models."""
    entry = _lookup(name, enabled_only=True)
    if entry is None:
        raise UnknownModel(name)
    return entry


def model_get(name: str) -> ModelSpec:
    return catalog_entry_get(name).spec


def model_id_resolve(name: str) -> str | None:
    """The catalog id for an id or alias (enabled or not), None if the catalog has no such model."""
    entry = _lookup(name, enabled_only=False)
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
    replacement = _lookup(entry.replacement, enabled_only=True) if entry.replacement else None
    usable = replacement is not None and replacement.status != "retired"
    if entry.serve_with_replacement and usable:
        return ServedModel(requested=entry, served=replacement)
    when = f" on {entry.shutdown_at:%Y-%m-%d}" if entry.shutdown_at else ""
    hint = f" Use {replacement.id} instead." if usable else ""
    raise ModelRetired(f"{entry.id} was retired{when}.{hint}", param="model")


@dataclass(frozen=True)
class Lifecycle:
    status: str
    deprecated_at: datetime | None
    shutdown_at: datetime | None
    replacement: str | None


def operation_check(*, model: str, operation: str) -> ModelSpec:
    """The checks that need nothing but the model and operation: run before input images are fetched or decoded,
    so a request the model cannot take never makes us download anything."""
    spec = model_serve(model).served.spec
    if operation not in spec.operations:
        supported = " and ".join(sorted(spec.operations))
        raise _refuse("operation_not_supported", "operation", f"{spec.alias} supports {supported} only.")
    return spec


@dataclass(frozen=True)
class ValidatedRequest:
    spec: ModelSpec
    model_id: str
    operation: str
    prompt: str
    n: int
    size: str
    quality: str
    upstream_body: dict[str, Any]
    # The interface the body is built for (openai_compat, predictions or async_task).
    interface: str
    # The model the client named when it differs from model_id (a retired model served by its replacement).
    requested_model_id: str = ""
    lifecycle: Lifecycle | None = None

    def provider_call(self, images: list[InputImage], mask: InputImage | None = None) -> ProviderCall:
        return ProviderCall(
            model_id=self.model_id,
            family=self.interface,
            operation=self.operation,
            body=self.upstream_body,
            images=list(images),
            mask=mask,
        )


def stored_interface(*, model_id: str, operation: str, body: dict[str, Any]) -> str:
    """The interface of a generation stored before interfaces were recorded: what its body was built for."""
    entry = _lookup(model_id, enabled_only=False)
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


def _refuse(code: str, param: str, message: str) -> InvalidGenerationRequest:
    return InvalidGenerationRequest(message, code=code, param=param)


def _size_normalise(size: str) -> str:
    match = _DIMENSIONS.match(size)
    if match:
        return f"{int(match.group(1))}x{int(match.group(2))}"
    cleaned = size.strip()
    return cleaned.upper() if re.fullmatch(r"\d[kK]", cleaned) else cleaned


def size_rule_text(spec: ModelSpec) -> str:
    rule = spec.sizes
    parts = [f"one of {', '.join(rule.presets)}"] if rule.presets else []
    if rule.custom:
        custom = rule.custom
        text = f"WxH with each side {custom.min_side}-{custom.max_side}"
        if custom.max_aspect_ratio:
            text += f", aspect ratio within 1:{custom.max_aspect_ratio:g}-{custom.max_aspect_ratio:g}:1"
        if custom.max_pixels:
            text += f", at most {custom.max_pixels} pixels"
        if custom.multiple_of:
            text += f", sides divisible by {custom.multiple_of}"
        parts.append(text)
    return " or ".join(parts)


def _size_validate(spec: ModelSpec, size: str | None) -> str:
    if size is None or size == "":
        return spec.sizes.default
    if not isinstance(size, str):
        raise _refuse("unsupported_size", "size", "size must be a string")
    normalised = _size_normalise(size)
    presets = {preset.lower(): preset for preset in spec.sizes.presets}
    if normalised.lower() in presets:
        return presets[normalised.lower()]
    custom = spec.sizes.custom
    match = _DIMENSIONS.match(normalised)
    refusal = _refuse(
        "unsupported_size",
        "size",
        f"{spec.alias} does not support size {size!r}: use {size_rule_text(spec)}.",
    )
    if custom is None or match is None:
        raise refusal
    width, height = int(match.group(1)), int(match.group(2))
    if not (custom.min_side <= width <= custom.max_side and custom.min_side <= height <= custom.max_side):
        raise refusal
    if custom.max_aspect_ratio and max(width, height) / min(width, height) > custom.max_aspect_ratio:
        raise refusal
    if custom.max_pixels and width * height > custom.max_pixels:
        raise refusal
    if custom.multiple_of and (width % custom.multiple_of or height % custom.multiple_of):
        raise refusal
    return normalised


def _param_value(spec: ModelSpec, param: ParamSpec, value: Any, operation: str) -> Any:
    name = f"params.{param.name}"
    if operation not in param.operations:
        raise _refuse(
            "unsupported_parameter", name, f"{param.name} is not supported for {operation} on {spec.alias}."
        )
    if param.type == "color_palette":
        return _colour_palette(name, value)
    if param.type == "boolean":
        ok = isinstance(value, bool)
    elif param.type == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif param.type == "number":
        # NaN compares false with every bound and infinities are not JSON: refuse both.
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _refuse("invalid_parameter", name, f"{param.name} must be a {param.type}.")
    if param.choices and value not in param.choices:
        choices = ", ".join(str(choice) for choice in param.choices)
        raise _refuse("invalid_parameter", name, f"{param.name} must be one of {choices}.")
    below = param.minimum is not None and value < param.minimum
    above = param.maximum is not None and value > param.maximum
    if below or above:
        raise _refuse(
            "invalid_parameter",
            name,
            f"{param.name} must be between {param.minimum:g} and {param.maximum:g}.",
        )
    if param.max_length is not None and len(value) > param.max_length:
        raise _refuse(
            "invalid_parameter", name, f"{param.name} may be at most {param.max_length} characters."
        )
    return value


def _colour_palette(name: str, value: Any) -> list[dict[str, str]]:
    """wan2.7's `color_palette`: 3-10 colour objects. The page names no fields; DashScope's own examples use
    `hex` with an optional `ratio`, so those two are accepted and nothing else is passed on."""
    message = f'{name.split(".")[-1]} must be a list of 3 to 10 colours like {{"hex": "#C2D1E6", "ratio": "25%"}}.'
    if not isinstance(value, list) or not 3 <= len(value) <= 10:
        raise _refuse("invalid_parameter", name, message)
    colours = []
    for colour in value:
        if not isinstance(colour, dict) or set(colour) - {"hex", "ratio"}:
            raise _refuse("invalid_parameter", name, message)
        if not isinstance(colour.get("hex"), str) or not _HEX_COLOUR.match(colour["hex"]):
            raise _refuse("invalid_parameter", name, message)
        if "ratio" in colour and not (isinstance(colour["ratio"], str) and _RATIO.match(colour["ratio"])):
            raise _refuse("invalid_parameter", name, message)
        colours.append(dict(colour))
    return colours


def _interface_choose(spec: ModelSpec, operation: str, given: list[ParamSpec]) -> str:
    """The operation's interface, unless a param only the native predictions interface takes moves it there."""
    interface = spec.family_for(operation)
    for param in given:
        if not param.interface or param.interface == interface:
            continue
        movable = param.interface == "predictions" and interface == "openai_compat" and "predictions" in spec.interfaces
        if movable and not any(other.interface == "openai_compat" for other in given):
            interface = "predictions"
            continue
        others = [other.name for other in given if other.interface and other is not param]
        context = f" together with {', '.join(others)}" if others else f" for an {operation}" if operation == "edit" else ""
        raise _refuse(
            "unsupported_parameter",
            f"params.{param.name}",
            f"{spec.alias} does not take {param.name}{context}.",
        )
    return interface


def _put(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def generation_request_validate(
    *,
    model: str,
    operation: str,
    prompt: str,
    n: int | None,
    size: str | None,
    quality: str | None,
    negative_prompt: str | None,
    seed: int | None,
    params: dict[str, Any],
    input_image_count: int,
) -> ValidatedRequest:
    served = model_serve(model)
    spec = served.served.spec
    if operation not in spec.operations:
        supported = " and ".join(sorted(spec.operations))
        raise _refuse("operation_not_supported", "operation", f"{spec.alias} supports {supported} only.")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _refuse("prompt_required", "prompt", "prompt must not be empty.")
    if len(prompt) > spec.prompt_max_length:
        raise _refuse(
            "prompt_too_long",
            "prompt",
            f"{spec.alias} takes prompts of at most {spec.prompt_max_length} characters.",
        )

    if operation == "edit" and input_image_count < 1:
        raise _refuse("missing_input_image", "images", "An edit needs at least one input image.")
    if operation == "generate" and input_image_count:
        raise _refuse("unexpected_input_image", "images", "Input images are only taken by edits.")
    if input_image_count > spec.max_input_images:
        raise _refuse(
            "too_many_input_images",
            "images",
            f"{spec.alias} takes at most {spec.max_input_images} input image(s).",
        )

    n_given = n is not None
    if n is None:
        n = spec.n_default
    if not isinstance(n, int) or isinstance(n, bool) or not spec.n_min <= n <= spec.n_max:
        raise _refuse("invalid_n", "n", f"n must be between {spec.n_min} and {spec.n_max} for {spec.alias}.")
    if spec.max_images_in_and_out and n + input_image_count > spec.max_images_in_and_out:
        raise _refuse(
            "invalid_n",
            "n",
            f"input images plus n may not exceed {spec.max_images_in_and_out} for {spec.alias}.",
        )

    size_given = size not in (None, "")
    effective_size = _size_validate(spec, size)

    if quality in (None, ""):
        effective_quality = spec.default_quality
    elif spec.qualities and quality in spec.qualities:
        effective_quality = quality
    else:
        allowed = ", ".join(spec.qualities) if spec.qualities else "none (omit quality)"
        raise _refuse("unsupported_quality", "quality", f"{spec.alias} qualities: {allowed}.")

    if negative_prompt:
        if spec.negative_prompt_max_length is None:
            raise _refuse(
                "unsupported_parameter", "negative_prompt", f"{spec.alias} takes no negative prompt."
            )
        if not isinstance(negative_prompt, str) or len(negative_prompt) > spec.negative_prompt_max_length:
            raise _refuse(
                "invalid_parameter",
                "negative_prompt",
                f"negative_prompt may be at most {spec.negative_prompt_max_length} characters.",
            )
    if seed is not None:
        if spec.seed_range is None:
            raise _refuse("unsupported_parameter", "seed", f"{spec.alias} takes no seed.")
        if (
            not isinstance(seed, int)
            or isinstance(seed, bool)
            or not spec.seed_range[0] <= seed <= spec.seed_range[1]
        ):
            raise _refuse(
                "invalid_parameter",
                "seed",
                f"seed must be an integer in {spec.seed_range[0]}..{spec.seed_range[1]}.",
            )

    if not isinstance(params, dict):
        raise _refuse("invalid_parameter", "params", "params must be an object.")
    extras: dict[str, Any] = {}
    given: list[ParamSpec] = []
    for name, value in params.items():
        param = spec.extra(name)
        if param is None:
            known = ", ".join(p.name for p in spec.extras) or "none"
            raise _refuse(
                "unknown_parameter",
                f"params.{name}",
                f"{spec.alias} has no parameter {name!r} (known: {known}).",
            )
        extras[name] = _param_value(spec, param, value, operation)
        given.append(param)
    interface = _interface_choose(spec, operation, given)

    fields: dict[str, Any] = {"model": spec.upstream_model} if interface == "openai_compat" else {}
    fields["prompt"] = prompt
    fields.update(dict(spec.fixed))
    if spec.n_style == "field" and (spec.n_send_default or n_given):
        fields[spec.n_field] = n
    elif spec.n_style == "sequential":
        fields["sequential_image_generation"] = "auto" if n > 1 else "disabled"
        if n > 1:
            fields["sequential_image_generation_options"] = {"max_images": n}
    if spec.sizes.field and (spec.sizes.send_default or size_given):
        native_bailian = interface == "predictions" and spec.vendor == "bailian"
        # Alibaba's native interface writes sizes as W*H ("格式为 宽*高 或缩写 1K/2K/4K").
        fields[spec.sizes.field] = effective_size.replace("x", "*") if native_bailian else effective_size
    if effective_quality:
        fields[spec.quality_field] = effective_quality
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

    body = fields if interface == "openai_compat" else {"input": fields}
    requested = served.requested
    lifecycle = Lifecycle(
        status=requested.status,
        deprecated_at=requested.deprecated_at,
        shutdown_at=requested.shutdown_at,
        replacement=requested.replacement,
    )
    return ValidatedRequest(
        spec=spec,
        model_id=spec.id,
        operation=operation,
        prompt=prompt,
        n=n,
        size=effective_size,
        quality=effective_quality,
        upstream_body=body,
        interface=interface,
        requested_model_id=requested.id if served.replaced else "",
        lifecycle=lifecycle,
    )
