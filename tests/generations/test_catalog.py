"""The catalog refuses bad requests naming the field, and turns good ones into the exact upstream body."""

import pytest

from generations.catalog.lookup import UnknownModel, catalog_list, model_get
from generations.catalog.registry import catalog_seed_specs
from generations.catalog.specs import ModelSpec
from generations.catalog.upstream_body import provider_call_from_stored
from generations.catalog.validation import InvalidGenerationRequest, generation_request_validate
from project.api.errors import domain_error_status

pytestmark = pytest.mark.django_db
CATALOG = catalog_seed_specs(retired=False)  # a retired model answers 410 (test_catalog_lifecycle)


def validate(spec: ModelSpec | str, **overrides):
    spec = spec if isinstance(spec, ModelSpec) else model_get(spec)
    operation = "generate" if "generate" in spec.operations else "edit"
    fields = {
        "model": spec.id,
        "operation": operation,
        "prompt": "a lighthouse",
        "n": None,
        "size": None,
        "quality": None,
        "negative_prompt": None,
        "seed": None,
        "params": {},
        "input_image_count": 1 if operation == "edit" else 0,
    }
    fields.update(overrides)
    return generation_request_validate(**fields)


def refusal(spec: ModelSpec | str, **overrides) -> tuple[str, str]:
    with pytest.raises(InvalidGenerationRequest) as caught:
        validate(spec, **overrides)
    assert domain_error_status(caught.value) == 400
    return caught.value.code, caught.value.param


MODELS = pytest.mark.parametrize("spec", CATALOG, ids=[spec.alias for spec in CATALOG])


@MODELS
def test_every_model_accepts_a_request_with_its_defaults(spec: ModelSpec) -> None:
    size = spec.sizes.presets[-1] if spec.sizes.presets else None
    request = validate(spec, n=spec.n_max, size=size)
    assert (request.model_id, request.n) == (spec.id, spec.n_max)
    assert request.size == (size or spec.sizes.default)
    assert request.quality == spec.default_quality


@MODELS
def test_every_model_refuses_a_bad_size_naming_size(spec: ModelSpec) -> None:
    assert refusal(spec, size="13x7") == ("unsupported_size", "size")


@MODELS
def test_every_model_refuses_n_out_of_range_naming_n(spec: ModelSpec) -> None:
    assert refusal(spec, n=spec.n_max + 1) == ("invalid_n", "n")
    assert refusal(spec, n=0) == ("invalid_n", "n")


@MODELS
def test_every_model_refuses_an_unknown_quality_naming_quality(spec: ModelSpec) -> None:
    assert refusal(spec, quality="ultra") == ("unsupported_quality", "quality")


@MODELS
def test_every_model_refuses_an_unknown_extra_naming_it(spec: ModelSpec) -> None:
    assert refusal(spec, params={"bogus": 1}) == ("unknown_parameter", "params.bogus")


@pytest.mark.parametrize("spec", [spec for spec in CATALOG if spec.extras], ids=lambda spec: spec.alias)
def test_every_extra_is_type_checked(spec: ModelSpec) -> None:
    operation = "generate" if "generate" in spec.operations else "edit"
    param = next(param for param in spec.extras if operation in param.operations)
    wrong = "yes" if param.type != "string" else 12
    assert refusal(spec, params={param.name: wrong}) == ("invalid_parameter", f"params.{param.name}")


@pytest.mark.parametrize(
    ("model", "size", "accepted"),
    [
        ("wan2.7-image-pro", "4096x768", True),
        ("wan2.7-image-pro", "4096x512", False),  # a side under 768
        ("wan2.7-image", "4K", False),
        ("wan2.6-t2i", "1440*1280", True),
        ("wan2.6-t2i", "1024x1024", False),
        ("qwen-image-2.0", "2048x2048", True),
        ("qwen-image-max", "1328x1328", True),
        ("qwen-image-max", "1024x1024", False),
        ("glm-image", "1024x2048", True),
        ("glm-image", "1040x1040", False),  # not divisible by 32
        ("glm-image", "2048x2048", True),  # exactly 2^22 pixels
        ("glm-image", "2080x1024", False),
        ("doubao-seedream-4-5", "1K", False),
        ("doubao-seedream-4-5", "4k", True),
        ("gemini-3.1-flash-image", "3:4", True),
        ("flux-1.1-pro", "1440x256", True),
        ("flux-1.1-pro", "1500x256", False),
    ],
)
def test_size_rules_follow_the_provider_page(model: str, size: str, accepted: bool) -> None:
    if accepted:
        assert validate(model, size=size).size.lower() == size.replace("*", "x").lower()
    else:
        assert refusal(model, size=size) == ("unsupported_size", "size")


def test_sizes_are_normalised_for_pricing() -> None:
    assert validate("wan2.6-t2i", size=" 1440*1280 ").size == "1440x1280"
    assert validate("doubao-seedream-4-0", size="2k").size == "2K"
    assert validate("gpt-image-2").size == "1024x1024"
    assert validate("glm-image").quality == "hd"
    assert validate("gemini-3.1-flash-image").quality == ""


def test_surprising_upstream_defaults_are_made_explicit() -> None:
    assert validate("doubao-seedream-4-0").upstream_body["input"]["watermark"] is False
    assert (
        validate("doubao-seedream-4-0", params={"watermark": True}).upstream_body["input"]["watermark"]
        is True
    )


def test_seedream_group_mode_carries_n_and_counts_reference_images() -> None:
    body = validate("doubao-seedream-4-0", n=4).upstream_body["input"]
    assert body["sequential_image_generation"] == "auto"
    assert body["sequential_image_generation_options"] == {"max_images": 4}
    assert refusal("doubao-seedream-4-0", operation="edit", n=5, input_image_count=11) == ("invalid_n", "n")


def test_operations_prompts_and_images_are_checked() -> None:
    assert refusal("glm-image", operation="edit", input_image_count=1) == (
        "operation_not_supported",
        "operation",
    )
    assert refusal("qwen-image-edit", input_image_count=0) == ("missing_input_image", "images")
    assert refusal("gpt-image-2", input_image_count=1) == ("unexpected_input_image", "images")
    assert refusal("flux-kontext-max", operation="edit", input_image_count=2) == (
        "too_many_input_images",
        "images",
    )
    assert refusal("wan2.6-t2i", prompt="x" * 801) == ("prompt_too_long", "prompt")
    assert refusal("gpt-image-2", prompt="  ") == ("prompt_required", "prompt")
    assert refusal("gpt-image-2", negative_prompt="blur") == ("unsupported_parameter", "negative_prompt")
    assert refusal("qwen-image-plus", seed=2**31) == ("invalid_parameter", "seed")
    assert refusal("gpt-image-2", operation="edit", input_image_count=1, params={"moderation": "low"}) == (
        "unsupported_parameter",
        "params.moderation",
    )


def test_models_are_found_by_id_or_alias_and_can_be_disabled(settings) -> None:
    assert model_get("gpt-image-2") == model_get("openai/gpt-image-2")
    settings.DISABLED_MODELS = ["gpt-image-2"]

    with pytest.raises(UnknownModel) as caught:
        model_get("openai/gpt-image-2")

    assert (caught.value.code, caught.value.param, domain_error_status(caught.value)) == (
        "unknown_model",
        "model",
        400,
    )
    assert "openai/gpt-image-2" not in [entry.id for entry in catalog_list()]
    # A generation accepted before the model was disabled still runs.
    call = provider_call_from_stored(
        model_id="openai/gpt-image-2", interface="predictions", operation="generate", body={"input": {}}, images=[]
    )
    assert call.family == "predictions"


def test_a_stored_body_rebuilds_the_same_call() -> None:
    request = validate(
        "flux-kontext-max", operation="edit", input_image_count=1, params={"safety_tolerance": 6}
    )
    call = provider_call_from_stored(
        model_id=request.model_id, interface=request.interface, operation="edit", body=request.upstream_body, images=[]
    )
    assert (call.family, call.body) == ("async_task", request.upstream_body)
