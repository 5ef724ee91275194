"""Each request family builds the upstream request the provider documents and reads both answer shapes
(httpx.MockTransport stands in for the network here; the sandbox tests cover real HTTP)."""

import asyncio
import base64
import json
from collections.abc import Callable

import httpx
import pytest

from generations.catalog.upstream_body import provider_call_from_stored
from generations.catalog.validation import generation_request_validate
from generations.providers import (
    AIHubMixClient,
    ContentPolicyError,
    InputImage,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderResult,
    TransientProviderError,
    UnknownOutcomeError,
)

PNG = InputImage(data=b"\x89PNG-one", content_type="image/png", filename="one.png")
JPEG = InputImage(data=b"\xff\xd8-two", content_type="image/jpeg", filename="two.jpg")
OK_URL = {"output": [{"url": "https://cdn.example/1.png"}]}

pytestmark = pytest.mark.django_db


def call_for(
    model: str, *, operation: str = "generate", images: list[InputImage] = (), **fields
) -> ProviderCall:
    request = generation_request_validate(
        model=model,
        operation=operation,
        prompt=fields.pop("prompt", "a lighthouse"),
        n=fields.pop("n", None),
        size=fields.pop("size", None),
        quality=fields.pop("quality", None),
        negative_prompt=None,
        seed=fields.pop("seed", None),
        params=fields.pop("params", {}),
        input_image_count=len(images),
    )
    return provider_call_from_stored(
        model_id=request.model_id,
        interface=request.interface,
        operation=request.operation,
        body=request.upstream_body,
        images=list(images),
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
            poll_interval_seconds=0.01,
            **client_options,
        ) as client:
            return await client.run(call)

    return asyncio.run(go()), seen


def test_openai_compatible_generation_posts_the_validated_json_with_the_bearer_token() -> None:
    call = call_for("wan2.6-t2i", size="1440x1280", n=2, seed=3, params={"prompt_extend": False})
    answer = {
        "created": 1,
        "data": [{"b64_json": "QUJD", "revised_prompt": "a tall lighthouse"}, {"b64_json": "REVG"}],
        "usage": {"input_tokens": 5},
    }

    result, (request,) = run(
        call, lambda request: httpx.Response(200, json=answer, headers={"x-request-id": "tr-1"})
    )

    assert (request.method, str(request.url)) == ("POST", "https://hub.test/v1/images/generations")
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "wan2.6-t2i",
        "prompt": "a lighthouse",
        "n": 2,
        "size": "1440x1280",
        "seed": 3,
        "prompt_extend": False,
    }
    assert [output.b64_json for output in result.outputs] == ["QUJD", "REVG"]
    assert result.outputs[0].revised_prompt == "a tall lighthouse"
    assert (result.usage, result.trace_id) == ({"input_tokens": 5}, "tr-1")


def test_openai_edit_sends_multipart_with_every_image_and_string_fields() -> None:
    call = call_for("gpt-image-2", operation="edit", images=[PNG, JPEG], params={"background": "opaque"})

    _, (request,) = run(call, lambda request: httpx.Response(200, json={"data": [{"b64_json": "QUJD"}]}))

    assert str(request.url) == "https://hub.test/v1/images/edits"
    assert request.headers["Content-Type"].startswith("multipart/form-data")
    body = request.content
    assert body.count(b'name="image[]"') == 2
    assert b"\x89PNG-one" in body and b"\xff\xd8-two" in body
    for field, value in (("model", b"gpt-image-2"), ("n", b"1"), ("background", b"opaque")):
        assert f'name="{field}"\r\n\r\n'.encode() + value in body


@pytest.mark.parametrize(
    ("model", "images", "field", "expected"),
    [
        (
            "doubao-seedream-4-0",
            [PNG, JPEG],
            "image",
            [
                f"data:image/png;base64,{base64.b64encode(PNG.data).decode()}",
                f"data:image/jpeg;base64,{base64.b64encode(JPEG.data).decode()}",
            ],
        ),
        ("irag-1.0", [PNG], "refer_image", f"data:image/png;base64,{base64.b64encode(PNG.data).decode()}"),
    ],
)
def test_predictions_edits_put_reference_images_where_the_vendor_expects_them(
    model: str, images: list[InputImage], field: str, expected: object
) -> None:
    _, (request,) = run(
        call_for(model, operation="edit", images=images), lambda r: httpx.Response(200, json=OK_URL)
    )
    assert json.loads(request.content)["input"][field] == expected


def test_sync_flux_reads_the_openai_shaped_answer_and_nests_extra_body() -> None:
    call = call_for("FLUX-1.1-pro", seed=7, params={"prompt_upsampling": True})

    result, (request,) = run(call, lambda request: httpx.Response(200, json={"data": [{"b64_json": "QUJD"}]}))

    assert json.loads(request.content)["input"]["extra_body"] == {"seed": 7, "prompt_upsampling": True}
    assert result.outputs[0].b64_json == "QUJD"


def test_async_task_submits_reports_the_task_id_and_polls_until_ready() -> None:
    polls = iter(
        [
            {"status": "Pending"},
            {"status": "Pending"},
            {"id": "t-1", "status": "Ready", "result": {"sample": "https://bfl.example/s.jpg"}},
        ]
    )
    reported: list[str] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                200, json={"output": [{"taskId": "t-1", "polling_url": "https://bfl.example/p"}]}
            )
        return httpx.Response(200, json=next(polls))

    async def report(task_id: str) -> None:
        reported.append(task_id)

    call = call_for("flux-kontext-max", operation="edit", images=[PNG], size="16:9")

    async def go() -> tuple[ProviderResult, list[httpx.Request]]:
        seen: list[httpx.Request] = []
        transport = httpx.MockTransport(lambda request: seen.append(request) or upstream(request))
        async with AIHubMixClient(
            api_key="k",
            base_url="https://hub.test/v1",
            tasks_url="https://tasks.test/v1/tasks",
            transport=transport,
            poll_interval_seconds=0.01,
        ) as client:
            return await client.run(call, on_task_submitted=report), seen

    result, seen = asyncio.run(go())

    submit = json.loads(seen[0].content)
    assert str(seen[0].url) == "https://hub.test/v1/models/bfl/flux-kontext-max/predictions"
    assert submit["input"]["aspect_ratio"] == "16:9"
    assert submit["input"]["image"] == base64.b64encode(PNG.data).decode()
    assert [str(request.url) for request in seen[1:]] == ["https://tasks.test/v1/tasks/t-1"] * 3
    assert reported == ["t-1"]
    assert (result.upstream_task_id, result.outputs[0].url) == ("t-1", "https://bfl.example/s.jpg")


@pytest.mark.parametrize(
    ("status", "body", "headers", "error_class", "code"),
    [
        (
            429,
            {"error": {"message": "slow down", "code": "rate_limit"}},
            {"Retry-After": "7"},
            TransientProviderError,
            "upstream_rate_limited",
        ),
        (500, {"error": {"message": "boom"}}, {}, TransientProviderError, "upstream_unavailable"),
        (503, {"error": {"message": "no channel"}}, {}, TransientProviderError, "upstream_unavailable"),
        (
            400,
            {"error": {"message": "size", "code": "size_not_supported"}},
            {},
            PermanentProviderError,
            "upstream_rejected",
        ),
        (
            400,
            {"error": {"message": "unsafe", "code": "moderation_blocked"}},
            {},
            ContentPolicyError,
            "content_policy_violation",
        ),
        (401, {"error": {"message": "bad key"}}, {}, PermanentProviderError, "upstream_auth_failed"),
        (
            403,
            {"error": {"message": "empty", "code": "insufficient_user_quota"}},
            {},
            PermanentProviderError,
            "upstream_quota_exhausted",
        ),
    ],
)
def test_error_answers_map_to_the_error_classes(status, body, headers, error_class, code) -> None:
    response = httpx.Response(status, json=body, headers={"x-request-id": "tr-9", **headers})
    with pytest.raises(error_class) as caught:
        run(call_for("gpt-image-2"), lambda request: response)
    assert (caught.value.code, caught.value.status, caught.value.trace_id) == (code, status, "tr-9")
    if status == 429:
        assert caught.value.retry_after == 7.0


def test_a_connect_failure_is_transient_and_a_read_timeout_an_unknown_outcome() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(TransientProviderError) as refused:
        run(call_for("gpt-image-2"), refuse)
    with pytest.raises(UnknownOutcomeError) as timed_out:
        run(call_for("gpt-image-2"), silent)

    assert (refused.value.code, timed_out.value.code) == ("upstream_unreachable", "upstream_timeout")


def test_a_garbled_or_empty_success_is_not_taken_for_images() -> None:
    with pytest.raises(MalformedResponse):
        run(call_for("gpt-image-2"), lambda request: httpx.Response(200, content=b"<html>oops"))
    with pytest.raises(PermanentProviderError) as empty:
        run(call_for("gpt-image-2"), lambda request: httpx.Response(200, json={"data": []}))
    assert empty.value.code == "upstream_empty_result"


def test_a_task_that_never_finishes_ends_at_the_poll_deadline_as_unknown_outcome() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"output": [{"taskId": "t-2"}]})
        return httpx.Response(200, json={"status": "Pending"})

    with pytest.raises(UnknownOutcomeError) as caught:
        run(call_for("flux-2-pro"), upstream, poll_deadline_seconds=0.1)
    assert caught.value.code == "upstream_task_timeout"


def test_polling_survives_transient_poll_failures() -> None:
    polls = iter(
        [
            httpx.Response(503),
            httpx.Response(200, content=b"garbage"),
            httpx.Response(200, json={"status": "Ready", "result": {"sample": "https://bfl.example/x.jpg"}}),
        ]
    )

    def upstream(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"output": [{"taskId": "t-3"}]})
        return next(polls)

    result, _ = run(call_for("flux-2-pro"), upstream)
    assert result.outputs[0].url == "https://bfl.example/x.jpg"


# --- Every documented answer shape is read; anything else is kept, never resent ---------------------------

B64 = base64.b64encode(b"\x89PNG-image").decode()


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        # predictions: output as a list of {url}
        ({"output": [{"url": "https://cdn.example/1.png"}]}, [("https://cdn.example/1.png", None)]),
        # predictions: output as a list of {b64_json}
        ({"output": [{"b64_json": B64}]}, [(None, B64)]),
        # predictions: output as a list of bare URL strings
        ({"output": ["https://cdn.example/1.png", "https://cdn.example/2.png"]},
         [("https://cdn.example/1.png", None), ("https://cdn.example/2.png", None)]),
        # newer models: output as an object of base64 images with their type, and URLs
        ({"output": {"b64_json": [{"bytesBase64": B64, "mimeType": "image/png"}], "urls": []},
          "usage": {"input_tokens": 9}}, [(None, B64)]),
        ({"output": {"b64_json": [], "urls": ["https://cdn.example/3.png"]}}, [("https://cdn.example/3.png", None)]),
        # OpenAI-compatible routes and synchronous BFL models: data[] of {url} / {b64_json}
        ({"created": 1, "data": [{"b64_json": B64}, {"url": "https://cdn.example/4.png"}]},
         [(None, B64), ("https://cdn.example/4.png", None)]),
        # a base64 image given as a data URL
        ({"data": [{"b64_json": f"data:image/png;base64,{B64}"}]}, [(None, B64)]),
    ],
    ids=["output-url", "output-b64", "output-strings", "output-object-b64", "output-object-urls", "data",
         "data-url-b64"],
)
def test_every_documented_answer_shape_is_read(answer, expected) -> None:
    result, _ = run(call_for("glm-image"), lambda request: httpx.Response(200, json=answer))
    assert [(output.url, output.b64_json) for output in result.outputs] == expected


@pytest.mark.parametrize(
    ("model", "answer"),
    [
        ("glm-image", {"result": {"images": ["https://cdn.example/x.png"]}}),
        ("gpt-image-2", {"output": {"pictures": [B64]}}),
        # An async model answering with neither a task id nor an image: it may be running, and is paid for.
        ("flux-2-pro", {"output": [{"status": "queued"}]}),
    ],
)
def test_an_answer_shape_not_understood_is_sent_once_and_kept_for_staff(model, answer) -> None:
    with pytest.raises(MalformedResponse) as caught:
        run(call_for(model), lambda request: httpx.Response(200, json=answer))
    # Permanent: the forwarder fails it instead of retrying a request that was delivered and charged.
    assert isinstance(caught.value, PermanentProviderError)
    assert caught.value.code == "upstream_unrecognized_response"
    assert json.loads(caught.value.body) == answer


def test_an_async_model_answering_in_one_step_is_taken_as_the_result() -> None:
    requests: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, json={"output": [{"url": "https://bfl.example/done.jpg"}]})

    result, _ = run(call_for("flux-2-pro"), upstream)
    assert [output.url for output in result.outputs] == ["https://bfl.example/done.jpg"]
    assert [request.method for request in requests] == ["POST"]
