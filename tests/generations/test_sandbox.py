"""The sandbox speaks AIHubMix's wire shapes, counts calls, and stands up from its management command."""

import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from generations.sandbox.server import SandboxHandle, fault_parse, start_sandbox

AUTH = {"Authorization": "Bearer sk-sandbox-test"}


def test_fault_markers_parse_into_a_kind_and_an_optional_count() -> None:
    assert fault_parse("a cat [fault:429]") == ("429", None)
    assert fault_parse("a cat [fault:500x2]") == ("500", 2)
    assert fault_parse("a cat [fault:429-twice]") == ("429", 2)
    assert fault_parse("a cat [fault:not-image]") == ("not-image", None)
    assert fault_parse("a cat") == (None, None)


def test_predictions_answer_output_urls_that_the_sandbox_serves(aihubmix_sandbox: SandboxHandle) -> None:
    response = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/qianfan/irag-1.0/predictions",
        headers=AUTH,
        json={"input": {"prompt": "a red fox", "n": 2, "size": "768x1024"}},
    )

    urls = [item["url"] for item in response.json()["output"]]
    image = httpx.get(urls[1])

    assert response.status_code == 200 and len(urls) == 2
    assert (image.status_code, image.headers["content-type"]) == (200, "image/png")
    assert aihubmix_sandbox.calls["predictions"] == 1
    assert aihubmix_sandbox.calls["model:qianfan/irag-1.0"] == 1
    assert aihubmix_sandbox.calls["files"] == 1


def test_imagen_makes_four_images_when_not_told_otherwise_like_the_upstream(
    aihubmix_sandbox: SandboxHandle,
) -> None:
    response = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/google/imagen-4.0-generate-001/predictions",
        headers=AUTH,
        json={"input": {"prompt": "a red fox"}},
    )
    assert len(response.json()["output"]) == 4


def test_async_tasks_stay_pending_for_the_latency(aihubmix_sandbox: SandboxHandle) -> None:
    aihubmix_sandbox.latency = 0.3
    submitted = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/bfl/flux-2-pro/predictions",
        headers=AUTH,
        json={"input": {"prompt": "a red fox", "aspect_ratio": "1:1"}},
    )
    task_id = submitted.json()["output"][0]["taskId"]

    first = httpx.get(f"{aihubmix_sandbox.tasks_url}/{task_id}", headers=AUTH).json()
    time.sleep(0.35)
    later = httpx.get(f"{aihubmix_sandbox.tasks_url}/{task_id}", headers=AUTH).json()

    assert first["status"] == "Pending"
    assert later["status"] == "Ready" and later["result"]["sample"].startswith("http://")
    assert (aihubmix_sandbox.calls["tasks.submit"], aihubmix_sandbox.calls["tasks.poll"]) == (1, 2)


def test_many_slow_requests_are_served_at_once(aihubmix_sandbox: SandboxHandle) -> None:
    aihubmix_sandbox.latency = 0.5

    def one(index: int) -> int:
        return httpx.post(
            f"{aihubmix_sandbox.base_url}/images/generations",
            headers=AUTH,
            timeout=30,
            json={"model": "wan2.6-t2i", "prompt": f"fox {index}", "size": "64x64"},
        ).status_code

    with ThreadPoolExecutor(max_workers=60) as pool:
        statuses = list(pool.map(one, range(60)))

    assert statuses == [200] * 60
    assert aihubmix_sandbox.calls["images.generations"] == 60


def test_the_management_command_serves_until_stopped() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "manage.py", "aihubmix_sandbox", "--port", str(port), "--api-key", "sk-cli"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = process.stdout.readline()
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/images/generations",
            json={"prompt": "x", "model": "m"},
            headers={"Authorization": "Bearer sk-cli"},
            timeout=10,
        )
        refused = httpx.post(
            f"http://127.0.0.1:{port}/v1/images/generations",
            json={"prompt": "x"},
            headers={"Authorization": "Bearer other"},
            timeout=10,
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert f"127.0.0.1:{port}/v1" in banner
    assert response.status_code == 200 and "data" in response.json()
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_api_key")


def test_a_handle_started_in_process_stops_cleanly() -> None:
    handle = start_sandbox()
    response = httpx.post(
        f"{handle.base_url}/images/generations",
        headers={"Authorization": "Bearer any"},
        json={"model": "gpt-image-1", "prompt": "x", "size": "64x64"},
    )
    handle.stop()
    assert "b64_json" in json.loads(response.content)["data"][0]
