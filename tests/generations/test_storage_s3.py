"""Outputs on S3: django-storages against moto's S3 server over real HTTP (upload, presigned download)."""

import hashlib

import httpx
import pytest

from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import LOW_SQUARE, S3_BUCKET

pytestmark = pytest.mark.django_db(transaction=True)


def test_outputs_are_uploaded_to_s3_and_served_by_presigned_urls(
    make_customer, forwarding, s3_storage, moto_s3_url
) -> None:
    customer = make_customer()
    created = customer.client.post(
        "/v1/generations", {**LOW_SQUARE, "prompt": "to the cloud", "n": 2}, format="json"
    ).json()
    forward_drain()

    generation = customer.client.get(f"/v1/generations/{created['id']}").json()
    assert generation["status"] == "succeeded"
    keys = sorted(obj["Key"] for obj in s3_storage.list_objects_v2(Bucket=S3_BUCKET)["Contents"])
    assert keys == sorted(image.storage_key for image in Generation.objects.get().images.all())
    assert all(key.startswith(f"tenants/{customer.tenant.slug}/generations/") for key in keys)

    for image in generation["images"]:
        assert image["url"].startswith(moto_s3_url) and "Signature" in image["url"]
        fetched = httpx.get(image["url"], timeout=10)
        assert fetched.status_code == 200
        assert hashlib.sha256(fetched.content).hexdigest() == image["sha256"]

    download = customer.client.get(f"/v1/generations/{created['id']}/images/0")
    assert download.status_code == 302 and download["Location"].startswith(moto_s3_url)
    assert httpx.get(download["Location"], timeout=10).status_code == 200
