"""`make run`'s environment (scripts/run-env.sh, sourced by scripts/run.sh): the links in webhook bodies must point
at the web process wherever it listens. Under honcho every process gets its own PORT (web PORT, forwarder
PORT + 100, maintenance PORT + 200: honcho.environ.expand_processes), and the forwarder is the one rendering
webhook bodies, so the settings of *that* process are checked."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs bash and a Python process per case

ROOT = Path(__file__).resolve().parents[1]
HONCHO_PORT_STEP = 100  # forwarder is the second process of the Procfile


def run_env(directory: Path, **given: str) -> dict[str, str]:
    """The environment run-env.sh exports, sourced in `directory` (a checkout's root: its .env is read)."""
    completed = subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{ROOT / "scripts" / "run-env.sh"}"; env -0'],
        cwd=directory, env={"PATH": os.environ["PATH"], **given}, capture_output=True, check=True,
    )
    return dict(item.split("=", 1) for item in completed.stdout.decode().split("\0") if item)


def forwarder_public_base_url(environment: dict[str, str], directory: Path) -> str:
    """settings.PUBLIC_BASE_URL in the forwarder's process: honcho adds .env's values, then its own PORT."""
    if "PUBLIC_BASE_URL=" in ((ROOT / ".env").read_text() if (ROOT / ".env").exists() else ""):
        pytest.skip("this checkout's .env sets PUBLIC_BASE_URL, which the settings would read")
    dotenv = directory / ".env"
    pairs = [line.split("=", 1) for line in dotenv.read_text().splitlines() if "=" in line] if dotenv.exists() else []
    process_env = {**environment, **dict(pairs)}
    process_env["PORT"] = str(int(process_env["PORT"]) + HONCHO_PORT_STEP)
    completed = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.PUBLIC_BASE_URL)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
        env={**process_env, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONPATH": str(ROOT),
             "DJANGO_SECRET_KEY": "test"},
    )
    return completed.stdout.strip()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, "http://127.0.0.1:8000"),
        ({"PORT": "8100"}, "http://127.0.0.1:8100"),
        ({"HOST": "localhost", "PORT": "8100"}, "http://localhost:8100"),
        ({"HOST": "0.0.0.0", "PORT": "8100"}, "http://127.0.0.1:8100"),  # listens everywhere; this machine
        ({"HOST": "::1", "PORT": "8100"}, "http://[::1]:8100"),
        ({"PORT": "8100", "PUBLIC_BASE_URL": "https://images.example.com"}, "https://images.example.com"),
    ],
)
def test_webhook_links_point_at_the_web_process(tmp_path, given, expected) -> None:
    environment = run_env(tmp_path, **given)
    assert forwarder_public_base_url(environment, tmp_path) == expected


def test_dotenv_values_win_as_honcho_gives_them(tmp_path) -> None:
    (tmp_path / ".env").write_text("PORT=8300\n")
    assert forwarder_public_base_url(run_env(tmp_path, PORT="8100"), tmp_path) == "http://127.0.0.1:8300"
    (tmp_path / ".env").write_text("PORT=8300\nPUBLIC_BASE_URL=https://images.example.com\n")
    assert forwarder_public_base_url(run_env(tmp_path, PORT="8100"), tmp_path) == "https://images.example.com"
