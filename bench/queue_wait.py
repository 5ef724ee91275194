#!/usr/bin/env python
"""How long a generation waits in the queue on the zero-setup default (SQLite, as `make run` starts it), with the
local wake-up sockets and with the poll they replaced, next to a direct upstream call in the same run.

Starts the AIHubMix sandbox in its own process (`--latency L`, 1 s by default), submits generations one at a time
through the real submit service (this process stands in for the web process: the notice goes out on commit), and
runs one forwarder process per mode (`manage.py forwarder`, as the Procfile does):

- poll:   NOTIFY_LOCAL_SOCKETS=false — the forwarder finds work on its next FORWARD_POLL_SECONDS tick (the old way),
- local:  the default — the submit's commit wakes the forwarder through its datagram socket.

For each it prints the queue wait (started_at − created_at) and end to end (finished_at − created_at) as
p50/p95/max, and end to end over the direct call (a bare httpx POST to the same sandbox route).
Goals (issue 21): queue wait p50 ≤ 0.1 s; end to end ≤ 1.2 × the direct call at a 1 s upstream.

    .venv/bin/python bench/queue_wait.py [--generations 20] [--latency 1]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):6.3f}  p95 {p95:6.3f}  max {ordered[-1]:6.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-qwait-"))
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"  # the default's engine, always
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["NOTIFY_SOCKET_DIR"] = str(workdir / "notify")
    os.environ["OUTPUT_FETCH_ALLOW_PRIVATE"] = "true"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    os.environ["AIHUBMIX_BASE_URL"] = base_url
    os.environ["AIHUBMIX_TASKS_URL"] = f"{base_url}/tasks"
    os.environ["AIHUBMIX_API_KEY"] = "bench"

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)

    import httpx

    from accounts.services import SYSTEM, api_key_create, tenant_create
    from billing.services.prices import price_set
    from billing.services.wallets import billing_account_open
    from generations.models import Generation
    from generations.services.submit import GenerationRequest, generation_submit

    model, body = "openai/gpt-image-2", {"quality": "low", "size": "1024x1024"}
    price_set(model_id=model, quality="low", size="1024x1024", cost_micros=6_000, actor=SYSTEM)
    tenant = tenant_create(slug="bench", name="Bench")
    billing_account_open(tenant=tenant, plan=None, opening_credit_micros=1_000_000_000)
    api_key = api_key_create(tenant=tenant, name="bench").api_key

    sandbox = subprocess.Popen(
        [PYTHON, "manage.py", "aihubmix_sandbox", "--port", str(port), "--latency", str(args.latency)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        for _ in range(200):
            try:
                httpx.get(f"http://127.0.0.1:{port}/_sandbox/stats", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        direct = []
        with httpx.Client(timeout=60, headers={"Authorization": "Bearer bench"}) as client:
            for index in range(args.generations):
                started = time.monotonic()
                client.post(f"{base_url}/models/{model}/predictions",
                            json={"input": {"prompt": f"direct {index}", "n": 1, **body}}).raise_for_status()
                direct.append(time.monotonic() - started)

        for mode in ("poll", "local"):
            log = workdir / f"forwarder-{mode}.log"
            env = {**os.environ, "NOTIFY_LOCAL_SOCKETS": "true" if mode == "local" else "false"}
            with log.open("wb") as output:
                forwarder = subprocess.Popen([PYTHON, "manage.py", "forwarder"], cwd=ROOT, env=env, stdout=output,
                                             stderr=subprocess.STDOUT)
            try:
                while "forwarder running" not in log.read_text():
                    if forwarder.poll() is not None:
                        raise SystemExit(f"forwarder exited:\n{log.read_text()[-3000:]}")
                    time.sleep(0.01)
                time.sleep(1.5)  # past its first claim and listener start: measure the steady state
                waits, totals = [], []
                os.environ["NOTIFY_LOCAL_SOCKETS"] = env["NOTIFY_LOCAL_SOCKETS"]
                from django.conf import settings

                settings.NOTIFY_LOCAL_SOCKETS = mode == "local"
                for index in range(args.generations):
                    time.sleep(0.137)  # not in step with the forwarder's poll tick
                    generation = generation_submit(
                        tenant=tenant, api_key=api_key,
                        request=GenerationRequest(model=model, prompt=f"{mode} {index}", **body),
                    ).generation
                    while True:
                        row = Generation.objects.get(pk=generation.pk)
                        if row.finished_at is not None:
                            break
                        time.sleep(0.005)
                    if row.status != "succeeded":
                        raise SystemExit(f"{mode}: generation {row.public_id} ended {row.status} ({row.error_code})")
                    waits.append((row.started_at - row.created_at).total_seconds())
                    totals.append((row.finished_at - row.created_at).total_seconds())
                results[mode] = (waits, totals)
            finally:
                forwarder.terminate()
                forwarder.wait(timeout=30)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    base = statistics.median(direct)
    print(f"\n{args.generations} generations one at a time, {args.latency:g} s upstream latency, SQLite, "
          f"one forwarder process")
    print(f"{'direct call (baseline)':28s} end to end {percentiles(direct)}")
    for mode, (waits, totals) in results.items():
        label = {"poll": "poll (NOTIFY_LOCAL_SOCKETS=false)", "local": "local wake-up sockets"}[mode]
        print(f"{label:34s} queue wait  {percentiles(waits)}")
        print(f"{'':34s} end to end  {percentiles(totals)}   p50 / direct p50: "
              f"{statistics.median(totals) / base:.2f}")
    print("goals: queue wait p50 ≤ 0.1 s, end to end ≤ 1.2 × the direct call")


if __name__ == "__main__":
    main()
