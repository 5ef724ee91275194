import threading
from collections.abc import Callable

import pytest
from django.db import connections

from billing.models import Plan
from generations.forwarder import forward_drain
from tests.generations.support import S3_BUCKET, Customer, customer_create


@pytest.fixture
def make_customer() -> Callable[..., Customer]:
    return customer_create


@pytest.fixture
def roomy_plan(db: None) -> Plan:
    """The default plan's markup without its concurrency and volume limits."""
    return Plan.objects.create(name="roomy", markup_bps=2000, max_n=10, max_concurrent=None)


@pytest.fixture
def forwarding(settings, tmp_path, aihubmix_sandbox):
    """Real stack below the API: the sandbox over HTTP, files on disk, retries without waiting."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.FORWARD_BACKOFF_BASE_SECONDS = 0.0
    settings.FORWARD_BACKOFF_MAX_SECONDS = 0.0
    return aihubmix_sandbox


@pytest.fixture
def background_forwarder(forwarding):
    """A forwarder in this process: drains whatever the live server queues, until the test ends."""
    stop = threading.Event()

    def run() -> None:
        try:
            while not stop.is_set():
                if not forward_drain().claimed:
                    stop.wait(0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="test-forwarder", daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


@pytest.fixture(scope="session")
def moto_s3_url():
    """moto's S3 server on a thread of this process, for the session."""
    from moto.server import ThreadedMotoServer  # imported only by the tests that use S3

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(settings, moto_s3_url, monkeypatch):
    """Outputs stored through django-storages in a fresh bucket of moto's S3; returns a boto3 client for it."""
    import boto3
    import httpx

    httpx.post(f"{moto_s3_url}/moto-api/reset", timeout=10).raise_for_status()  # no objects of earlier tests
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_s3_url, **credentials)
    client.create_bucket(Bucket=S3_BUCKET)
    settings.STORAGE_BACKEND = "s3"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": S3_BUCKET,
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
