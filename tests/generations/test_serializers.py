"""The generation body is written out by hand for speed: it must stay exactly what DRF's own field loop renders."""

import base64
import io

import pytest
from django.utils import timezone
from PIL import Image
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from generations.api.serializers import GenerationSerializer
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import generation_post

pytestmark = pytest.mark.django_db


def _png_data_url() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), "teal").save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _both(generation: Generation) -> tuple[dict, dict]:
    request = APIRequestFactory().get("/v1/generations")
    serializer = GenerationSerializer(context={"request": request})
    fresh = Generation.objects.prefetch_related("images").select_related("api_key").get(pk=generation.pk)
    return serializer.to_representation(fresh), serializers.ModelSerializer.to_representation(serializer, fresh)


@pytest.mark.django_db(transaction=True)  # the forwarder's own connections must see the submits
def test_the_written_out_body_equals_drfs_rendering_in_every_state(
    make_customer, roomy_plan, forwarding, settings
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    customer = make_customer(plan=roomy_plan)
    queued = generation_post(customer, webhook="http://127.0.0.1:9/hook", webhook_events_filter=["generation.succeeded"])
    rendered = [_both(Generation.objects.get(public_id=queued["id"]))]  # before the drain below runs it
    succeeded = generation_post(customer, n=2)
    forward_drain()
    failed = Generation.objects.get(public_id=generation_post(customer)["id"])
    failed.status, failed.error_code, failed.error_message = Generation.Status.FAILED, "upstream_error", "It broke."
    failed.finished_at = timezone.now()
    failed.save()
    deleted = Generation.objects.get(public_id=succeeded["id"])
    deleted.pk = None  # a copy of the succeeded one, files deleted, no key
    deleted.public_id, deleted.api_key, deleted.files_deleted_at = "gen_copy", None, timezone.now()
    deleted.requested_model_id = "openai/dall-e-3"
    deleted.save()

    edited = generation_post(customer, input_images=[_png_data_url()])
    rendered += [_both(Generation.objects.get(public_id=public_id))
                 for public_id in (succeeded["id"], failed.public_id, deleted.public_id, edited["id"])]

    for fast, generic in rendered:
        assert fast == generic
        assert list(fast) == list(generic)  # same key order in the JSON
    assert [fast["status"] for fast, _ in rendered] == ["queued", "succeeded", "failed", "succeeded", "queued"]
    assert len(rendered[1][0]["images"]) == 2 and rendered[1][0]["images"][0]["url"]
    assert rendered[2][0]["error"] == {"code": "upstream_error", "message": "It broke."}
    assert rendered[3][0]["api_key"] is None and rendered[3][0]["requested_model"] == "openai/dall-e-3"
    assert [image["role"] for image in rendered[4][0]["input_images"]] == ["image"]


def test_the_submit_answer_is_the_same_body_as_a_later_read(make_customer, roomy_plan, settings) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_TARGETS = True
    customer = make_customer(plan=roomy_plan)
    submitted = generation_post(customer, webhook="http://127.0.0.1:9/hook")

    read = customer.client.get(f"/v1/generations/{submitted['id']}").json()

    assert submitted == read
