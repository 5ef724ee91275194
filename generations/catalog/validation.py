"""Turn a client's request into the exact upstream body, or refuse it naming the field."""

import math
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from generations.catalog.entries import CATALOG
from generations.catalog.specs import ModelSpec, ParamSpec
from generations.providers import InputImage, ProviderCall
from project import errors

_DIMENSIONS = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")


class UnknownModel(errors.InvalidRequest):
    code = "unknown_model"
    message = "This model does not exist or is not available."

    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown or unavailable model {name!r}; GET /v1/models lists them.", param="model")


class InvalidGenerationRequest(errors.InvalidRequest):
    code = "invalid_parameter"


def _enabled(spec: ModelSpec) -> bool:
    disabled = set(getattr(settings, "DISABLED_MODELS", ()))
    return spec.id not in disabled and spec.alias not in disabled


def model_catalog() -> list[ModelSpec]:
    return [spec for spec in CATALOG if _enabled(spec)]


def _lookup(name: str, specs: Any) -> ModelSpec | None:
    wanted = (name or "").strip().lower()
    for spec in specs:
        if wanted in (spec.id.lower(), spec.alias.lower(), spec.upstream_model.lower()):
            return spec
    return None


def model_get(name: str) -> ModelSpec:
    """By id (`openai/gpt-image-1`) or alias (`gpt-image-1`), among enabled models."""
    spec = _lookup(name, model_catalog())
    if spec is None:
        raise UnknownModel(name)
    return spec


def model_id_resolve(name: str) -> str:
    """The catalog id for an id or alias, disabled models included: they are no longer offered but their past
    generations are still listed."""
    spec = _lookup(name, CATALOG)
    if spec is None:
        raise UnknownModel(name)
    return spec.id


def operation_check(*, model: str, operation: str) -> ModelSpec:
    """The checks that need nothing but the model and operation: run before input images are fetched or decoded,
    so a request the model cannot take never makes us download anything."""
    spec = model_get(model)
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

    def provider_call(self, images: list[InputImage], mask: InputImage | None = None) -> ProviderCall:
        return ProviderCall(
            model_id=self.model_id,
            family=self.spec.family,
            operation=self.operation,
            body=self.upstream_body,
            images=list(images),
            mask=mask,
        )


def provider_call_from_stored(
    *, model_id: str, operation: str, body: dict[str, Any], images: list[InputImage], mask: InputImage | None = None
) -> ProviderCall:
    """Rebuild the call of an accepted generation; a model disabled since then still runs what was accepted."""
    spec = _lookup(model_id, CATALOG)
    if spec is None:
        raise UnknownModel(model_id)
    return ProviderCall(
        model_id=spec.id, family=spec.family, operation=operation, body=body, images=list(images), mask=mask
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
    spec = operation_check(model=model, operation=operation)
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

    fields: dict[str, Any] = {"model": spec.upstream_model} if spec.family == "openai_compat" else {}
    fields["prompt"] = prompt
    fields.update(dict(spec.fixed))
    if spec.n_style == "field":
        fields[spec.n_field] = n
    elif spec.n_style == "sequential":
        fields["sequential_image_generation"] = "auto" if n > 1 else "disabled"
        if n > 1:
            fields["sequential_image_generation_options"] = {"max_images": n}
    if spec.sizes.field:
        fields[spec.sizes.field] = effective_size
    if effective_quality:
        fields[spec.quality_field] = effective_quality
    if negative_prompt:
        fields["negative_prompt"] = negative_prompt
    if seed is not None:
        _put(fields, spec.seed_path, seed)
    for param in spec.extras:
        if param.name in extras:
            _put(fields, param.upstream_path, extras[param.name])
        elif param.send_default and operation in param.operations:
            _put(fields, param.upstream_path, param.default)

    body = fields if spec.family == "openai_compat" else {"input": fields}
    return ValidatedRequest(
        spec=spec,
        model_id=spec.id,
        operation=operation,
        prompt=prompt,
        n=n,
        size=effective_size,
        quality=effective_quality,
        upstream_body=body,
    )
