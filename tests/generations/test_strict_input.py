"""Input the API refuses cleanly: unknown fields, unknown models in filters, images a model cannot take, and
error messages that never show Python internals or raw upstream structures."""

import base64

import httpx
import pytest

from generations.images import InvalidOutput, image_verify
from generations.providers.base import error_from_response
from tests.generations.images_support import png_data_url
from tests.generations.support import GPT_IMAGE, LOW_SQUARE, nothing_changed

pytestmark = pytest.mark.django_db

INTERNALS = ("<_io", "object at 0x", "{'", "Traceback", "Error(")


def _clean(text: str) -> bool:
    return not any(marker in text for marker in INTERNALS)


def test_an_unknown_top_level_field_is_400_unknown_parameter_and_charges_nothing(make_customer) -> None:
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "a cat", "background": "transparent"}
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_parameter" and error["param"] == "background"
    assert "background" in error["message"] and "params" in error["message"]
    assert nothing_changed(customer)


def test_an_unknown_form_field_is_refused_too(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "a cat", "colour": "red"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"
    assert response.json()["error"]["param"] == "colour"
    assert nothing_changed(customer)


@pytest.mark.parametrize(
    ("path", "body"),
    [("/v1/api-keys", {"name": "k", "scopes": ["all"]}),
     ("/v1/webhook-endpoints", {"url": "https://example.com/hook", "secret": "mine"})],
)
def test_other_create_endpoints_refuse_unknown_fields(admin_client, path, body) -> None:
    response = admin_client.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"


def test_the_model_filter_resolves_aliases_and_refuses_unknown_models(make_customer) -> None:
    customer = make_customer()
    created = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json").json()
    for name in (GPT_IMAGE, "gpt-image-2", "GPT-IMAGE-2"):
        listed = customer.client.get("/v1/generations", {"model": name})
        assert listed.status_code == 200
        assert [item["id"] for item in listed.json()["results"]] == [created["id"]]
    assert customer.client.get("/v1/generations", {"model": "imagen-4.0-generate-001"}).json()["results"] == []
    unknown = customer.client.get("/v1/generations", {"model": "no-such-model"})
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "unknown_model" and unknown.json()["error"]["param"] == "model"


def test_an_input_image_for_a_text_only_model_is_refused_before_any_fetch(make_customer, httpserver, settings):
    settings.OUTPUT_FETCH_ALLOW_PRIVATE = True
    httpserver.expect_request("/cat.png").respond_with_data(b"never fetched", content_type="image/png")
    customer = make_customer()
    body = {"model": "glm-image", "prompt": "a cat", "input_images": [httpserver.url_for("/cat.png")]}
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "operation_not_supported"
    assert httpserver.log == []
    assert nothing_changed(customer)


def test_an_unknown_model_with_an_input_url_is_refused_before_any_fetch(make_customer, httpserver, settings):
    settings.OUTPUT_FETCH_ALLOW_PRIVATE = True
    customer = make_customer()
    body = {"model": "nope", "prompt": "a cat", "input_images": [httpserver.url_for("/cat.png")]}
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_model"
    assert httpserver.log == []


@pytest.mark.parametrize(
    "source",
    ["data:image/png;base64," + base64.b64encode(b"definitely not a png").decode(),
     "data:image/png;base64," + base64.b64encode(base64.b64decode(png_data_url().split(",")[1])[:60]).decode()],
)
def test_an_unreadable_input_image_names_the_problem_without_python_internals(make_customer, source) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "x", "input_images": [source]}, format="json"
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_input_image" and error["param"] == "input_images[0]"
    assert _clean(error["message"]) and "PNG, JPEG or WEBP" in error["message"]
    assert nothing_changed(customer)


def test_an_unreachable_input_url_does_not_leak_connection_details(make_customer, settings) -> None:
    settings.OUTPUT_FETCH_ALLOW_PRIVATE = False
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "x", "input_images": ["https://127.0.0.1/cat.png"]}
    response = customer.client.post("/v1/generations", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "input_image_unreachable"
    assert "127.0.0.1" not in error["message"] and _clean(error["message"])


def test_pillow_messages_never_reach_the_output_error() -> None:
    with pytest.raises(InvalidOutput) as caught:
        image_verify(b"\x89PNG garbage", max_pixels=1000)
    assert caught.value.code == "output_not_image" and _clean(caught.value.message)


@pytest.mark.parametrize(
    ("status", "content", "expected"),
    [
        (400, {"error": {"message": {"detail": "prompt too long"}, "code": {"nested": 1}}}, "prompt too long"),
        (400, {"error": {"message": ["first problem", "second"]}}, "first problem"),
        (422, {"detail": [{"msg": "size is invalid", "loc": ["body", "size"]}]}, "size is invalid"),
        (400, {"error": {"weird": {"a": 1}}}, "The upstream answered HTTP 400 Bad Request."),
        (502, "<html><body>Bad gateway</body></html>", "The upstream answered HTTP 502 Bad Gateway."),
        (400, {"error": "plain words\x00 here"}, "plain words here"),
    ],
)
def test_upstream_error_messages_are_words_never_reprs(status, content, expected) -> None:
    if isinstance(content, str):
        response = httpx.Response(status, text=content, headers={"content-type": "text/html"})
    else:
        response = httpx.Response(status, json=content)
    error = error_from_response(response)
    assert error.message == expected
    assert _clean(error.message) and _clean(str(error.code))
