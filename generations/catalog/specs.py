"""How a model's parameter rules are described. The rules come from AIHubMix's page (NOTES.md)."""

from dataclasses import dataclass, field
from typing import Any

FAMILIES = frozenset({"openai_compat", "predictions", "async_task"})
OPERATIONS = frozenset({"generate", "edit"})
BOTH = frozenset({"generate", "edit"})
GENERATE = frozenset({"generate"})
EDIT = frozenset({"edit"})


@dataclass(frozen=True)
class CustomSize:
    """Free `WxH` sizes: each side within [min_side, max_side], and optionally an aspect, pixel and step limit."""

    min_side: int
    max_side: int
    max_aspect_ratio: float | None = None
    max_pixels: int | None = None
    multiple_of: int | None = None


@dataclass(frozen=True)
class SizeRule:
    """`presets` are exact values (`1024x1024`, `2K`, `16:9`); `custom` allows other `WxH` values too.

    `field` is where the size goes upstream (`size`, `aspectRatio`, `aspect_ratio`); None means the model picks
    and nothing is sent."""

    default: str
    presets: tuple[str, ...] = ()
    custom: CustomSize | None = None
    field: str | None = "size"


@dataclass(frozen=True)
class ParamSpec:
    """A vendor extra, given by clients as `params.<name>`.

    `upstream` is its path in the upstream body (inside `input` for predictions); `send_default` sends `default`
    even when the client gave nothing, where the upstream's own default would surprise (watermarks)."""

    name: str
    type: str  # boolean | integer | number | string
    description: str = ""
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    default: Any = None
    send_default: bool = False
    upstream: tuple[str, ...] = ()
    operations: frozenset[str] = BOTH

    @property
    def upstream_path(self) -> tuple[str, ...]:
        return self.upstream or (self.name,)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    alias: str
    family: str
    display_name: str
    operations: frozenset[str]
    sizes: SizeRule
    n_min: int = 1
    n_max: int = 1
    # "field": n goes in `n_field`; "none": only n=1, nothing sent; "sequential": Seedream's group mode.
    n_style: str = "field"
    n_field: str = "n"
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

    def extra(self, name: str) -> ParamSpec | None:
        return next((param for param in self.extras if param.name == name), None)
