"""Run the real web server and django-q2 cluster as child processes against the test database."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def test_database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_environment(*, sandbox, media_root: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": test_database_url(),
        "MEDIA_ROOT": str(media_root),
        "AIHUBMIX_API_KEY": settings.AIHUBMIX_API_KEY,
        "AIHUBMIX_BASE_URL": sandbox.base_url,
        "AIHUBMIX_TASKS_URL": sandbox.tasks_url,
        "OUTPUT_FETCH_ALLOW_PRIVATE": "true",
        "FORWARD_BACKOFF_BASE_SECONDS": "0.2",
        "Q_CLUSTER_NAME": f"test-{os.getpid()}-{free_port()}",
        "Q_WORKERS": "1",
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@contextmanager
def process(args: list[str], *, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as output:
        child = subprocess.Popen(args, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                 start_new_session=True)
        try:
            yield child
        finally:
            kill(child, signal.SIGKILL)  # tests have asserted what they need; no graceful drain


def kill(child: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    if child.poll() is None:
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=5)


def qcluster(*, env: dict[str, str], log: Path):
    return process([str(BIN / "python"), "manage.py", "qcluster"], env=env, log=log)


def gunicorn(*, env: dict[str, str], port: int, log: Path):
    return process(
        [str(BIN / "gunicorn"), "project.asgi", "--worker-class", "uvicorn_worker.UvicornWorker",
         "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env={"DATABASE_POOL": "true", **env},
        log=log,
    )


def wait_http(url: str, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def wait_until(predicate, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def forwarder(*, env: dict[str, str], log: Path, concurrency: int | None = None):
    args = [str(BIN / "python"), "manage.py", "forwarder"]
    if concurrency:
        args += ["--concurrency", str(concurrency)]
    return process(args, env=env, log=log)
