"""Checking a client's request against the catalog: the model and operation, prompt, input images, n, size,
quality, seed, negative prompt and every vendor extra, refused naming the field (400, one stable code each).
Every refusal about a request's content is here; an accepted request gets its upstream body from
`upstream_body.py`."""

import math
import re
from dataclasses import dataclass
from typing import Any

from generations.catalog.lookup import ServedModel, model_serve
from generations.catalog.specs import ModelSpec, ParamSpec, size_allowed
from generations.catalog.upstream_body import upstream_body_build
from project import errors

_DIMENSIONS = re.compile(r"^\s*(\d{1,5})\s*[xX*×]\s*(\d{1,5})\s*$")
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_RATIO = re.compile(r"^\d{1,3}(\.\d{1,2})?%$")


class InvalidGenerationRequest(errors.InvalidRequest):
    code = "invalid_parameter"


@dataclass(frozen=True)
class ValidatedRequest:
    model_id: str
    operation: str
    n: int
    size: str
    quality: str
    upstream_body: dict[str, Any]
    # The interface the body is built for (openai_compat, predictions, async_task or gemini).
    interface: str
    # The model the client named when it differs from model_id (a retired model served by its replacement).
    requested_model_id: str = ""


def _operation_served(*, model: str, operation: str) -> ServedModel:
    served = model_serve(model)
    spec = served.served.spec
    if operation not in spec.operations:
        supported = " and ".join(sorted(spec.operations))
        raise _refuse("operation_not_supported", "operation", f"{spec.alias} supports {supported} only.")
    return served


def operation_check(*, model: str, operation: str) -> ModelSpec:
    """The checks that need nothing but the model and operation: run before input images are fetched or decoded,
    so a request the model cannot take never makes us download anything."""
    return _operation_served(model=model, operation=operation).served.spec


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
        if custom.min_pixels:
            text += f", at least {custom.min_pixels} pixels"
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
    if not size_allowed(spec.sizes, normalised):
        raise _refuse(
            "unsupported_size",
            "size",
            f"{spec.alias} does not support size {size!r}: use {size_rule_text(spec)}.",
        )
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
    """The operation's interface, unless a param only the native predictions interface takes moves it there.
    A param no interface of the request can carry is refused here, so the body is built for what this returns."""
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


# Where the upstream streams partial images: OpenAI's GPT image models on OpenAI's own routes (`/images/generations`,
# `/images/edits` with `stream` + `partial_images`), which AIHubMix relays for them (NOTES.md). No other interface
# does: predictions and async tasks answer once, and Gemini's `:streamGenerateContent` answers chunks of the final
# answer, not partial images. With n > 1 OpenAI's partial events do not say which image they belong to, so only
# n = 1 streams.
PARTIAL_IMAGES_MAX = 3


def partial_images_streamable(*, spec: ModelSpec, interface: str, n: int) -> bool:
    """Whether a request can be sent in streaming mode to have partial images relayed (else: only the completed
    image, as OpenAI allows). `interface` is what the request would use otherwise: a param that moved it to the
    predictions interface keeps it there."""
    is_gpt_image = spec.vendor == "openai" and spec.upstream_model.startswith("gpt-image")
    reachable = interface == "openai_compat" or (interface == "predictions" and "openai_compat" in spec.interfaces)
    return is_gpt_image and reachable and n == 1 and not any(
        param.interface == "predictions" for param in spec.extras
    )


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
    partial_images: int = 0,
) -> ValidatedRequest:
    """`partial_images` (0-3): how many partial images the client would like relayed while it streams; honoured
    only where the upstream streams them (`partial_images_streamable`), otherwise the request is what it would be
    without (same interface, body and price)."""
    served = _operation_served(model=model, operation=operation)
    spec = served.served.spec
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
    if not isinstance(partial_images, int) or isinstance(partial_images, bool) or not (
        0 <= partial_images <= PARTIAL_IMAGES_MAX
    ):
        raise _refuse("invalid_parameter", "partial_images", f"partial_images must be between 0 and {PARTIAL_IMAGES_MAX}.")
    streamed = partial_images > 0 and partial_images_streamable(spec=spec, interface=interface, n=n)
    if streamed:
        interface = "openai_compat"  # the route that streams; same model, price and answer

    body = upstream_body_build(
        spec=spec,
        interface=interface,
        operation=operation,
        prompt=prompt,
        n=n,
        n_given=n_given,
        size=effective_size,
        size_given=size_given,
        quality=effective_quality,
        negative_prompt=negative_prompt,
        seed=seed,
        extras=extras,
    )
    if streamed:
        # OpenAI's streaming fields, kept in the stored body: the forwarder reads the answer as events when
        # `stream` is set (generations/providers/openai_compat.py).
        body.update(stream=True, partial_images=partial_images)
    return ValidatedRequest(
        model_id=spec.id,
        operation=operation,
        n=n,
        size=effective_size,
        quality=effective_quality,
        upstream_body=body,
        interface=interface,
        requested_model_id=served.requested.id if served.replaced else "",
    )
