"""Event streams through the real stack (gunicorn's ASGI workers, the forwarder, the AIHubMix sandbox): OpenAI's
`stream: true` with partial images parsed by the official SDK, the native `GET /v1/generations/{id}/events` (partial
images too), resume, the cap, and a client hanging up mid-stream."""

import asyncio
import base64
import io
import json
from pathlib import Path

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


def stored_files(media: Path) -> set[str]:
    return {str(path.relative_to(media)) for path in media.rglob("*") if path.is_file()}


def test_sdk_streams_partial_images_then_the_completed_image_stored_and_charged_once(
    make_customer, stack, aihubmix_sandbox, tmp_path
):
    env, url = stack
    customer = make_customer()
    aihubmix_sandbox.latency = 0.6  # the partials come spaced over it, as the upstream draws
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

    assert [(event.type, getattr(event, "partial_image_index", None)) for event in generated] == [
        ("image_generation.partial_image", 0), ("image_generation.partial_image", 1),
        ("image_generation.completed", None),
    ]
    assert [(event.type, getattr(event, "partial_image_index", None)) for event in edited] == [
        ("image_edit.partial_image", 0), ("image_edit.completed", None),
    ]
    for event in (*generated, *edited):
        image = Image.open(io.BytesIO(base64.b64decode(event.b64_json)))
        image.load()  # every partial is a real image too
        assert (event.size, event.quality, event.output_format) == ("1024x1024", "low", "png")
        assert event.created_at > 0
    for completed in (generated[-1], edited[-1]):
        assert Image.open(io.BytesIO(base64.b64decode(completed.b64_json))).size == (1024, 1024)
        assert completed.usage is not None and completed.usage.output_tokens > 0
    # The upstream was asked in its streaming mode, on OpenAI's routes, exactly so.
    sent = [(request.path, request.json or request.form) for request in aihubmix_sandbox.requests]
    assert sent[0] == ("/v1/images/generations", {
        "model": "gpt-image-2", "prompt": "a red bicycle", "n": 1, "size": "1024x1024", "quality": "low",
        "stream": True, "partial_images": 2,
    })
    assert sent[1][0] == "/v1/images/edits"
    assert {key: sent[1][1][key] for key in ("model", "stream", "partial_images")} == {
        "model": "gpt-image-2", "stream": "true", "partial_images": "1"}
    assert aihubmix_sandbox.calls["images.generations.stream"] == aihubmix_sandbox.calls["images.edits.stream"] == 1

    assert sorted(Generation.objects.values_list("operation", "status")) == [
        ("edit", "succeeded"), ("generate", "succeeded")
    ]
    for generation in Generation.objects.all():
        assert customer.ledger(generation.public_id) == [("hold", LOW_SQUARE_PRICE_MICROS),
                                                         ("capture", LOW_SQUARE_PRICE_MICROS)]
        assert generation.images.count() == 1
        assert generation.usage and generation.usage["output_tokens"] > 0
    assert customer.wallet().balance_micros == 50_000_000 - 2 * LOW_SQUARE_PRICE_MICROS
    # Storage holds the final images and the edit's input, never a partial.
    recorded = {image.storage_key for generation in Generation.objects.all() for image in generation.images.all()}
    recorded |= {image.storage_key for generation in Generation.objects.all() for image in generation.input_images.all()}
    assert stored_files(tmp_path / "media") == recorded and len(recorded) == 3


def test_without_partial_images_a_stream_takes_the_usual_route_and_sends_only_the_completed_event(
    make_customer, stack, aihubmix_sandbox, tmp_path
):
    env, url = stack
    customer = make_customer()
    with forwarder(env=env, log=tmp_path / "fwd.log"), openai.OpenAI(
        api_key=customer.key.secret, base_url=f"{url}/v1", max_retries=0
    ) as client:
        generated = list(client.images.generate(
            model="gpt-image-2", prompt="a red bicycle", size="1024x1024", quality="low", stream=True,
        ))
    assert [event.type for event in generated] == ["image_generation.completed"]
    assert [request.path for request in aihubmix_sandbox.requests] == ["/v1/models/openai/gpt-image-2/predictions"]
    [generation] = Generation.objects.all()
    assert customer.ledger(generation.public_id) == [("hold", LOW_SQUARE_PRICE_MICROS),
                                                     ("capture", LOW_SQUARE_PRICE_MICROS)]


def test_a_client_hanging_up_mid_stream_leaves_a_generation_that_succeeds(make_customer, stack, aihubmix_sandbox,
                                                                          tmp_path):
    env, url = stack
    customer = make_customer()
    aihubmix_sandbox.latency = 3.0
    headers = {"Authorization": f"Bearer {customer.key.secret}"}
    with forwarder(env=env, log=tmp_path / "fwd.log"), httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        with http.stream("POST", "/v1/images/generations",
                         json={**LOW_SQUARE, "prompt": "a kite", "stream": True, "partial_images": 2}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            public_id = answer.headers["X-Generation-Id"]  # sent with the first byte, before the image exists
            lines: list[str] = []
            stream = answer.iter_lines()
            while not events(lines):
                lines.append(next(stream))
            assert [(name, data["partial_image_index"]) for _, name, data in events(lines)] == [
                ("image_generation.partial_image", 0)]
            assert Generation.objects.get(public_id=public_id).status == "running"
        # hung up after the first partial; the generation goes on
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


def test_native_stream_relays_partial_images_in_order_and_resumes_after_one(
    make_customer, stack, aihubmix_sandbox, tmp_path
):
    env, url = stack
    customer = make_customer()
    aihubmix_sandbox.latency = 1.2
    headers = {"Authorization": f"Bearer {customer.key.secret}", "Accept": "text/event-stream"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
        submitted = http.post("/v1/generations", json={**LOW_SQUARE, "prompt": "a harbour", "partial_images": 2},
                              headers={"Accept": "application/json"})
        assert submitted.status_code == 202, submitted.text
        public_id = submitted.json()["id"]
        with http.stream("GET", f"/v1/generations/{public_id}/events") as answer:
            assert answer.status_code == 200
            stream = answer.iter_lines()
            lines: list[str] = []
            while not events(lines):
                lines.append(next(stream))
            with forwarder(env=env, log=tmp_path / "fwd.log"):
                lines += list(stream)
        got = events(lines)
        assert [(event_id, name) for event_id, name, _ in got] == [
            ("1", "queued"), ("2", "running"), ("10", "partial_image"), ("11", "partial_image"), ("100", "final")]
        for index, (_, _, data) in enumerate(got[2:4]):
            assert (data["id"], data["partial_image_index"]) == (public_id, index)
            Image.open(io.BytesIO(base64.b64decode(data["b64_json"]))).load()
        assert got[4][2]["status"] == "succeeded" and len(got[4][2]["images"]) == 1

        resumed = http.get(f"/v1/generations/{public_id}/events", headers={"Last-Event-ID": "10"})
        assert [(event_id, name) for event_id, name, _ in events(resumed.text.split("\n"))] == [
            ("11", "partial_image"), ("100", "final")]
    assert customer.ledger(public_id) == [("hold", LOW_SQUARE_PRICE_MICROS), ("capture", LOW_SQUARE_PRICE_MICROS)]
    assert Generation.objects.get(public_id=public_id).images.count() == 1


@pytest.mark.postgres
def test_fifty_stream_opens_at_once_all_get_their_stream_with_a_small_pool(make_customer, aihubmix_sandbox, tmp_path):
    """Every open of one tenant takes its wait-slot lock in turn while holding a pooled connection; with more opens
    than connections, those waiting past DATABASE_POOL_TIMEOUT were refused 503 (19 of 50 opened with this pool
    before the opens were gated below the pool). No forwarder: the streams stay open on `queued`."""
    customer = make_customer()
    env = stack_environment(sandbox=aihubmix_sandbox, media_root=tmp_path / "media", DATABASE_POOL_MAX_SIZE="6",
                            DATABASE_POOL_TIMEOUT="0.3")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {customer.key.secret}"}
    with gunicorn(env=env, port=port, log=tmp_path / "web.log"):
        wait_http(f"{url}/healthz")
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            ids = [http.post("/v1/generations", json={**LOW_SQUARE, "prompt": f"burst {index}"}).json()["id"]
                   for index in range(50)]

        async def open_all() -> list[tuple[int, str]]:
            limits = httpx.Limits(max_connections=60)
            async with httpx.AsyncClient(base_url=url, headers={**headers, "Accept": "text/event-stream"},
                                         timeout=30, limits=limits) as client:
                async def one(public_id: str) -> tuple[int, str]:
                    async with client.stream("GET", f"/v1/generations/{public_id}/events") as answer:
                        if answer.status_code != 200:
                            return answer.status_code, (await answer.aread()).decode()[:200]
                        async for line in answer.aiter_lines():
                            if line.startswith("event: "):
                                return 200, line[7:]  # the first event: the stream is open
                    return 0, "ended without an event"

                return await asyncio.gather(*(one(public_id) for public_id in ids))

        assert asyncio.run(open_all()) == [(200, "queued")] * 50
