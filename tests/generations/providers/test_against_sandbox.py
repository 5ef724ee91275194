"""The client over real HTTP against the local AIHubMix sandbox: every family, generate and edit, and every fault
class landing on the right error."""

import asyncio

import pytest

from aihubmix_sandbox.server import SandboxHandle
from generations.catalog.upstream_body import provider_call_from_stored
from generations.catalog.validation import generation_request_validate
from generations.images import InvalidOutput, VerifiedImage, output_materialize
from generations.providers import (
    AIHubMixClient,
    ContentPolicyError,
    InputImage,
    MalformedResponse,
    PermanentProviderError,
    ProviderResult,
    TransientProviderError,
    UnknownOutcomeError,
)

REFERENCE = InputImage(data=b"\x89PNG reference", content_type="image/png", filename="ref.png")
# Like the upstream, the sandbox answers these in JPEG unless told otherwise (aihubmix_sandbox/families).
ANSWERED_IN_JPEG = {"FLUX-1.1-pro", "flux-kontext-max"}

pytestmark = pytest.mark.django_db


def generate(
    sandbox: SandboxHandle,
    model: str,
    *,
    prompt: str = "a lighthouse at dusk",
    operation: str = "generate",
    images: int = 0,
    api_key: str = "sk-sandbox-test",
    read_timeout: float = 10.0,
    **fields,
) -> ProviderResult:
    request = generation_request_validate(
        model=model,
        operation=operation,
        prompt=prompt,
        n=fields.get("n"),
        size=fields.get("size"),
        quality=fields.get("quality"),
        negative_prompt=None,
        seed=None,
        params=fields.get("params", {}),
        input_image_count=images,
    )

    async def go() -> ProviderResult:
        async with AIHubMixClient(
            api_key=api_key,
            base_url=sandbox.base_url,
            tasks_url=sandbox.tasks_url,
            poll_interval_seconds=0.02,
            read_timeout_seconds=read_timeout,
        ) as client:
            call = provider_call_from_stored(
                model_id=request.model_id,
                interface=request.interface,
                operation=request.operation,
                body=request.upstream_body,
                images=[REFERENCE] * images,
            )
            return await client.run(call)

    return asyncio.run(go())


def materialize(result: ProviderResult, index: int = 0, *, max_bytes: int = 20_000_000) -> VerifiedImage:
    return asyncio.run(
        output_materialize(
            result.outputs[index],
            max_bytes=max_bytes,
            max_pixels=50_000_000,
            allow_private=True,
            deadline_seconds=10,
        )
    )


@pytest.mark.parametrize(
    ("model", "operation", "images", "fields", "family", "width", "height"),
    [
        ("gpt-image-2", "generate", 0, {"size": "1536x1024", "n": 2}, "predictions", 1536, 1024),
        ("gpt-image-2", "edit", 2, {}, "openai_compat", 1024, 1024),
        ("wan2.6-t2i", "generate", 0, {"size": "1280x1440"}, "openai_compat", 1280, 1440),
        ("qwen-image-edit-plus", "edit", 1, {"size": "768x1024"}, "predictions", 768, 1024),
        ("doubao-seedream-4-0", "edit", 2, {"size": "1K"}, "predictions", 1024, 1024),
        ("glm-image", "generate", 0, {"size": "1568x1056"}, "predictions", 1568, 1056),
        ("FLUX-1.1-pro", "generate", 0, {"size": "800x608"}, "predictions", 800, 608),
        ("flux-kontext-max", "generate", 0, {"size": "9:16"}, "async_task", 576, 1024),
        ("flux-kontext-pro", "edit", 1, {}, "predictions", 1024, 1024),
    ],
)
def test_each_family_generates_and_edits_real_images_at_the_requested_size(
    aihubmix_sandbox: SandboxHandle, model, operation, images, fields, family, width, height
) -> None:
    result = generate(aihubmix_sandbox, model, operation=operation, images=images, **fields)

    assert len(result.outputs) == fields.get("n", 1)
    image = materialize(result, len(result.outputs) - 1)
    assert (image.width, image.height) == (width, height)
    assert image.content_type == ("image/jpeg" if model in ANSWERED_IN_JPEG else "image/png")
    assert aihubmix_sandbox.calls[f"family:{family}"] == 1
    assert (result.upstream_task_id is not None) == (family == "async_task")


def test_the_sandbox_refuses_a_wrong_bearer_token(aihubmix_sandbox: SandboxHandle) -> None:
    with pytest.raises(PermanentProviderError) as caught:
        generate(aihubmix_sandbox, "gpt-image-2", api_key="sk-wrong")
    assert (caught.value.status, caught.value.code) == (401, "upstream_auth_failed")


@pytest.mark.parametrize(
    ("marker", "model", "error_class", "code"),
    [
        ("[fault:429]", "gpt-image-2", TransientProviderError, "upstream_rate_limited"),
        ("[fault:500]", "doubao-seedream-5.0-lite", TransientProviderError, "upstream_unavailable"),
        ("[fault:503]", "flux-2-pro", TransientProviderError, "upstream_unavailable"),
        ("[fault:400]", "glm-image", PermanentProviderError, "upstream_rejected"),
        ("[fault:401]", "gpt-image-2", PermanentProviderError, "upstream_auth_failed"),
        ("[fault:403]", "doubao-seedream-4-5", PermanentProviderError, "upstream_quota_exhausted"),
        ("[fault:moderated]", "gpt-image-2", ContentPolicyError, "content_policy_violation"),
        ("[fault:moderated]", "flux-kontext-max", ContentPolicyError, "content_policy_violation"),
        ("[fault:task-error]", "flux-2-flex", PermanentProviderError, "upstream_task_failed"),
        ("[fault:task-not-found]", "flux-kontext-max", PermanentProviderError, "upstream_task_not_found"),
        # Delivered but unreadable: permanent (never resent as if unsent), the body kept.
        ("[fault:malformed]", "wan2.7-image", MalformedResponse, "upstream_unrecognized_response"),
        ("[fault:disconnect]", "irag-1.0", UnknownOutcomeError, "upstream_connection_lost"),
        ("[fault:hang]", "ideogram-v3", UnknownOutcomeError, "upstream_timeout"),
    ],
)
def test_each_fault_marker_raises_its_error_class(
    aihubmix_sandbox: SandboxHandle, marker, model, error_class, code
) -> None:
    with pytest.raises(error_class) as caught:
        generate(aihubmix_sandbox, model, prompt=f"a lighthouse {marker}", read_timeout=0.5)
    assert caught.value.code == code
    if marker == "[fault:429]":
        assert caught.value.retry_after == 1.0


def test_a_counted_fault_fails_that_many_times_for_the_prompt_then_succeeds(
    aihubmix_sandbox: SandboxHandle,
) -> None:
    prompt = "a lighthouse [fault:500x2]"
    for _ in range(2):
        with pytest.raises(TransientProviderError):
            generate(aihubmix_sandbox, "gpt-image-2", prompt=prompt)

    result = generate(aihubmix_sandbox, "gpt-image-2", prompt=prompt)

    assert len(result.outputs) == 1
    assert aihubmix_sandbox.calls["predictions"] == 3
    assert aihubmix_sandbox.calls["fault:500"] == 2


@pytest.mark.parametrize(
    ("marker", "model", "code"),
    [
        ("[fault:not-image]", "gpt-image-2", "output_not_image"),
        ("[fault:not-image]", "qwen-image-max", "output_not_image"),
        ("[fault:oversized]", "doubao-seedream-4-0", "output_too_large"),
        ("[fault:bomb]", "flux-kontext-max", "output_dimensions_too_large"),
    ],
)
def test_bad_outputs_are_refused_when_materialized(
    aihubmix_sandbox: SandboxHandle, marker: str, model: str, code: str
) -> None:
    result = generate(aihubmix_sandbox, model, prompt=f"a lighthouse {marker}")

    with pytest.raises(InvalidOutput) as caught:
        materialize(result, max_bytes=2_000_000)

    assert caught.value.code == code
