"""Every model on AIHubMix's image page, with its rules (see ../shared/aihubmix/NOTES.md)."""

from generations.catalog.specs import BOTH, EDIT, GENERATE, CustomSize, ModelSpec, ParamSpec, SizeRule

SEED_31 = (0, 2_147_483_647)
_UPSTREAM_URLS = (("response_format", "url"),)


def _watermark(*, send_default: bool) -> ParamSpec:
    return ParamSpec(
        "watermark",
        "boolean",
        "Add the vendor's watermark to the image.",
        default=False,
        send_default=send_default,
    )


def _openai(model: str, name: str) -> ModelSpec:
    return ModelSpec(
        id=f"openai/{model}",
        alias=model,
        family="openai_compat",
        display_name=name,
        operations=BOTH,
        sizes=SizeRule(default="1024x1024", presets=("1024x1024", "1024x1536", "1536x1024")),
        n_max=10,
        qualities=("low", "medium", "high"),
        # OpenAI's own default is "auto", which has no fixed price.
        default_quality="medium",
        prompt_max_length=32_000,
        max_input_images=16,
        extras=(
            ParamSpec(
                "background", "string", "Background of the image.", choices=("auto", "transparent", "opaque")
            ),
            ParamSpec("output_format", "string", "Encoding of the image.", choices=("png", "jpeg", "webp")),
            ParamSpec(
                "moderation",
                "string",
                "Strictness of the upstream's content filter.",
                choices=("auto", "low"),
                operations=GENERATE,
            ),
            ParamSpec(
                "input_fidelity",
                "string",
                "How closely the edit keeps the input image.",
                choices=("high", "low"),
                operations=EDIT,
            ),
        ),
        description="OpenAI GPT Image. Returns base64 images; accepts up to 16 reference images for edits.",
    )


def _imagen(model: str, name: str, *, n_max: int) -> ModelSpec:
    return ModelSpec(
        id=f"google/{model}",
        alias=model,
        family="predictions",
        display_name=name,
        operations=GENERATE,
        sizes=SizeRule(default="1:1", presets=("1:1", "3:4", "4:3", "9:16", "16:9"), field="aspectRatio"),
        n_max=n_max,
        # The upstream ignores `n` and makes 4 images unless numberOfImages says otherwise: always send it.
        n_field="numberOfImages",
        prompt_max_length=1_900,
        description="Google Imagen 4. The size is an aspect ratio. English prompts only.",
    )


def _alibaba_common(*, prompt_extend: bool, thinking_mode: bool) -> tuple[ParamSpec, ...]:
    extras = [_watermark(send_default=False)]
    if prompt_extend:
        extras.append(
            ParamSpec("prompt_extend", "boolean", "Let the upstream rewrite the prompt.", default=True)
        )
    if thinking_mode:
        extras.append(
            ParamSpec("thinking_mode", "boolean", "Slower, higher-quality generation.", default=True)
        )
    return tuple(extras)


def _wan27(model: str, name: str, *, presets: tuple[str, ...], max_side: int) -> ModelSpec:
    return ModelSpec(
        id=f"bailian/{model}",
        alias=model,
        family="openai_compat",
        display_name=name,
        operations=BOTH,
        sizes=SizeRule(
            default="2K",
            presets=presets,
            custom=CustomSize(min_side=768, max_side=max_side, max_aspect_ratio=8),
        ),
        seed_range=SEED_31,
        prompt_max_length=800,
        max_input_images=3,
        extras=_alibaba_common(prompt_extend=False, thinking_mode=True),
        fixed=_UPSTREAM_URLS,
        description="Alibaba Wan 2.7. Put what must not appear in the prompt itself (no negative prompt).",
    )


def _qwen(
    model: str, name: str, *, operations: frozenset[str], sizes: SizeRule, n_max: int, images: int
) -> ModelSpec:
    return ModelSpec(
        id=f"bailian/{model}",
        alias=model,
        family="openai_compat",
        display_name=name,
        operations=operations,
        sizes=sizes,
        n_max=n_max,
        seed_range=SEED_31,
        negative_prompt_max_length=500,
        prompt_max_length=800,
        max_input_images=images,
        extras=_alibaba_common(prompt_extend=True, thinking_mode=False),
        fixed=_UPSTREAM_URLS,
        description="Alibaba Qwen-Image.",
    )


_QWEN_FIXED = ("1664x928", "1472x1104", "1328x1328", "1104x1472", "928x1664")


def _seedream(model: str, name: str, *, presets: tuple[str, ...]) -> ModelSpec:
    return ModelSpec(
        id=f"doubao/{model}",
        alias=model,
        family="predictions",
        display_name=name,
        operations=BOTH,
        sizes=SizeRule(default="2K", presets=presets),
        n_max=15,
        n_style="sequential",
        seed_range=(-1, 2_147_483_647),
        max_input_images=14,
        max_images_in_and_out=15,
        # Seedream watermarks unless told not to.
        extras=(_watermark(send_default=True),),
        fixed=(("stream", False), ("response_format", "url")),
        description="ByteDance Seedream. n > 1 uses group mode; reference images + n may not exceed 15.",
    )


_FLUX_OUTPUT_FORMAT = ParamSpec("output_format", "string", "Encoding of the image.", choices=("jpeg", "png"))
_FLUX_UPSAMPLING = ParamSpec(
    "prompt_upsampling", "boolean", "Let the upstream enrich the prompt.", default=False
)
_FLUX_RATIOS = ("21:9", "16:9", "4:3", "3:2", "1:1", "2:3", "3:4", "9:16", "9:21")


def _safety(maximum: int, *, upstream: tuple[str, ...] = ()) -> ParamSpec:
    return ParamSpec(
        "safety_tolerance",
        "integer",
        "Moderation leniency: 0 is strictest.",
        minimum=0,
        maximum=maximum,
        default=2,
        upstream=upstream,
    )


def _flux_async(
    model: str, name: str, *, max_images: int, safety_max: int, extras: tuple[ParamSpec, ...] = ()
) -> ModelSpec:
    return ModelSpec(
        id=f"bfl/{model}",
        alias=model,
        family="async_task",
        display_name=name,
        operations=BOTH,
        sizes=SizeRule(default="1:1", presets=_FLUX_RATIOS, field="aspect_ratio"),
        n_style="none",
        seed_range=SEED_31,
        max_input_images=max_images,
        extras=(_safety(safety_max), _FLUX_OUTPUT_FORMAT, _FLUX_UPSAMPLING, *extras),
        description="Black Forest Labs FLUX, run as an upstream task. The size is an aspect ratio.",
    )


CATALOG: tuple[ModelSpec, ...] = (
    _openai("gpt-image-1", "GPT Image 1"),
    _openai("gpt-image-1.5", "GPT Image 1.5"),
    _imagen("imagen-4.0-generate-001", "Imagen 4", n_max=4),
    _imagen("imagen-4.0-ultra-generate-001", "Imagen 4 Ultra", n_max=1),
    _imagen("imagen-4.0-fast-generate-001", "Imagen 4 Fast", n_max=4),
    _wan27("wan2.7-image-pro", "Wan 2.7 Image Pro", presets=("1K", "2K", "4K"), max_side=4096),
    _wan27("wan2.7-image", "Wan 2.7 Image", presets=("1K", "2K"), max_side=2048),
    ModelSpec(
        id="bailian/wan2.6-t2i",
        alias="wan2.6-t2i",
        family="openai_compat",
        display_name="Wan 2.6 text-to-image",
        operations=GENERATE,
        sizes=SizeRule(
            default="1280x1280", custom=CustomSize(min_side=1280, max_side=1440, max_aspect_ratio=4)
        ),
        n_max=4,
        seed_range=SEED_31,
        negative_prompt_max_length=500,
        prompt_max_length=800,
        extras=_alibaba_common(prompt_extend=True, thinking_mode=False),
        fixed=_UPSTREAM_URLS,
        description="Alibaba Wan 2.6 text-to-image.",
    ),
    *(
        _qwen(
            model,
            name,
            operations=GENERATE,
            n_max=6,
            images=0,
            sizes=SizeRule(
                default="2048x2048", custom=CustomSize(min_side=512, max_side=2048, max_pixels=2048 * 2048)
            ),
        )
        for model, name in (
            ("qwen-image-2.0-pro", "Qwen-Image 2.0 Pro"),
            ("qwen-image-2.0", "Qwen-Image 2.0"),
        )
    ),
    *(
        _qwen(
            model,
            name,
            operations=GENERATE,
            n_max=6,
            images=0,
            sizes=SizeRule(default="1664x928", presets=_QWEN_FIXED),
        )
        for model, name in (("qwen-image-max", "Qwen-Image Max"), ("qwen-image-plus", "Qwen-Image Plus"))
    ),
    _qwen(
        "qwen-image-edit",
        "Qwen-Image Edit",
        operations=EDIT,
        n_max=1,
        images=1,
        sizes=SizeRule(default="auto", presets=("auto",), field=None),
    ),
    *(
        _qwen(
            model,
            name,
            operations=EDIT,
            n_max=6,
            images=3,
            sizes=SizeRule(default="1024x1024", custom=CustomSize(min_side=512, max_side=2048)),
        )
        for model, name in (
            ("qwen-image-edit-plus", "Qwen-Image Edit Plus"),
            ("qwen-image-edit-max", "Qwen-Image Edit Max"),
        )
    ),
    ModelSpec(
        id="openai/glm-image",
        alias="glm-image",
        family="predictions",
        display_name="GLM-Image",
        operations=GENERATE,
        sizes=SizeRule(
            default="1280x1280",
            presets=("1280x1280", "1568x1056", "1056x1568", "1472x1088", "1088x1472", "1728x960", "960x1728"),
            custom=CustomSize(min_side=1024, max_side=2048, max_pixels=2**22, multiple_of=32),
        ),
        n_style="none",
        qualities=("hd", "standard"),
        default_quality="hd",
        description="Zhipu GLM-Image. hd takes about 20 s, standard 5-10 s.",
    ),
    _seedream("doubao-seedream-4-0", "Seedream 4.0", presets=("1K", "2K", "4K")),
    _seedream("doubao-seedream-4-5", "Seedream 4.5", presets=("2K", "4K")),
    ModelSpec(
        id="qianfan/irag-1.0",
        alias="irag-1.0",
        family="predictions",
        display_name="ERNIE iRAG 1.0",
        operations=BOTH,
        sizes=SizeRule(
            default="1024x1024",
            presets=("1024x1024", "768x768", "768x1024", "1024x768", "576x1024", "1024x576"),
        ),
        n_max=4,
        max_input_images=1,
        extras=(
            ParamSpec("guidance", "number", "Prompt adherence.", minimum=1, maximum=20, default=7.5),
            _watermark(send_default=True),
        ),
        description="Baidu ERNIE iRAG. An edit takes one reference image.",
    ),
    ModelSpec(
        id="ideogram/V3",
        alias="ideogram-v3",
        family="predictions",
        display_name="Ideogram V3",
        operations=GENERATE,
        sizes=SizeRule(
            default="1x1",
            presets=(
                "1x1",
                "16x9",
                "9x16",
                "4x3",
                "3x4",
                "3x2",
                "2x3",
                "2x1",
                "1x2",
                "3x1",
                "1x3",
                "16x10",
                "10x16",
                "5x4",
                "4x5",
            ),
            field="aspect_ratio",
        ),
        n_max=8,
        n_field="num_images",
        qualities=("TURBO", "DEFAULT", "QUALITY"),
        default_quality="DEFAULT",
        quality_field="rendering_speed",
        seed_range=SEED_31,
        negative_prompt_max_length=2_000,
        extras=(
            ParamSpec(
                "magic_prompt",
                "string",
                "Let the upstream rewrite the prompt.",
                choices=("AUTO", "ON", "OFF"),
            ),
            ParamSpec(
                "style_type", "string", "Overall style.", choices=("AUTO", "GENERAL", "REALISTIC", "DESIGN")
            ),
        ),
        description="Ideogram V3. The size is an aspect ratio such as 16x9; the quality is the rendering speed.",
    ),
    ModelSpec(
        id="bfl/FLUX-1.1-pro",
        alias="flux-1.1-pro",
        family="predictions",
        display_name="FLUX 1.1 [pro]",
        operations=GENERATE,
        sizes=SizeRule(default="1024x1024", custom=CustomSize(min_side=256, max_side=1440, multiple_of=32)),
        n_style="none",
        seed_range=SEED_31,
        seed_path=("extra_body", "seed"),
        extras=(
            _FLUX_OUTPUT_FORMAT,
            ParamSpec(
                "prompt_upsampling",
                "boolean",
                "Let the upstream enrich the prompt.",
                default=False,
                upstream=("extra_body", "prompt_upsampling"),
            ),
            _safety(6, upstream=("extra_body", "safety_tolerance")),
        ),
        description="Black Forest Labs FLUX 1.1 [pro], synchronous.",
    ),
    _flux_async("flux-kontext-max", "FLUX.1 Kontext [max]", max_images=1, safety_max=6),
    _flux_async("flux-kontext-pro", "FLUX.1 Kontext [pro]", max_images=1, safety_max=6),
    _flux_async("flux-2-pro", "FLUX.2 [pro]", max_images=4, safety_max=5),
    _flux_async(
        "flux-2-flex",
        "FLUX.2 [flex]",
        max_images=4,
        safety_max=5,
        extras=(
            ParamSpec("steps", "integer", "Sampling steps.", minimum=1, maximum=50),
            ParamSpec("guidance", "number", "Prompt adherence.", minimum=1.5, maximum=10),
        ),
    ),
)
