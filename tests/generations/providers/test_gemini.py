"""The Gemini family builds Google's `generateContent` request (its own route, `x-goog-api-key`, the prompt and input
images as parts, `imageConfig` from our size) and reads its answers: the image from `inlineData`, text and thought
signatures ignored, safety blocks and image-less answers as clear failures, `usageMetadata` kept as token usage.
httpx.MockTransport stands in for the network; tests/generations/test_successor_models.py covers real HTTP."""

import asyncio
import base64
import json
from collections.abc import Callable

import httpx
import pytest

from generations.catalog.specs import CatalogRuleError, spec_from_dict
from generations.catalog.upstream_body import provider_call_from_stored
from generations.catalog.validation import InvalidGenerationRequest, generation_request_validate
from generations.providers import (
    AIHubMixClient,
    ContentPolicyError,
    InputImage,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderResult,
    TransientProviderError,
)
from generations.providers.gemini import image_config_from_size

PNG = InputImage(data=b"\x89PNG-one", content_type="image/png", filename="one.png")
JPEG = InputImage(data=b"\xff\xd8-two", content_type="image/jpeg", filename="two.jpg")
IMAGE_B64 = base64.b64encode(b"\xff\xd8 the image").decode()
SIGNATURE = "c2lnbmF0dXJl" * 20_000

pytestmark = pytest.mark.django_db


def call_for(model: str, *, images: list[InputImage] = (), size: str | None = None) -> ProviderCall:
    request = generation_request_validate(
        model=model,
        operation="edit" if images else "generate",
        prompt="a lighthouse",
        n=None,
        size=size,
        quality=None,
        negative_prompt=None,
        seed=None,
        params={},
        input_image_count=len(images),
    )
    return provider_call_from_stored(
        model_id=request.model_id, interface=request.interface, operation=request.operation,
        body=request.upstream_body, images=list(images),
    )


def run(
    call: ProviderCall, handler: Callable[[httpx.Request], httpx.Response], **client_options
) -> tuple[ProviderResult, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return handler(request)

    async def go() -> ProviderResult:
        async with AIHubMixClient(
            api_key="sk-test",
            base_url="https://hub.test/v1",
            tasks_url="https://tasks.test/v1/tasks",
            transport=httpx.MockTransport(record),
            **client_options,
        ) as client:
            return await client.run(call)

    return asyncio.run(go()), seen


def answer(*parts: dict, finish: str = "STOP", **extra) -> dict:
    return {
        "candidates": [{"content": {"role": "model", "parts": list(parts)}, "finishReason": finish, "index": 0}],
        **extra,
    }


IMAGE_PART = {"inlineData": {"mimeType": "image/jpeg", "data": IMAGE_B64}, "thoughtSignature": SIGNATURE}


def answered(payload: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=payload, headers={"x-request-id": "tr-g"})


# --- The request ------------------------------------------------------------------------------------------


def test_a_generation_posts_generate_content_on_the_gemini_route_with_the_goog_key_only() -> None:
    call = call_for("gemini-3.1-flash-image", size="16:9-2K")

    _, (request,) = run(call, answered(answer(IMAGE_PART)))

    assert (request.method, str(request.url)) == (
        "POST", "https://hub.test/gemini/v1beta/models/gemini-3.1-flash-image:generateContent",
    )
    assert request.headers["x-goog-api-key"] == "sk-test"
    assert "authorization" not in request.headers
    assert json.loads(request.content) == {
        "contents": [{"role": "user", "parts": [{"text": "a lighthouse"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"],
                             "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}},
    }


def test_an_edit_sends_every_input_image_as_an_inline_data_part_after_the_prompt() -> None:
    call = call_for("gemini-3-pro-image", images=[PNG, JPEG])

    _, (request,) = run(call, answered(answer(IMAGE_PART)))

    parts = json.loads(request.content)["contents"][0]["parts"]
    assert parts == [
        {"text": "a lighthouse"},
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG.data).decode()}},
        {"inlineData": {"mimeType": "image/jpeg", "data": base64.b64encode(JPEG.data).decode()}},
    ]
    # Default size 1K: the resolution only, so the model keeps the input image's aspect ratio.
    assert json.loads(request.content)["generationConfig"]["imageConfig"] == {"imageSize": "1K"}


def test_a_configured_gemini_base_url_replaces_the_one_derived_from_the_base_url() -> None:
    call = call_for("gemini-3-pro-image")

    _, (request,) = run(call, answered(answer(IMAGE_PART)), gemini_base_url="https://gemini.test/relay/")

    assert str(request.url) == "https://gemini.test/relay/v1beta/models/gemini-3-pro-image:generateContent"


@pytest.mark.parametrize(
    ("size", "config"),
    [
        ("1K", {"imageSize": "1K"}),
        ("4k", {"imageSize": "4K"}),
        ("16:9", {"aspectRatio": "16:9", "imageSize": "1K"}),
        ("9:16-2K", {"aspectRatio": "9:16", "imageSize": "2K"}),
        ("21:9-4k", {"aspectRatio": "21:9", "imageSize": "4K"}),
    ],
)
def test_our_sizes_map_to_image_config(size: str, config: dict) -> None:
    assert image_config_from_size(size) == config


@pytest.mark.parametrize("size", ["1024x1024", "3K", "16:9-3K", "auto", "2K-16:9"])
def test_other_sizes_are_refused_by_the_catalog_naming_size(size: str) -> None:
    with pytest.raises(InvalidGenerationRequest) as caught:
        call_for("gemini-3.1-flash-image", size=size)
    assert (caught.value.code, caught.value.param) == ("unsupported_size", "size")


def test_a_catalog_entry_with_a_size_the_adapter_cannot_map_is_refused_at_save() -> None:
    entry = {
        "id": "google/gemini-next-image", "alias": "gemini-next-image", "family": "gemini",
        "display_name": "Next", "operations": ["generate"], "n_style": "none",
        "sizes": {"default": "1K", "presets": ["1K", "1024x1024"]},
    }
    with pytest.raises(CatalogRuleError) as caught:
        spec_from_dict(entry)
    assert caught.value.field == "sizes.presets[1]"

    with pytest.raises(CatalogRuleError) as caught:
        spec_from_dict({**entry, "sizes": {"default": "1K", "presets": ["1K"]}, "n_style": "field", "n_max": 4})
    assert caught.value.field == "n_style"


# --- The answer -------------------------------------------------------------------------------------------


def test_the_image_comes_from_inline_data_and_text_thoughts_and_signatures_are_ignored() -> None:
    thought = {"inlineData": {"mimeType": "image/png", "data": "dGhvdWdodA=="}, "thought": True}
    payload = answer(
        {"text": "Here you go"}, thought, IMAGE_PART,
        usageMetadata={
            "promptTokenCount": 10, "candidatesTokenCount": 1130, "thoughtsTokenCount": 180, "totalTokenCount": 1320,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 10}],
            "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": 10}, {"modality": "IMAGE", "tokenCount": 1120}],
        },
    )

    result, _ = run(call_for("gemini-3-pro-image"), answered(payload))

    assert [(output.b64_json, output.url) for output in result.outputs] == [(IMAGE_B64, None)]
    assert result.trace_id == "tr-g"
    assert result.usage == {
        "input_tokens": 10,
        "output_tokens": 1310,
        "total_tokens": 1320,
        "input_tokens_details": {"text_tokens": 10},
        "output_tokens_details": {"text_tokens": 10, "image_tokens": 1120, "reasoning_tokens": 180},
    }


def test_a_streamed_answer_of_chunks_is_read_too() -> None:
    chunks = [answer({"text": "Drawing"}), answer(IMAGE_PART, usageMetadata={"promptTokenCount": 3})]

    result, _ = run(call_for("gemini-3.1-flash-image"), answered(chunks))

    assert [output.b64_json for output in result.outputs] == [IMAGE_B64]
    assert result.usage["input_tokens"] == 3


def test_a_blocked_prompt_is_a_content_policy_failure() -> None:
    payload = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {"promptTokenCount": 8}}

    with pytest.raises(ContentPolicyError) as caught:
        run(call_for("gemini-3.1-flash-image"), answered(payload))

    assert caught.value.code == "content_policy_violation"
    assert "PROHIBITED_CONTENT" in caught.value.message and caught.value.trace_id == "tr-g"


def test_a_candidate_stopped_for_safety_is_a_content_policy_failure_with_the_upstream_reason() -> None:
    payload = {"candidates": [{"finishReason": "IMAGE_SAFETY", "finishMessage": "filtered out", "index": 0}]}

    with pytest.raises(ContentPolicyError) as caught:
        run(call_for("gemini-3-pro-image"), answered(payload))

    assert caught.value.code == "content_policy_violation"
    assert caught.value.message == "The upstream's safety filter stopped the image (IMAGE_SAFETY): filtered out"


def test_an_answer_with_text_only_fails_as_no_image_keeping_the_answer_without_its_bulk() -> None:
    payload = answer({"text": "I will only describe it.", "thoughtSignature": SIGNATURE})

    with pytest.raises(MalformedResponse) as caught:
        run(call_for("gemini-3.1-flash-image"), answered(payload))

    error = caught.value
    assert error.code == "upstream_no_image"
    assert error.message == (
        "The upstream answered without an image (finish reason STOP): I will only describe it."
    )
    kept = json.loads(error.body)
    assert kept["candidates"][0]["content"]["parts"][0]["thoughtSignature"] == f"<{len(SIGNATURE)} chars>"


def test_an_answer_without_candidates_or_feedback_is_unrecognized() -> None:
    with pytest.raises(MalformedResponse) as caught:
        run(call_for("gemini-3.1-flash-image"), answered({"usageMetadata": {}}))

    assert caught.value.code == "upstream_unrecognized_response"


def test_googles_error_shape_is_classified_with_its_own_code() -> None:
    def google(status: int, code: str, message: str) -> Callable[[httpx.Request], httpx.Response]:
        return lambda request: httpx.Response(
            status, json={"error": {"code": status, "message": message, "status": code}}
        )

    with pytest.raises(PermanentProviderError) as refused:
        run(call_for("gemini-3.1-flash-image"), google(400, "INVALID_ARGUMENT", "Unsupported aspect ratio"))
    with pytest.raises(TransientProviderError) as exhausted:
        run(call_for("gemini-3.1-flash-image"), google(429, "RESOURCE_EXHAUSTED", "Quota exceeded"))

    assert (refused.value.code, refused.value.message) == (
        "upstream_rejected", "INVALID_ARGUMENT: Unsupported aspect ratio"
    )
    assert exhausted.value.code == "upstream_rate_limited"
