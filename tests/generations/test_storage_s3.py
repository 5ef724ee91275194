"""Outputs on S3: django-storages against moto's S3 server over real HTTP (upload, presigned download)."""

import hashlib

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from generations.forwarder import forward_drain
from generations.models import Generation
from tests.generations.support import LOW_SQUARE

pytestmark = pytest.mark.django_db(transaction=True)
BUCKET = "imagegen-test"


@pytest.fixture(scope="session")
def moto_s3_url():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(settings, moto_s3_url, monkeypatch):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_s3_url, **credentials)
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": moto_s3_url,
                "region_name": "us-east-1",
                "access_key": "testing",
                "secret_key": "testing",
                "querystring_expire": 300,
                "default_acl": None,
                "file_overwrite": False,
            },
        },
    }
    return client


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
    keys = sorted(obj["Key"] for obj in s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"])
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
