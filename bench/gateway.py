#!/usr/bin/env python
"""What the gateway adds to an upstream call: the whole stack against the same call made directly.

Starts the AIHubMix sandbox in its own process with a fixed latency, the web tier (gunicorn + uvicorn worker, the
Procfile's command) and one forwarder process. Baseline: the same image request POSTed straight to the sandbox,
timed by the client. Gateway: `POST /v1/generations` with `Prefer: wait` at a steady rate; per generation
finished_at − created_at (the server's clocks: submit committed → image stored and charged) and the client's round
trip. Prints p50/p95 of each and the p50 ratio gateway / direct (goal ≤ 1.2 at 0.5 s latency).

    DATABASE_URL=postgres://…/somedb .venv/bin/python bench/gateway.py [--latency 0.5] [--requests 60] [--rate 4]
        [--web-workers 2] [--broker orm|redis]

The database in DATABASE_URL is migrated and gets a bench tenant (nothing else is touched); without it a throwaway
SQLite file under /tmp is used.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

BODY = {"model": "gpt-image-2", "quality": "low", "size": "1024x1024", "prompt": "a lighthouse at dawn"}
# What the forwarder sends upstream for BODY (gpt-image generations go to the predictions route).
DIRECT_PATH = "/models/openai/gpt-image-2/predictions"
DIRECT_BODY = {"input": {"prompt": "a lighthouse at dawn", "n": 1, "size": "1024x1024", "quality": "low"}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--rate", type=float, default=4.0, help="submits per second")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--broker", choices=["orm", "redis"], default="orm")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def at_rate(count: int, rate: float, call) -> list:
    """`count` calls started `1/rate` apart, each on its own thread (a client waiting does not delay the next)."""
    results: list = [None] * count
    threads = []
    started = time.monotonic()
    for index in range(count):
        delay = started + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

        def run(index: int = index) -> None:
            results[index] = call(index)

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    env = {
        **os.environ,
        "MEDIA_ROOT": str(workdir / "media"),
        "OUTPUT_FETCH_ALLOW_PRIVATE": "true",
        "LOG_LEVEL": "WARNING",
        "Q_BROKER": args.broker,
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    os.environ.update(env)
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([str(BIN / "python"), "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from accounts.services import api_key_create, tenant_create
    from billing.models import Plan
    from billing.services.wallets import billing_account_open

    slug = f"bench-{int(time.time())}"
    plan, _ = Plan.objects.get_or_create(name="bench-gateway", defaults={
        "max_concurrent": None, "max_queued": None, "max_concurrent_waits": None, "requests_per_minute": None,
        "images_per_day": None, "images_per_month": None})
    tenant = tenant_create(slug=slug, name="Gateway bench")
    billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=10_000_000_000)
    key = api_key_create(tenant=tenant, name="bench").secret

    sandbox_port, web_port = free_port(), free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}/v1"
    env.update({
        "AIHUBMIX_API_KEY": "sk-bench",
        "AIHUBMIX_BASE_URL": sandbox_url,
        "AIHUBMIX_TASKS_URL": f"{sandbox_url}/tasks",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    })
    logs = workdir / "logs"
    logs.mkdir()
    children = []

    def start(name: str, command: list[str], extra: dict[str, str] | None = None) -> None:
        output = (logs / f"{name}.log").open("wb")
        children.append(subprocess.Popen(command, cwd=ROOT, env={**env, **(extra or {})}, stdout=output,
                                         stderr=subprocess.STDOUT, start_new_session=True))

    start("sandbox", [str(BIN / "python"), "manage.py", "aihubmix_sandbox", "--port", str(sandbox_port),
                      "--latency", str(args.latency)])
    start("web", [str(BIN / "gunicorn"), "project.asgi", "--worker-class", "uvicorn_worker.UvicornWorker",
                  "--workers", str(args.web_workers), "--bind", f"127.0.0.1:{web_port}"],
          {"DATABASE_POOL": "true"} if "postgres" in env["DATABASE_URL"] else None)
    start("forwarder", [str(BIN / "python"), "manage.py", "forwarder"])
    try:
        wait_http(f"{sandbox_url}/models")
        wait_http(f"http://127.0.0.1:{web_port}/healthz")
        with httpx.Client(timeout=60) as client:
            # warm up both paths (connections, imports, first-request work) outside the measurement
            client.post(f"{sandbox_url}{DIRECT_PATH}", json=DIRECT_BODY, headers={"Authorization": "Bearer sk-bench"})
            client.post(f"http://127.0.0.1:{web_port}/v1/generations", json=BODY,
                        headers={"Authorization": f"Bearer {key}", "Prefer": "wait=30"})

        def direct(_: int) -> float:
            started = time.monotonic()
            response = httpx.post(f"{sandbox_url}{DIRECT_PATH}", json=DIRECT_BODY,
                                  headers={"Authorization": "Bearer sk-bench"}, timeout=60)
            response.raise_for_status()
            return time.monotonic() - started

        def gateway(_: int) -> tuple[float, float]:
            started = time.monotonic()
            response = httpx.post(f"http://127.0.0.1:{web_port}/v1/generations", json=BODY,
                                  headers={"Authorization": f"Bearer {key}", "Prefer": "wait=60"}, timeout=90)
            round_trip = time.monotonic() - started
            body = response.json()
            if response.status_code != 200 or body["status"] != "succeeded":
                raise SystemExit(f"gateway answered {response.status_code}: {body}")
            server = (datetime.fromisoformat(body["finished_at"]) - datetime.fromisoformat(body["created_at"]))
            return server.total_seconds(), round_trip

        def submit_only(_: int) -> float:
            started = time.monotonic()
            response = httpx.post(f"http://127.0.0.1:{web_port}/v1/generations", json=BODY,
                                  headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert response.status_code == 202, response.text
            return time.monotonic() - started

        def quota(_: int) -> float:
            started = time.monotonic()
            httpx.get(f"http://127.0.0.1:{web_port}/v1/quota", headers={"Authorization": f"Bearer {key}"},
                      timeout=60).raise_for_status()
            return time.monotonic() - started

        quota_times = at_rate(min(args.requests, 20), args.rate, quota)
        submit_times = at_rate(min(args.requests, 20), args.rate, submit_only)
        time.sleep(args.latency + 2)  # let those finish before measuring
        direct_times = at_rate(args.requests, args.rate, direct)
        gateway_results = at_rate(args.requests, args.rate, gateway)
    finally:
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    server_times = [result[0] for result in gateway_results]
    round_trips = [result[1] for result in gateway_results]
    database = "PostgreSQL" if "postgres" in env["DATABASE_URL"] else "SQLite"
    print(f"gateway overhead: upstream latency {args.latency:g} s, {args.requests} requests at {args.rate:g}/s, "
          f"{database}, broker {args.broker}, {args.web_workers} web workers, {os.cpu_count()} CPUs")
    rows = [
        ("direct to the sandbox (round trip)", direct_times),
        ("gateway finished − created", server_times),
        ("gateway client round trip (Prefer: wait)", round_trips),
        ("for scale: GET /v1/quota round trip", quota_times),
        ("for scale: submit without waiting (202)", submit_times),
    ]
    for label, values in rows:
        print(f"  {label:42s} p50 {percentile(values, 0.5) * 1000:7.1f} ms   "
              f"p95 {percentile(values, 0.95) * 1000:7.1f} ms   mean {statistics.mean(values) * 1000:7.1f} ms")
    ratio = percentile(server_times, 0.5) / percentile(direct_times, 0.5)
    print(f"  p50 ratio gateway (finished − created) / direct: {ratio:.2f}  (goal ≤ 1.2)")
    print(f"  p50 ratio gateway round trip / direct:           "
          f"{percentile(round_trips, 0.5) / percentile(direct_times, 0.5):.2f}")
    print(f"  logs: {logs}")


if __name__ == "__main__":
    main()
