"""Event streams through the real stack (gunicorn's ASGI workers, the forwarder, the AIHubMix sandbox): OpenAI's
`stream: true` parsed by the official SDK, the native `GET /v1/generations/{id}/events`, resume, the cap, and a client
hanging up mid-stream."""

import base64
import io
import json

import httpx
import openai
import pytest
from PIL import Image

from billing.models import Plan
from generations.models import Generation
from tests.generations.processes import (
    forwarder,
    free_port,
    gunicorn,
    stack_environment,
    wait_http,
    wait_until,
)
from tests.generations.support import LOW_SQUARE, LOW_SQUARE_PRICE_MICROS

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "navy").save(buffer, "PNG")
    return buffer.getvalue()


def events(lines) -> list[tuple[str | None, str, dict]]:
    """(id, event, data) of each SSE event; comment lines are checked to be comments and skipped."""
    found, event_id, name, data = [], None, None, None
    for line in lines:
        if line.startswith(":"):
            continue
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
        elif line == "" and name is not None:
            found.append((event_id, name, data))
            event_id, name, data = None, None, None
    return found


def open_waits(http: httpx.Client) -> int:
    lines = http.get("/v1/quota", headers={"Accept": "application/json"}).json()["limits"]
    return next(line["used"] for line in lines if line["name"] == "concurrent_waits")


@pytest.fixture
def stack(make_customer, aihubmix_sandbox, tmp_path):
    """gunicorn + the sandbox; the forwarder is started by the test (`start_forwarder()`) so it can see `queued`."""
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media", FORWARD_POLL_SECONDS="0.2",
                            STREAM_KEEPALIVE_SECONDS="0.5")
    port = free_port()
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"):
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield env, f"http://127.0.0.1:{port}"


def test_sdk_streams_generate_and_edit_completed_images_stored_and_charged_once(make_customer, stack, tmp_path):
    env, url = stack
    customer = make_customer()
    with forwarder(env=env, log=tmp_path / "fwd.log"), openai.OpenAI(
        api_key=customer.key.secret, base_url=f"{url}/v1", max_retries=0
    ) as client:
        generated = list(client.images.generate(
            model="gpt-image-2", prompt="a red bicycle", size="1024x1024", quality="low", stream=True,
            partial_images=2,
        ))
        edited = list(client.images.edit(
            model="gpt-image-2", image=("input.png", png_bytes(), "image/png"), prompt="add a hat",
            size="1024x1024", quality="low", stream=True, partial_images=1,
        ))

    # The sandbox (like AIHubMix's non-streaming route) sends no partials: only the completed event comes.
    assert [event.type for event in generated] == ["image_generation.completed"]
    assert [event.type for event in edited] == ["image_edit.completed"]
    for event in (generated[0], edited[0]):
        assert Image.open(io.BytesIO(base64.b64decode(event.b64_json))).size == (1024, 1024)
        assert (event.size, event.quality, event.output_format) == ("1024x1024", "low", "png")
        assert event.created_at > 0 and event.usage is not None
    assert sorted(Generation.objects.values_list("operation", "status")) == [
        ("edit", "succeeded"), ("generate", "succeeded")
    ]
    for generation in Generation.objects.all():
        assert customer.ledger(generation.public_id) == [("hold", LOW_SQUARE_PRICE_MICROS),
                                                         ("capture", LOW_SQUARE_PRICE_MICROS)]
        assert generation.images.count() == 1
    assert customer.wallet().balance_micros == 50_000_000 - 2 * LOW_SQUARE_PRICE_MICROS


def test_a_client_hanging_up_mid_stream_leaves_a_generation_that_succeeds(make_customer, stack, aihubmix_sandbox,
                                                                          tmp_path):
    env, url = stack
    customer = make_customer()
    aihubmix_sandbox.latency = 2.0
    headers = {"Authorization": f"Bearer {customer.key.secret}"}
    with forwarder(env=env, log=tmp_path / "fwd.log"), httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        with http.stream("POST", "/v1/images/generations",
                         json={**LOW_SQUARE, "prompt": "a kite", "stream": True, "partial_images": 2}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            public_id = answer.headers["X-Generation-Id"]  # sent with the first byte, before the image exists
            next(answer.iter_lines())
        # hung up; the generation goes on
        assert wait_until(
            lambda: Generation.objects.get(public_id=public_id).status == "succeeded", timeout=30
        ), Generation.objects.get(public_id=public_id).status
        assert customer.ledger(public_id) == [("hold", LOW_SQUARE_PRICE_MICROS), ("capture", LOW_SQUARE_PRICE_MICROS)]
        # the stream's wait slot was given back when it hung up
        assert wait_until(lambda: open_waits(http) == 0, timeout=10)


def test_native_stream_queued_running_final_as_get_resume_and_cap(make_customer, stack, aihubmix_sandbox, tmp_path):
    env, url = stack
    customer = make_customer(plan=Plan.objects.create(name="one-wait", max_concurrent_waits=1))
    aihubmix_sandbox.latency = 1.5
    headers = {"Authorization": f"Bearer {customer.key.secret}", "Accept": "text/event-stream"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        submitted = http.post("/v1/generations", json={**LOW_SQUARE, "prompt": "a lighthouse"},
                              headers={"Accept": "application/json"})
        assert submitted.status_code == 202, submitted.text
        public_id = submitted.json()["id"]
        lines: list[str] = []
        with http.stream("GET", f"/v1/generations/{public_id}/events") as answer:
            assert answer.status_code == 200, answer.read()
            assert answer.headers["content-type"].startswith("text/event-stream")
            stream = answer.iter_lines()
            while not events(lines):
                lines.append(next(stream))
            # the one wait slot is this stream's: another is refused
            refused = http.get(f"/v1/generations/{public_id}/events")
            assert refused.status_code == 429 and refused.headers["Retry-After"]
            assert refused.json()["error"]["code"] == "too_many_streams"
            with forwarder(env=env, log=tmp_path / "fwd.log"):
                lines += list(stream)
        got = events(lines)
        assert wait_until(lambda: open_waits(http) == 0, timeout=10)  # the stream ended and gave its slot back
        assert [(event_id, name) for event_id, name, _ in got] == [("1", "queued"), ("2", "running"),
                                                                   ("100", "final")]
        assert got[0][2] == {"id": public_id, "status": "queued", "queue_position": 0}
        detail = http.get(f"/v1/generations/{public_id}", headers={"Accept": "application/json"}).json()
        final = got[2][2]
        assert final["status"] == "succeeded"
        # the same body as GET, but for the signed URLs' tokens (each signing is fresh)
        strip = lambda body: {**body, "images": [{**i, "url": None} for i in body["images"]]}  # noqa: E731
        assert strip(final) == strip(detail) and len(final["images"]) == 1

        resumed = http.get(f"/v1/generations/{public_id}/events", headers={"Last-Event-ID": "2"})
        assert resumed.status_code == 200
        assert [(event_id, name) for event_id, name, _ in events(resumed.text.split("\n"))] == [("100", "final")]
        bad = http.get(f"/v1/generations/{public_id}/events", headers={"Last-Event-ID": "x"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_last_event_id"
