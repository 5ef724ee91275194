"""POST /v1/generations: validation, pricing, quotas and idempotency, before any worker runs."""

import base64
import hashlib
import io
import threading

import pytest
from django.db import connection
from PIL import Image

from billing.models import LedgerEntry
from generations.models import Generation, IdempotencyRecord
from tests.generations.images_support import png_data_url
from tests.generations.support import LOW_SQUARE, nothing_changed

pytestmark = pytest.mark.django_db


def test_submit_queues_and_holds_the_estimate(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat", "n": 3}, format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["id"].startswith("gen_") and body["status"] == "queued" and body["images"] == []
    assert body["unit_price_usd"] == "0.007200" and body["estimated_usd"] == "0.021600"
    assert customer.wallet().held_micros == 21_600
    assert customer.ledger(body["id"]) == [("hold", 21_600)]


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"model": "no-such-model"}, "model"),
        ({"size": "17x17"}, "size"),
        ({"quality": "ultra"}, "quality"),
        ({"n": 0}, "n"),
        ({"prompt": ""}, "prompt"),
        ({"params": {"bogus": 1}}, "params.bogus"),
        ({"input_images": ["data:image/png;base64,!!!"]}, "input_images[0]"),
        ({"input_images": ["data:image/png;base64," + base64.b64encode(b"not an image").decode()]}, "input_images[0]"),
        ({"mask": png_data_url()}, "mask"),  # a mask without an image to edit
    ],
)
def test_bad_input_is_400_naming_the_field_and_charges_nothing(make_customer, overrides, param) -> None:
    customer = make_customer()
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat", **overrides}, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["param"] == param
    assert nothing_changed(customer)


def test_model_without_a_price_cannot_be_submitted(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {"model": "qianfan/irag-1.0", "prompt": "a cat"}  # the one model without a published price, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "model_not_priced"
    assert nothing_changed(customer)


def test_insufficient_credit_is_402_and_changes_nothing(make_customer) -> None:
    customer = make_customer(credit_micros=5_000)
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json")
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_credit"
    assert nothing_changed(customer)


def test_edit_accepts_data_url_and_multipart_upload(make_customer) -> None:
    customer = make_customer()
    json_response = customer.client.post(
        "/v1/generations",
        {**LOW_SQUARE, "prompt": "make it red", "input_images": [png_data_url()]},
        format="json",
    )
    assert json_response.status_code == 202, json_response.json()
    assert json_response.json()["operation"] == "edit"

    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, "PNG")
    buffer.name = "in.png"
    buffer.seek(0)
    multipart = customer.client.post(
        "/v1/generations",
        {"model": LOW_SQUARE["model"], "quality": "low", "size": "1024x1024", "prompt": "blue", "input_images": buffer},
        format="multipart",
    )
    assert multipart.status_code == 202, multipart.json()
    generation = Generation.objects.get(public_id=multipart.json()["id"])
    assert generation.operation == "edit" and generation.input_images.count() == 1


def test_an_edits_input_images_are_listed_on_the_generation(make_customer) -> None:
    customer = make_customer()
    image, mask = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (48, 32), "red").save(image, "PNG")
    Image.new("RGBA", (48, 32), (0, 0, 0, 0)).save(mask, "PNG")
    image_bytes, mask_bytes = image.getvalue(), mask.getvalue()
    image.name, mask.name = "in.png", "mask.png"
    image.seek(0)
    mask.seek(0)
    submitted = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "blue", "input_images": image, "mask": mask}, format="multipart",
    )
    assert submitted.status_code == 202, submitted.json()

    read = customer.client.get(f"/v1/generations/{submitted.json()['id']}").json()

    assert read["input_images"] == submitted.json()["input_images"] == [
        {"index": 0, "role": "image", "content_type": "image/png", "width": 48, "height": 32,
         "bytes": len(image_bytes), "sha256": hashlib.sha256(image_bytes).hexdigest()},
        {"index": 1, "role": "mask", "content_type": "image/png", "width": 48, "height": 32,
         "bytes": len(mask_bytes), "sha256": hashlib.sha256(mask_bytes).hexdigest()},
    ]
    listed = customer.client.get("/v1/generations").json()["results"]
    assert [entry["input_images"] for entry in listed] == [read["input_images"]]
    generated = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json").json()
    assert generated["input_images"] == []
    schema = customer.client.get("/v1/schema/?format=json").json()["components"]["schemas"]
    assert "input_images" in schema["Generation"]["properties"]
    assert set(schema["GenerationInputImage"]["properties"]) == set(read["input_images"][0])


def test_idempotent_replay_returns_the_same_generation_and_holds_once(make_customer) -> None:
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "a cat"}
    first = customer.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    second = customer.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert Generation.objects.filter(tenant=customer.tenant).count() == 1
    assert LedgerEntry.objects.filter(tenant=customer.tenant, kind="hold").count() == 1


def test_idempotency_key_with_a_different_body_is_422(make_customer) -> None:
    customer = make_customer()
    customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json",
                         HTTP_IDEMPOTENCY_KEY="order-2")
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a dog"}, format="json",
                                    HTTP_IDEMPOTENCY_KEY="order-2")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Generation.objects.filter(tenant=customer.tenant).count() == 1


def test_idempotency_key_with_a_different_cancel_after_is_422(make_customer) -> None:
    """Cancel-After changes what is created (a deadline): the same key with another one is another request."""
    customer = make_customer()
    body = {**LOW_SQUARE, "prompt": "a cat"}
    first = customer.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-3",
                                 HTTP_CANCEL_AFTER="30s")
    assert first.status_code == 202, first.json()
    for headers in ({"HTTP_CANCEL_AFTER": "60s"}, {}):
        response = customer.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-3",
                                        **headers)
        assert response.status_code == 422, response.json()
        assert response.json()["error"]["code"] == "idempotency_key_reused"
    again = customer.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="order-3",
                                 HTTP_CANCEL_AFTER="30s")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["deadline_at"] == first.json()["deadline_at"]
    assert Generation.objects.filter(tenant=customer.tenant).count() == 1
    assert LedgerEntry.objects.filter(tenant=customer.tenant, kind="hold").count() == 1


def test_idempotency_keys_are_per_tenant(make_customer) -> None:
    first, second = make_customer("one"), make_customer("two")
    body = {**LOW_SQUARE, "prompt": "a cat"}
    a = first.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    b = second.client.post("/v1/generations", body, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert a.status_code == b.status_code == 202 and a.json()["id"] != b.json()["id"]


def test_refused_request_does_not_burn_the_idempotency_key(make_customer) -> None:
    customer = make_customer(credit_micros=5_000)
    body = {**LOW_SQUARE, "prompt": "a cat"}
    assert customer.client.post("/v1/generations", body, format="json",
                                HTTP_IDEMPOTENCY_KEY="k").status_code == 402
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_request_in_flight_with_the_same_key_is_409(make_customer) -> None:
    from generations.services.idempotency import _lock_key

    customer = make_customer()
    holding, release = threading.Event(), threading.Event()

    def first_request_in_flight() -> None:
        from django.db import connection as thread_connection
        from django.db import transaction

        with transaction.atomic():
            with thread_connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_key(tenant=customer.tenant, key="slow")])
            holding.set()
            release.wait(10)
        thread_connection.close()

    thread = threading.Thread(target=first_request_in_flight)
    thread.start()
    assert holding.wait(10)
    try:
        response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "a cat"}, format="json",
                                        HTTP_IDEMPOTENCY_KEY="slow")
    finally:
        release.set()
        thread.join()
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"
    assert connection.vendor == "postgresql"


def test_other_tenants_generations_are_404_and_never_listed(make_customer) -> None:
    owner, stranger = make_customer("owner"), make_customer("stranger")
    created = owner.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "secret"}, format="json").json()
    for path in (f"/v1/generations/{created['id']}", f"/v1/generations/{created['id']}/images/0"):
        response = stranger.client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert stranger.client.post(f"/v1/generations/{created['id']}/cancel").status_code == 404
    assert stranger.client.get("/v1/generations").json()["results"] == []
    assert Generation.objects.get(public_id=created["id"]).status == "queued"


def test_list_filters_and_paginates(make_customer) -> None:
    customer = make_customer()
    ids = [
        customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": f"p{i}"}, format="json").json()["id"]
        for i in range(5)
    ]
    customer.client.post(f"/v1/generations/{ids[0]}/cancel")
    page = customer.client.get("/v1/generations?limit=2").json()
    seen = [item["id"] for item in page["results"]]
    while page["next"]:
        page = customer.client.get(page["next"]).json()
        seen += [item["id"] for item in page["results"]]
    assert seen == list(reversed(ids))
    canceled = customer.client.get("/v1/generations?status=canceled").json()["results"]
    assert [item["id"] for item in canceled] == [ids[0]]
    by_key = customer.client.get(f"/v1/generations?api_key={customer.key.api_key.prefix}").json()["results"]
    assert len(by_key) == 5
    assert customer.client.get("/v1/generations?status=bogus").status_code == 400
    assert customer.client.get("/v1/generations?created_after=not-a-date").status_code == 400


def test_an_oversized_body_is_413_in_the_api_error_shape(make_customer, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
    customer = make_customer()
    huge = "data:image/png;base64," + "A" * 2_000_000
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "x", "input_images": [huge]}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert nothing_changed(customer)


def test_input_image_over_the_byte_cap_is_refused(make_customer, settings) -> None:
    settings.INPUT_IMAGE_MAX_BYTES = 1000
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "x", "input_images": [png_data_url(400, 400)]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "input_image_too_large"
    assert response.json()["error"]["param"] == "input_images[0]"
    assert nothing_changed(customer)


def test_malformed_json_is_400_in_the_api_error_shape(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post("/v1/generations", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"
    assert nothing_changed(customer)


@pytest.mark.parametrize("cursor", ["cD0yMDIw", "not-base64!!", "cD1ub3QtYS1kYXRl", "bz0tNSZwPTIwMjA="])
def test_forged_or_garbage_cursors_are_400_invalid_cursor(make_customer, cursor) -> None:
    customer = make_customer()
    response = customer.client.get(f"/v1/generations?cursor={cursor}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_cursor"


def test_an_unusable_prefer_wait_is_ignored_as_rfc_7240_says(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "x"}, format="json", HTTP_PREFER="wait=" + "9" * 5000
    )
    assert response.status_code == 202 and "Preference-Applied" not in response
    assert customer.ledger(response.json()["id"]) == [("hold", 7_200)]


def test_non_finite_numbers_in_params_are_refused(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations",
        {"model": LOW_SQUARE["model"], "quality": "low", "size": "1024x1024", "prompt": "x",
         "params": '{"moderation": NaN}'},
        format="multipart",
    )
    assert response.status_code == 400
    # Not JSON (NaN is not a JSON number), so not an object either.
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == ("validation_error", "params")
    assert nothing_changed(customer)


def test_form_encoded_params_are_parsed_and_validated(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations",
        {**LOW_SQUARE, "prompt": "x", "params": '{"background": "bogus"}'},
        format="multipart",
    )
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
        "invalid_parameter", "params.background")


def test_a_refused_edit_leaves_no_input_files_behind(make_customer, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    customer = make_customer(credit_micros=5_000)
    response = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "x", "input_images": [png_data_url()]}, format="json"
    )
    assert response.status_code == 402
    assert not [path for path in (tmp_path / "media").rglob("*") if path.is_file()]
