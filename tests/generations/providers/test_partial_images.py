"""Partial images: which requests are sent in OpenAI's streaming mode (the catalog's rule) and how the event stream
is read (partials handed on in order, the completed event as the answer, errors and broken streams classified).
httpx.MockTransport stands in for the network; tests/generations/test_streams.py covers the real stack."""

import asyncio
import base64
import json

import httpx
import pytest

from generations.catalog.validation import InvalidGenerationRequest, generation_request_validate
from generations.providers import (
    AIHubMixClient,
    ContentPolicyError,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    UnknownOutcomeError,
)

pytestmark = pytest.mark.django_db
FINAL = base64.b64encode(b"the final image").decode()


def validated(model: str = "gpt-image-2", *, partial_images: int = 2, n: int | None = None, images: int = 0):
    return generation_request_validate(
        model=model, operation="edit" if images else "generate", prompt="a lighthouse", n=n, size=None,
        quality=None, negative_prompt=None, seed=None, params={}, input_image_count=images,
        partial_images=partial_images,
    )


def test_gpt_image_2_with_partials_goes_to_openais_route_in_streaming_mode_without_it_unchanged() -> None:
    plain, streamed = validated(partial_images=0), validated(partial_images=2)
    assert plain.interface == "predictions" and "stream" not in plain.upstream_body["input"]
    assert streamed.interface == "openai_compat"
    assert streamed.upstream_body == {
        "model": "gpt-image-2", "prompt": "a lighthouse", "n": 1, "size": "1024x1024", "quality": "medium",
        "stream": True, "partial_images": 2,
    }
    assert (streamed.model_id, streamed.size, streamed.quality, streamed.n) == (
        plain.model_id, plain.size, plain.quality, plain.n)  # same model and price
    edit = validated(partial_images=1, images=1)
    assert edit.interface == "openai_compat" and edit.upstream_body["partial_images"] == 1


@pytest.mark.parametrize(("model", "n"), [("gpt-image-2", 2), ("gemini-3.1-flash-image", None),
                                          ("doubao-seedream-4-5", None)])
def test_where_the_upstream_streams_no_partials_the_request_is_as_without(model: str, n: int | None) -> None:
    assert validated(model, partial_images=3, n=n) == validated(model, partial_images=0, n=n)


def test_partial_images_out_of_range_is_refused_naming_it() -> None:
    with pytest.raises(InvalidGenerationRequest) as refused:
        validated(partial_images=4)
    assert refused.value.param == "partial_images"


def sse(*events: tuple[str, dict]) -> bytes:
    return "".join(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n" for kind, data in events).encode()


STREAMED_BODY = {"model": "gpt-image-2", "prompt": "a lighthouse", "stream": True, "partial_images": 2}


def run(body: bytes, *, status: int = 200, content_type: str = "text/event-stream"):
    partials: list[tuple[int, str]] = []

    async def on_partial(index: int, image: str) -> None:
        partials.append((index, image))

    async def go():
        transport = httpx.MockTransport(
            lambda request: httpx.Response(status, content=body, headers={"content-type": content_type})
        )
        async with AIHubMixClient(api_key="k", base_url="http://up/v1", tasks_url="http://up/v1/tasks",
                                  transport=transport) as client:
            call = ProviderCall(model_id="openai/gpt-image-2", family="openai_compat", operation="generate",
                                body=STREAMED_BODY)
            return await client.run(call, on_partial=on_partial)

    return asyncio.run(go()), partials


def test_partials_are_handed_on_in_order_and_the_completed_event_is_the_answer() -> None:
    usage = {"input_tokens": 5, "output_tokens": 10, "total_tokens": 15}
    result, partials = run(sse(
        ("image_generation.partial_image", {"b64_json": "cA==", "partial_image_index": 0}),
        ("image_generation.partial_image", {"b64_json": "cQ==", "partial_image_index": 1}),
        ("image_generation.completed", {"b64_json": FINAL, "usage": usage}),
    ))
    assert partials == [(0, "cA=="), (1, "cQ==")]
    assert [output.b64_json for output in result.outputs] == [FINAL] and result.usage == usage


def test_an_upstream_answering_json_after_all_is_read_as_without_streaming() -> None:
    result, partials = run(json.dumps({"data": [{"b64_json": FINAL}]}).encode(), content_type="application/json")
    assert [output.b64_json for output in result.outputs] == [FINAL] and partials == []


def test_a_moderation_error_event_is_a_content_policy_failure_other_errors_are_permanent() -> None:
    with pytest.raises(ContentPolicyError):
        run(sse(("error", {"error": {"code": "moderation_blocked", "message": "blocked"}})))
    with pytest.raises(PermanentProviderError) as failed:
        run(sse(("error", {"error": {"code": "server_error", "message": "it broke"}})))
    assert failed.value.code == "upstream_stream_error" and failed.value.message == "it broke"


def test_a_stream_ending_without_the_completed_image_is_kept_for_staff_and_never_resent() -> None:
    with pytest.raises(MalformedResponse) as broken:
        run(sse(("image_generation.partial_image", {"b64_json": "cA==", "partial_image_index": 0})))
    assert broken.value.code == "upstream_stream_incomplete"
    assert json.loads(broken.value.body) == {"events": ["image_generation.partial_image"]}


def test_an_error_status_is_classified_as_without_streaming() -> None:
    with pytest.raises(PermanentProviderError) as refused:
        run(json.dumps({"error": {"code": "size_not_supported", "message": "no"}}).encode(), status=400,
            content_type="application/json")
    assert refused.value.status == 400


def test_a_connection_lost_mid_stream_is_an_unknown_outcome() -> None:
    class Broken(httpx.AsyncByteStream):
        async def __aiter__(self):
            yield sse(("image_generation.partial_image", {"b64_json": "cA==", "partial_image_index": 0}))
            raise httpx.ReadError("connection reset")

    async def go():
        transport = httpx.MockTransport(
            lambda request: httpx.Response(200, stream=Broken(), headers={"content-type": "text/event-stream"})
        )
        async with AIHubMixClient(api_key="k", base_url="http://up/v1", tasks_url="http://up/v1/tasks",
                                  transport=transport) as client:
            call = ProviderCall(model_id="openai/gpt-image-2", family="openai_compat", operation="generate",
                                body=STREAMED_BODY)
            await client.run(call)

    with pytest.raises(UnknownOutcomeError):
        asyncio.run(go())
