"""The server: many slow calls at once, the bearer token, the management command, and a clean stop."""

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from aihubmix_sandbox.server import SandboxHandle, start_sandbox

AUTH = {"Authorization": "Bearer sk-sandbox-test"}


@pytest.mark.slow  # sixty half-second calls
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


@pytest.mark.slow
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
        json={"model": "gpt-image-2", "prompt": "x", "size": "64x64"},
    )
    handle.stop()
    assert "b64_json" in json.loads(response.content)["data"][0]
    assert not handle.thread.is_alive()
    with pytest.raises(httpx.ConnectError):  # the port is closed, not merely unanswered
        httpx.get(f"{handle.base_url}/models", timeout=5)
