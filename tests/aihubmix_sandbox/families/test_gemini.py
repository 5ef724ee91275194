"""The sandbox speaks Gemini's native route as AIHubMix relays it: `x-goog-api-key`, Google's request body, the image
in `inlineData` beside a text part and a large `thoughtSignature`, `usageMetadata`, and safety answers by marker."""

import base64
import io

import httpx
import pytest
from PIL import Image

from aihubmix_sandbox.server import SandboxHandle

KEY = {"x-goog-api-key": "sk-sandbox-test"}


def url(sandbox: SandboxHandle, model: str = "gemini-3-pro-image") -> str:
    return f"{sandbox.base_url.removesuffix('/v1')}/gemini/v1beta/models/{model}:generateContent"


def body(prompt: str, *, image_config: dict | None = None, images: list[bytes] = ()) -> dict:
    parts = [{"text": prompt}] + [
        {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}} for image in images
    ]
    config = {"responseModalities": ["TEXT", "IMAGE"]}
    if image_config:
        config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "teal").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_answer_carries_a_jpeg_in_inline_data_with_text_a_big_signature_and_usage(
    aihubmix_sandbox: SandboxHandle,
) -> None:
    response = httpx.post(
        url(aihubmix_sandbox), headers=KEY, json=body("a fox", image_config={"aspectRatio": "4:3", "imageSize": "2K"})
    )

    assert response.status_code == 200
    candidate = response.json()["candidates"][0]
    text, picture = candidate["content"]["parts"]
    assert candidate["finishReason"] == "STOP" and isinstance(text["text"], str)
    assert len(picture["thoughtSignature"]) > 100_000
    image = Image.open(io.BytesIO(base64.b64decode(picture["inlineData"]["data"])))
    assert (image.format, image.size, picture["inlineData"]["mimeType"]) == ("JPEG", (2400, 1792), "image/jpeg")
    usage = response.json()["usageMetadata"]
    assert {"modality": "IMAGE", "tokenCount": 1120} in usage["candidatesTokensDetails"]
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage[
        "thoughtsTokenCount"]
    assert aihubmix_sandbox.calls["family:gemini"] == 1


def test_an_edit_without_a_ratio_keeps_the_input_images_aspect(aihubmix_sandbox: SandboxHandle) -> None:
    response = httpx.post(url(aihubmix_sandbox, "gemini-3.1-flash-image"), headers=KEY,
                          json=body("night", images=[png((64, 128))]))

    data = response.json()["candidates"][0]["content"]["parts"][1]["inlineData"]["data"]
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (720, 1440)
    assert response.json()["usageMetadata"]["promptTokensDetails"][1] == {"modality": "IMAGE", "tokenCount": 560}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer sk-sandbox-test"}, {"x-goog-api-key": "sk-no"}])
def test_the_route_wants_the_goog_key_header_not_a_bearer_token(aihubmix_sandbox: SandboxHandle, headers) -> None:
    response = httpx.post(url(aihubmix_sandbox), headers=headers, json=body("a fox"))

    assert response.status_code == 401
    assert aihubmix_sandbox.calls["unauthorized"] == 1 and aihubmix_sandbox.calls["gemini"] == 0


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("[fault:moderated]", lambda answer: answer["candidates"][0]["finishReason"] == "IMAGE_SAFETY"),
        ("[fault:prompt-blocked]", lambda answer: answer["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
         and "candidates" not in answer),
        ("[fault:no-image]", lambda answer: [list(part) for part in answer["candidates"][0]["content"]["parts"]]
         == [["text", "thoughtSignature"]]),
    ],
)
def test_safety_and_refusals_answer_200_without_an_image(aihubmix_sandbox: SandboxHandle, marker, expected) -> None:
    response = httpx.post(url(aihubmix_sandbox), headers=KEY, json=body(f"a fox {marker}"))

    assert response.status_code == 200 and expected(response.json())
    assert "inlineData" not in response.text


def test_the_other_markers_act_as_on_every_route(aihubmix_sandbox: SandboxHandle) -> None:
    response = httpx.post(url(aihubmix_sandbox), headers=KEY, json=body("a fox [fault:429]"))

    assert (response.status_code, response.headers["retry-after"]) == (429, "1")


def test_seedream_5_refuses_1k_and_4k_and_draws_3k(aihubmix_sandbox: SandboxHandle) -> None:
    path = f"{aihubmix_sandbox.base_url}/models/doubao/doubao-seedream-5.0-lite/predictions"
    auth = {"Authorization": "Bearer sk-sandbox-test"}

    refused = httpx.post(path, headers=auth, json={"input": {"prompt": "a fox", "size": "4K"}})
    drawn = httpx.post(path, headers=auth, json={"input": {"prompt": "a fox", "size": "3K"}})

    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "size_not_supported")
    image = Image.open(io.BytesIO(httpx.get(drawn.json()["output"][0]["url"]).content))
    assert image.size == (3072, 3072)


def test_gpt_image_2_answers_the_object_shape_with_usage(aihubmix_sandbox: SandboxHandle) -> None:
    response = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/openai/gpt-image-2/predictions",
        headers={"Authorization": "Bearer sk-sandbox-test"},
        json={"input": {"prompt": "a fox", "n": 2, "size": "1024x1536", "quality": "high"}},
    )

    answer = response.json()
    assert answer["output"]["urls"] == [] and [item["mimeType"] for item in answer["output"]["b64_json"]] == [
        "png", "png"]
    assert Image.open(io.BytesIO(base64.b64decode(answer["output"]["b64_json"][1]["bytesBase64"]))).size == (
        1024, 1536)
    assert answer["usage"]["output_tokens_details"] == {"image_tokens": 8320, "text_tokens": 0}
