#!/usr/bin/env python
"""Whether open event streams slow the API for everyone else: another tenant's request latency with and without one
tenant's 50 open native streams (`GET /v1/generations/{id}/events`), in the same run.

Starts the web tier (gunicorn + uvicorn workers, the Procfile's command) and no forwarder, so the streamed
generations stay queued and their streams stay open (each re-reads its generation every NOTIFY_RECHECK_SECONDS and
sends a keep-alive comment every STREAM_KEEPALIVE_SECONDS). Tenant B then makes `--requests` API calls at `--rate`
per second (alternately `GET /v1/generations/{id}` and `GET /v1/quota`), first with no stream open (baseline), then
with tenant A's `--streams` streams open. Prints p50/p95/max of both and the ratios.

    DATABASE_URL=postgres://…/somedb .venv/bin/python bench/streams.py [--streams 50] [--requests 200] [--rate 20]
        [--web-workers 2]

The database in DATABASE_URL is migrated and gets two bench tenants; without it a throwaway SQLite file is used.
"""

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from gateway import at_rate, free_port, wait_http  # noqa: E402

BODY = {"model": "gpt-image-2", "quality": "low", "size": "1024x1024", "prompt": "a lighthouse at dawn"}


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"


class OpenStreams:
    """`count` native streams held open on an event loop in a thread; counts the events and comments received."""

    def __init__(self, base_url: str, key: str, ids: list[str], *, burst: bool = False) -> None:
        self.base_url, self.key, self.ids, self.burst = base_url, key, ids, burst
        self.opened = 0
        self.lines = 0
        self.failures: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: list[asyncio.Future] = []

    async def _one(self, client: httpx.AsyncClient, generation_id: str) -> None:
        async with client.stream("GET", f"/v1/generations/{generation_id}/events") as response:
            if response.status_code != 200:
                self.failures.append(f"{response.status_code} {(await response.aread())[:200]!r}")
                return
            self.opened += 1
            async for _ in response.aiter_lines():
                self.lines += 1

    async def _all(self) -> None:
        limits = httpx.Limits(max_connections=len(self.ids) + 5)
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
        async with httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=None, limits=limits) as client:
            tasks = []
            for generation_id in self.ids:  # opened 20 ms apart, or (--burst) all at once
                tasks.append(asyncio.ensure_future(self._one(client, generation_id)))
                if not self.burst:
                    await asyncio.sleep(0.02)
            await asyncio.gather(*tasks)

    def start(self) -> None:
        self.thread.start()
        self.tasks.append(asyncio.run_coroutine_threadsafe(self._all(), self.loop))

    def stop(self) -> None:
        """Hang up every stream (the client closes its connections), then end the loop."""
        for task in self.tasks:
            task.cancel()
            try:
                task.result(timeout=10)
            except BaseException:
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="tenant B's requests per second")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--burst", action="store_true", help="open all the streams at once, not 20 ms apart")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    env = {
        **os.environ,
        "MEDIA_ROOT": str(workdir / "media"),
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "AIHUBMIX_API_KEY": "sk-bench",
    }
    os.environ.update(env)
    subprocess.run([str(BIN / "python"), "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([str(BIN / "python"), "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True)

    import django

    django.setup()
    from accounts.services import api_key_create, tenant_create
    from billing.models import Plan
    from billing.services.wallets import billing_account_open

    plan, _ = Plan.objects.get_or_create(name="bench-streams", defaults={
        "max_concurrent": None, "max_queued": None, "max_concurrent_waits": None, "requests_per_minute": None,
        "images_per_day": None, "images_per_month": None})
    keys = {}
    for name in ("a", "b"):
        tenant = tenant_create(slug=f"bench-streams-{name}-{int(time.time())}", name=f"Streams bench {name}")
        billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=10_000_000_000)
        keys[name] = api_key_create(tenant=tenant, name="bench").secret

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = (workdir / "web.log").open("wb")
    web = subprocess.Popen(
        [str(BIN / "gunicorn"), "project.asgi", "--worker-class", "uvicorn_worker.UvicornWorker",
         "--workers", str(args.web_workers), "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env={**env, **({"DATABASE_POOL": "true"} if "postgres" in env["DATABASE_URL"] else {})},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    streams: OpenStreams | None = None
    try:
        wait_http(f"{base_url}/healthz")
        with httpx.Client(base_url=base_url, timeout=60) as client:
            def submit(key: str) -> str:
                response = client.post("/v1/generations", json=BODY, headers={"Authorization": f"Bearer {key}"})
                assert response.status_code == 202, response.text
                return response.json()["id"]

            streamed = [submit(keys["a"]) for _ in range(args.streams)]
            own = submit(keys["b"])

        def b_request(index: int) -> float:
            path = f"/v1/generations/{own}" if index % 2 == 0 else "/v1/quota"
            started = time.monotonic()
            httpx.get(f"{base_url}{path}", headers={"Authorization": f"Bearer {keys['b']}"},
                      timeout=60).raise_for_status()
            return time.monotonic() - started

        at_rate(20, args.rate, b_request)  # warm up
        baseline = at_rate(args.requests, args.rate, b_request)

        streams = OpenStreams(base_url, keys["a"], streamed, burst=args.burst)
        opening = time.monotonic()
        streams.start()
        deadline = time.monotonic() + 60
        while streams.opened + len(streams.failures) < args.streams and time.monotonic() < deadline:
            time.sleep(0.01)
        print(f"{args.streams} stream opens{' at once' if args.burst else ', 20 ms apart'}: {streams.opened} opened, "
              f"{len(streams.failures)} refused in {time.monotonic() - opening:.2f} s")
        if streams.opened < args.streams:
            raise SystemExit(f"only {streams.opened}/{args.streams} streams opened: {streams.failures[:3]}")
        time.sleep(2)  # past the openings: measure the steady state
        from django.db import connection

        with connection.cursor() as cursor:  # what the open streams hold of the database (goal: nothing)
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = "
                           "'idle in transaction'" if connection.vendor == "postgresql" else "SELECT 0")
            idle_in_transaction = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = current_database()"
                           if connection.vendor == "postgresql" else "SELECT 0")
            database_connections = cursor.fetchone()[0]
        with_streams = at_rate(args.requests, args.rate, b_request)
        still_open = streams.opened - len(streams.failures)
    finally:
        if streams is not None:
            streams.stop()
        os.killpg(web.pid, signal.SIGTERM)
        try:
            web.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait(timeout=10)

    print(f"\ntenant B: {args.requests} requests at {args.rate:g}/s (GET /v1/generations/{{id}} and GET /v1/quota), "
          f"{args.web_workers} web workers, {env['DATABASE_URL'].split(':')[0]}")
    print(f"{'no streams open (baseline)':32s} {summary(baseline)}")
    print(f"{f'{args.streams} streams of tenant A open':32s} {summary(with_streams)}   "
          f"(still open at the end: {still_open}, lines received: {streams.lines if streams else 0})")
    print(f"database connections of the web tier with the streams open: {database_connections} "
          f"({idle_in_transaction} idle in transaction; the pools keep idle ones)")
    ordered_base, ordered_with = sorted(baseline), sorted(with_streams)
    p95 = lambda values: values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]  # noqa: E731
    print(f"ratio with / without: p50 {statistics.median(ordered_with) / statistics.median(ordered_base):.2f}  "
          f"p95 {p95(ordered_with) / p95(ordered_base):.2f}")


if __name__ == "__main__":
    main()
