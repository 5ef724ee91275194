"""DELETE /v1/generations/{id}: files leave storage (filesystem and S3), images answer 410, metadata and money stay."""

from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from billing.models import LedgerEntry
from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.images_support import png_data_url
from tests.generations.support import LOW_SQUARE, LOW_SQUARE_PRICE_MICROS, S3_BUCKET, Customer

pytestmark = pytest.mark.django_db(transaction=True)


def finished_edit(customer: Customer, n: int = 2) -> dict:
    """An edit (so there is an input file too) that ran through the sandbox and succeeded."""
    created = customer.client.post(
        "/v1/generations",
        {**LOW_SQUARE, "prompt": "paint it", "n": n, "input_images": [png_data_url()]},
        format="json",
    )
    assert created.status_code == 202, created.json()
    forward_drain()
    generation = customer.client.get(f"/v1/generations/{created.json()['id']}").json()
    assert generation["status"] == "succeeded"
    return generation


def storage_keys(generation_id: str) -> list[str]:
    row = Generation.objects.get(public_id=generation_id)
    return [image.storage_key for image in row.images.all()] + [i.storage_key for i in row.input_images.all()]


def test_delete_removes_the_files_from_disk_and_images_answer_410(make_customer, forwarding, settings) -> None:
    customer = make_customer()
    generation = finished_edit(customer)
    keys = storage_keys(generation["id"])
    assert len(keys) == 3 and all((Path(settings.MEDIA_ROOT) / key).is_file() for key in keys)
    signed_path = generation["images"][0]["url"].removeprefix("http://testserver")
    assert APIClient().get(signed_path).status_code == 200
    ledger_before = customer.ledger(generation["id"])

    response = customer.client.delete(f"/v1/generations/{generation['id']}")

    assert response.status_code == 204 and response.content == b""
    assert not any((Path(settings.MEDIA_ROOT) / key).exists() for key in keys)
    for path in (f"/v1/generations/{generation['id']}/images/0", f"/v1/generations/{generation['id']}/images/1"):
        gone = customer.client.get(path)
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "gone"
    signed = APIClient().get(signed_path)  # a signed URL handed out before the delete
    assert signed.status_code == 410 and signed.json()["error"]["code"] == "gone"

    # Metadata and money stay.
    kept = customer.client.get(f"/v1/generations/{generation['id']}").json()
    assert kept["status"] == "succeeded" and kept["files_deleted_at"] is not None
    assert kept["charged_usd"] == generation["charged_usd"] == "0.014400"
    assert [(i["sha256"], i["bytes"], i["url"]) for i in kept["images"]] == [
        (i["sha256"], i["bytes"], None) for i in generation["images"]
    ]
    assert customer.ledger(generation["id"]) == ledger_before == [("hold", 2 * LOW_SQUARE_PRICE_MICROS),
                                                                   ("capture", 2 * LOW_SQUARE_PRICE_MICROS)]
    assert customer.wallet().balance_micros == 50_000_000 - 2 * LOW_SQUARE_PRICE_MICROS
    audit = AuditEvent.objects.get(action="generation.files_deleted")
    assert audit.tenant == customer.tenant and audit.actor_api_key_id == customer.key.api_key.id

    # Deleting again is harmless.
    assert customer.client.delete(f"/v1/generations/{generation['id']}").status_code == 204
    assert AuditEvent.objects.filter(action="generation.files_deleted").count() == 1


def test_queued_or_running_generations_cannot_be_deleted(make_customer, forwarding, settings) -> None:
    customer = make_customer()
    created = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "wait"}, format="json").json()

    queued = customer.client.delete(f"/v1/generations/{created['id']}")
    assert queued.status_code == 409 and queued.json()["error"]["code"] == "generation_not_finished"
    Generation.objects.filter(public_id=created["id"]).update(status="running")
    running = customer.client.delete(f"/v1/generations/{created['id']}")
    assert running.status_code == 409 and running.json()["error"]["code"] == "generation_not_finished"
    assert Generation.objects.get().files_deleted_at is None


def test_another_tenants_generation_is_not_found(make_customer, forwarding) -> None:
    owner, stranger = make_customer("owner"), make_customer("stranger")
    generation = finished_edit(owner, n=1)
    response = stranger.client.delete(f"/v1/generations/{generation['id']}")
    assert response.status_code == 404
    assert Generation.objects.get().files_deleted_at is None
    assert owner.client.get(f"/v1/generations/{generation['id']}/images/0").status_code == 200


def test_delete_removes_the_objects_from_s3(make_customer, forwarding, s3_storage, moto_s3_url) -> None:
    customer = make_customer()
    generation = finished_edit(customer)
    keys = storage_keys(generation["id"])
    listed = sorted(obj["Key"] for obj in s3_storage.list_objects_v2(Bucket=S3_BUCKET).get("Contents", []))
    assert listed == sorted(keys) and len(keys) == 3
    presigned = generation["images"][0]["url"]
    assert httpx.get(presigned, timeout=10).status_code == 200

    assert customer.client.delete(f"/v1/generations/{generation['id']}").status_code == 204

    assert s3_storage.list_objects_v2(Bucket=S3_BUCKET).get("Contents", []) == []
    download = customer.client.get(f"/v1/generations/{generation['id']}/images/0")
    assert download.status_code == 410 and download.json()["error"]["code"] == "gone"
    for key in keys:  # gone from the bucket: S3 tells the owner 404
        with pytest.raises(ClientError, match="404"):
            s3_storage.head_object(Bucket=S3_BUCKET, Key=key)
    # So a presigned URL issued before the delete serves nothing. What S3 answers it (403 or 404) depends on the
    # signer's rights and the server: moto says 403 SignatureDoesNotMatch for a missing key.
    assert not httpx.get(presigned, timeout=10).is_success
    assert customer.client.get(f"/v1/generations/{generation['id']}").json()["images"][0]["url"] is None
    assert LedgerEntry.objects.filter(reference=generation["id"], kind="capture").exists()
