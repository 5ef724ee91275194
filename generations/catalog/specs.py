"""(Over 400 lines: one subject, the strict reader of every rule a model can have.) How a model's parameter rules are
described, and how they are read from data (the shipped seed file and the
admin's catalog rows). The rules come from AIHubMix's page (../shared/aihubmix/image-api-docs.zh.txt, NOTES.md).

`spec_from_dict` is strict: an unknown key, a wrong type or an impossible rule is refused with a message naming
the field, so a typo in the admin is caught at save instead of answering tenants with 500s.
"""

import re
from dataclasses import dataclass, field, fields
from typing import Any

from generations.providers import gemini

# The request interfaces the provider adapters speak (generations/providers/).
FAMILIES = ("openai_compat", "predictions", "async_task", "gemini")
OPERATIONS = frozenset({"generate", "edit"})
BOTH = frozenset({"generate", "edit"})
PARAM_TYPES = ("boolean", "integer", "number", "string", "color_palette")
N_STYLES = ("field", "none", "sequential")
_PRESET = re.compile(r"^[A-Za-z0-9:.*x-]{1,32}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
ALIAS = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class CatalogRuleError(ValueError):
    """A catalog entry that cannot be served; `field` names the offending rule."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class CustomSize:
    """Free `WxH` sizes: each side within [min_side, max_side], and optionally an aspect, pixel and step limit."""

    min_side: int
    max_side: int
    max_aspect_ratio: float | None = None
    max_pixels: int | None = None
    multiple_of: int | None = None
    min_pixels: int | None = None


@dataclass(frozen=True)
class SizeRule:
    """`presets` are exact values (`1024x1024`, `2K`, `16:9`, `auto`); `custom` allows other `WxH` values too.

    `field` is where the size goes upstream (`size`, `aspectRatio`, `aspect_ratio`); None means the model picks
    and nothing is sent. `send_default`: send the default when the client gave no size (False for models whose
    page lists no size field, so the upstream's own default applies)."""

    default: str
    presets: tuple[str, ...] = ()
    custom: CustomSize | None = None
    field: str | None = "size"
    send_default: bool = True


@dataclass(frozen=True)
class ParamSpec:
    """A vendor extra, given by clients as `params.<name>`.

    `upstream` is its path in the upstream body (inside `input` for predictions); `send_default` sends `default`
    even when the client gave nothing, where the upstream's own default would surprise (watermarks).
    `interface`: the only request interface that takes it ('' = any). For a model reachable on both interfaces
    (Alibaba), a param of the other interface moves the request there; otherwise it is refused."""

    name: str
    type: str  # boolean | integer | number | string | color_palette
    description: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    default: Any = None
    send_default: bool = False
    upstream: tuple[str, ...] = ()
    operations: frozenset[str] = BOTH
    interface: str = ""

    @property
    def upstream_path(self) -> tuple[str, ...]:
        return self.upstream or (self.name,)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    alias: str
    # The interface used for generations; `edit_family` the one for edits (default: the same).
    family: str
    display_name: str
    operations: frozenset[str]
    sizes: SizeRule
    edit_family: str = ""
    n_min: int = 1
    n_max: int = 1
    # "field": n goes in `n_field`; "none": only n=1, nothing sent; "sequential": Seedream's group mode.
    n_style: str = "field"
    n_field: str = "n"
    # False: n is sent only when the client gave it (the page documents no count field for the model).
    n_send_default: bool = True
    qualities: tuple[str, ...] = ()
    default_quality: str = ""
    quality_field: str = "quality"
    seed_range: tuple[int, int] | None = None
    seed_path: tuple[str, ...] = ("seed",)
    negative_prompt_max_length: int | None = None
    prompt_max_length: int = 4000
    max_input_images: int = 0
    # Seedream counts reference images and generated images against one limit.
    max_images_in_and_out: int | None = None
    extras: tuple[ParamSpec, ...] = ()
    fixed: tuple[tuple[str, Any], ...] = ()
    description: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def vendor(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def upstream_model(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def n_default(self) -> int:
        return self.n_min

    @property
    def seed_min(self) -> int | None:
        return self.seed_range[0] if self.seed_range else None

    @property
    def seed_max(self) -> int | None:
        return self.seed_range[1] if self.seed_range else None

    def family_for(self, operation: str) -> str:
        return (self.edit_family or self.family) if operation == "edit" else self.family

    @property
    def interfaces(self) -> frozenset[str]:
        return frozenset(self.family_for(operation) for operation in self.operations)

    def extra(self, name: str) -> ParamSpec | None:
        return next((param for param in self.extras if param.name == name), None)


# --- Reading rules from data ------------------------------------------------------------------------------


def _require(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise CatalogRuleError(f"{where}{key}", "is required.")
    return _typed(data[key], kind, f"{where}{key}")


def _typed(value: Any, kind: type | tuple[type, ...], name: str, *, allow_none: bool = False) -> Any:
    if value is None and allow_none:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise CatalogRuleError(name, f"must be {_kind_name(kinds)}, not a boolean.")
    if not isinstance(value, kinds):
        raise CatalogRuleError(name, f"must be {_kind_name(kinds)}.")
    return value


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list",
             dict: "an object"}
    return " or ".join(names.get(kind, kind.__name__) for kind in kinds)


def _unknown_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CatalogRuleError(f"{where}{unknown[0]}", f"is not a known rule (known: {', '.join(sorted(allowed))}).")


def _string_list(value: Any, name: str) -> tuple[str, ...]:
    _typed(value, list, name)
    for index, item in enumerate(value):
        _typed(item, str, f"{name}[{index}]")
    return tuple(value)


def _path(value: Any, name: str) -> tuple[str, ...]:
    path = _string_list(value, name)
    if any(not part for part in path):
        raise CatalogRuleError(name, "must not contain empty names.")
    return path


def _sizes_from(data: Any) -> SizeRule:
    where = "sizes."
    _typed(data, dict, "sizes")
    _unknown_keys(data, {"default", "presets", "custom", "field", "send_default"}, where)
    default = _require(data, "default", str, where)
    presets = _string_list(data.get("presets", []), "sizes.presets")
    for index, preset in enumerate(presets):
        if not _PRESET.match(preset):
            raise CatalogRuleError(f"sizes.presets[{index}]", f"{preset!r} is not a size such as 1024x1024, 2K or 16:9.")
    if len(set(preset.lower() for preset in presets)) != len(presets):
        raise CatalogRuleError("sizes.presets", "lists a size twice.")
    custom = None
    if data.get("custom") is not None:
        raw = _typed(data["custom"], dict, "sizes.custom")
        _unknown_keys(raw, {f.name for f in fields(CustomSize)}, "sizes.custom.")
        min_side = _require(raw, "min_side", int, "sizes.custom.")
        max_side = _require(raw, "max_side", int, "sizes.custom.")
        if not 1 <= min_side <= max_side <= 16384:
            raise CatalogRuleError("sizes.custom", "needs 1 <= min_side <= max_side <= 16384.")
        aspect = _typed(raw.get("max_aspect_ratio"), (int, float), "sizes.custom.max_aspect_ratio", allow_none=True)
        pixels = _typed(raw.get("max_pixels"), int, "sizes.custom.max_pixels", allow_none=True)
        step = _typed(raw.get("multiple_of"), int, "sizes.custom.multiple_of", allow_none=True)
        least = _typed(raw.get("min_pixels"), int, "sizes.custom.min_pixels", allow_none=True)
        if aspect is not None and aspect < 1:
            raise CatalogRuleError("sizes.custom.max_aspect_ratio", "must be at least 1.")
        if pixels is not None and pixels < min_side * min_side:
            raise CatalogRuleError("sizes.custom.max_pixels", "is below the smallest allowed image.")
        if step is not None and step < 1:
            raise CatalogRuleError("sizes.custom.multiple_of", "must be at least 1.")
        if least is not None and (least > max_side * max_side or (pixels is not None and least > pixels)):
            raise CatalogRuleError("sizes.custom.min_pixels", "is above the largest allowed image.")
        custom = CustomSize(
            min_side, max_side, float(aspect) if aspect is not None else None, pixels, step, least
        )
    if not presets and custom is None:
        raise CatalogRuleError("sizes", "needs presets, a custom rule, or both.")
    upstream_field = _typed(data.get("field", "size"), str, "sizes.field", allow_none=True)
    send_default = _typed(data.get("send_default", True), bool, "sizes.send_default")
    rule = SizeRule(default, presets, custom, upstream_field or None, send_default)
    if not size_allowed(rule, default):
        raise CatalogRuleError("sizes.default", f"{default!r} is not allowed by the model's own size rules.")
    return rule


def size_allowed(rule: SizeRule, size: str) -> bool:
    if size.lower() in {preset.lower() for preset in rule.presets}:
        return True
    match = re.match(r"^(\d{1,5})[xX*](\d{1,5})$", size)
    custom = rule.custom
    if custom is None or match is None:
        return False
    width, height = int(match.group(1)), int(match.group(2))
    return (
        custom.min_side <= width <= custom.max_side
        and custom.min_side <= height <= custom.max_side
        and not (custom.max_aspect_ratio and max(width, height) / min(width, height) > custom.max_aspect_ratio)
        and not (custom.max_pixels and width * height > custom.max_pixels)
        and not (custom.min_pixels and width * height < custom.min_pixels)
        and not (custom.multiple_of and (width % custom.multiple_of or height % custom.multiple_of))
    )


def _param_from(data: Any, index: int) -> ParamSpec:
    where = f"extras[{index}]."
    _typed(data, dict, f"extras[{index}]")
    _unknown_keys(data, {f.name for f in fields(ParamSpec)}, where)
    name = _require(data, "name", str, where)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,63}", name, flags=re.IGNORECASE):
        raise CatalogRuleError(f"{where}name", f"{name!r} is not a parameter name.")
    kind = _require(data, "type", str, where)
    if kind not in PARAM_TYPES:
        raise CatalogRuleError(f"{where}type", f"must be one of {', '.join(PARAM_TYPES)}.")
    choices = tuple(_typed(data.get("choices", []), list, f"{where}choices"))
    minimum = _typed(data.get("minimum"), (int, float), f"{where}minimum", allow_none=True)
    maximum = _typed(data.get("maximum"), (int, float), f"{where}maximum", allow_none=True)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise CatalogRuleError(f"{where}minimum", "is above maximum.")
    operations = frozenset(_string_list(data.get("operations", sorted(BOTH)), f"{where}operations"))
    if not operations or not operations <= OPERATIONS:
        raise CatalogRuleError(f"{where}operations", "must be a non-empty list of generate, edit.")
    interface = _typed(data.get("interface", ""), str, f"{where}interface")
    if interface and interface not in FAMILIES:
        raise CatalogRuleError(f"{where}interface", f"must be empty or one of {', '.join(FAMILIES)}.")
    param = ParamSpec(
        name=name,
        type=kind,
        description=_typed(data.get("description", ""), str, f"{where}description"),
        choices=choices,
        minimum=minimum,
        maximum=maximum,
        max_length=_typed(data.get("max_length"), int, f"{where}max_length", allow_none=True),
        default=data.get("default"),
        send_default=_typed(data.get("send_default", False), bool, f"{where}send_default"),
        upstream=_path(data.get("upstream", []), f"{where}upstream"),
        operations=operations,
        interface=interface,
    )
    if param.send_default and param.default is None:
        raise CatalogRuleError(f"{where}send_default", "needs a default to send.")
    if param.default is not None and param.choices and param.default not in param.choices:
        raise CatalogRuleError(f"{where}default", "is not one of the choices.")
    return param


_SPEC_KEYS = {f.name for f in fields(ModelSpec)}


def model_id_check(model_id: str) -> str:
    if not _MODEL_ID.match(model_id):
        raise CatalogRuleError("id", f"{model_id!r} must be '<vendor>/<model>' as in the upstream path.")
    return model_id


def alias_check(alias: str) -> str:
    if not ALIAS.fullmatch(alias):
        raise CatalogRuleError("alias", f"{alias!r} may hold only letters, digits, '.', '_' and '-'.")
    return alias


def spec_from_dict(data: Any) -> ModelSpec:
    """Read one catalog entry, refusing anything that could not be served (see module docstring)."""
    _typed(data, dict, "model")
    _unknown_keys(data, _SPEC_KEYS, "")
    model_id = model_id_check(_require(data, "id", str, ""))
    alias = alias_check(_require(data, "alias", str, ""))
    family = _require(data, "family", str, "")
    edit_family = _typed(data.get("edit_family", ""), str, "edit_family")
    for name, value in (("family", family), ("edit_family", edit_family)):
        if (value or name == "family") and value not in FAMILIES:  # edit_family may be empty (= family)
            raise CatalogRuleError(name, f"must be one of {', '.join(FAMILIES)}.")
    operations = frozenset(_string_list(_require(data, "operations", list, ""), "operations"))
    if not operations or not operations <= OPERATIONS:
        raise CatalogRuleError("operations", "must be a non-empty list of generate, edit.")
    n_min = _typed(data.get("n_min", 1), int, "n_min")
    n_max = _typed(data.get("n_max", 1), int, "n_max")
    if not 1 <= n_min <= n_max <= 100:
        raise CatalogRuleError("n_max", "needs 1 <= n_min <= n_max <= 100.")
    n_style = _typed(data.get("n_style", "field"), str, "n_style")
    if n_style not in N_STYLES:
        raise CatalogRuleError("n_style", f"must be one of {', '.join(N_STYLES)}.")
    if n_style == "none" and n_max != 1:
        raise CatalogRuleError("n_max", "must be 1 when n_style is 'none' (nothing tells the upstream n).")
    qualities = _string_list(data.get("qualities", []), "qualities")
    default_quality = _typed(data.get("default_quality", ""), str, "default_quality")
    if qualities and default_quality not in qualities:
        raise CatalogRuleError("default_quality", "must be one of the qualities.")
    if not qualities and default_quality:
        raise CatalogRuleError("default_quality", "must be empty when the model has no qualities.")
    seed_range = data.get("seed_range")
    if seed_range is not None:
        _typed(seed_range, list, "seed_range")
        if len(seed_range) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in seed_range):
            raise CatalogRuleError("seed_range", "must be [minimum, maximum] integers.")
        if seed_range[0] > seed_range[1]:
            raise CatalogRuleError("seed_range", "minimum is above maximum.")
        seed_range = (seed_range[0], seed_range[1])
    max_input_images = _typed(data.get("max_input_images", 0), int, "max_input_images")
    if "edit" in operations and max_input_images < 1:
        raise CatalogRuleError("max_input_images", "must be at least 1 for a model that edits.")
    if "edit" not in operations and max_input_images:
        raise CatalogRuleError("max_input_images", "must be 0 for a model that does not edit.")
    prompt_max_length = _typed(data.get("prompt_max_length", 4000), int, "prompt_max_length")
    if prompt_max_length < 1:
        raise CatalogRuleError("prompt_max_length", "must be at least 1.")
    extras = tuple(_param_from(item, index) for index, item in enumerate(_typed(data.get("extras", []), list, "extras")))
    names = [param.name for param in extras]
    if len(set(names)) != len(names):
        raise CatalogRuleError("extras", "names a parameter twice.")
    reserved = {"prompt", "model", "n", "size", "quality", "seed", "negative_prompt"}
    if reserved & set(names):
        raise CatalogRuleError("extras", f"{min(reserved & set(names))!r} is a top-level request field.")
    fixed = _typed(data.get("fixed", {}), dict, "fixed")
    spec = ModelSpec(
        id=model_id,
        alias=alias,
        family=family,
        edit_family=edit_family,
        display_name=_require(data, "display_name", str, ""),
        operations=operations,
        sizes=_sizes_from(_require(data, "sizes", dict, "")),
        n_min=n_min,
        n_max=n_max,
        n_style=n_style,
        n_field=_typed(data.get("n_field", "n"), str, "n_field"),
        n_send_default=_typed(data.get("n_send_default", True), bool, "n_send_default"),
        qualities=qualities,
        default_quality=default_quality,
        quality_field=_typed(data.get("quality_field", "quality"), str, "quality_field"),
        seed_range=seed_range,
        seed_path=_path(data.get("seed_path", ["seed"]), "seed_path"),
        negative_prompt_max_length=_typed(
            data.get("negative_prompt_max_length"), int, "negative_prompt_max_length", allow_none=True
        ),
        prompt_max_length=prompt_max_length,
        max_input_images=max_input_images,
        max_images_in_and_out=_typed(data.get("max_images_in_and_out"), int, "max_images_in_and_out", allow_none=True),
        extras=extras,
        fixed=tuple(fixed.items()),
        description=_typed(data.get("description", ""), str, "description"),
        notes=_string_list(data.get("notes", []), "notes"),
    )
    for param in extras:
        if param.interface and param.interface not in spec.interfaces:
            raise CatalogRuleError("extras", f"{param.name} needs the {param.interface} interface, which the model does not use.")
    if "async_task" in spec.interfaces and spec.n_style != "none":
        raise CatalogRuleError("n_style", "an async-task model makes one image per task: use 'none'.")
    if "gemini" in spec.interfaces:
        _gemini_rules_check(spec)
    return spec


def _gemini_rules_check(spec: ModelSpec) -> None:
    """generateContent makes one image per call and takes sizes only as the presets its adapter can map."""
    if spec.n_style != "none":
        raise CatalogRuleError("n_style", "a Gemini model makes one image per call: use 'none'.")
    if spec.sizes.custom is not None or spec.sizes.field != "size":
        raise CatalogRuleError("sizes", "a Gemini model takes presets only, sent as field 'size'.")
    for index, preset in enumerate(spec.sizes.presets):
        try:
            gemini.image_config_from_size(preset)
        except ValueError as exc:
            raise CatalogRuleError(f"sizes.presets[{index}]", str(exc)) from None
