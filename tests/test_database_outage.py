"""A database outage seen from a load balancer and a client: the web process (gunicorn, the connection pool, its
own PostgreSQL cluster that this test stops) answers every request within about a second while the database is
down — 503 `service_unavailable` with Retry-After, liveness still 200 — and is ready again within 2 s of the
database's return."""

import os
import subprocess
import time

import httpx
import pytest

from tests.generations.outages import own_postgres, postgres_available
from tests.generations.processes import BIN, ROOT, free_port, gunicorn, wait_http

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.slow,
    # Under CI the binaries are there (the PostgreSQL package); missing ones must fail the run, never skip it.
    pytest.mark.skipif(not os.environ.get("CI") and not postgres_available(),
                       reason="PostgreSQL server binaries (initdb, pg_ctl) not installed"),
]

SETUP = """
from accounts.services import api_key_create, tenant_create
from billing.services.wallets import billing_account_open
tenant = tenant_create(slug="outage", name="Outage")
billing_account_open(tenant=tenant, plan=None, opening_credit_micros=10_000_000)
print(api_key_create(tenant=tenant, name="k").secret)
"""


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_answers_stay_fast_during_an_outage_and_readiness_returns_within_two_seconds(tmp_path) -> None:
    with own_postgres() as database:
        env = {
            **os.environ, "DATABASE_URL": database.url, "MEDIA_ROOT": str(tmp_path / "media"),
            "LOG_LEVEL": "WARNING", "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "Q_BROKER": "orm",
            "CACHE_URL": "dbcache://imagegen_cache",
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        _manage(env, "migrate", "--noinput")
        _manage(env, "createcachetable")
        secret = _manage(env, "shell", "-c", SETUP).strip().splitlines()[-1]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        auth = {"Authorization": f"Bearer {secret}"}
        with gunicorn(env=env, port=port, log=tmp_path / "web.log"), httpx.Client(timeout=15) as client:
            wait_http(f"{base}/healthz/live")
            for _ in range(3):  # the pool holds live connections, as after any busy minute
                assert client.get(f"{base}/v1/generations", headers=auth).status_code == 200

            database.stop()
            answers = []
            until = time.monotonic() + 6
            while time.monotonic() < until:
                for method, path in (("GET", "/v1/generations"), ("POST", "/v1/generations"),
                                     ("GET", "/healthz/ready"), ("GET", "/healthz/live")):
                    started = time.monotonic()
                    response = client.request(method, f"{base}{path}", headers=auth,
                                              json={"model": "gpt-image-2", "prompt": "x"})
                    answers.append((path, method, response.status_code, time.monotonic() - started, response))
            api = [a for a in answers if a[0] == "/v1/generations"]
            assert {a[2] for a in api} == {503}, [(a[1], a[2], a[4].text[:200]) for a in api if a[2] != 503]
            assert all(a[4].json()["error"]["code"] == "service_unavailable" for a in api)
            assert all(a[4].headers["Retry-After"] == "5" for a in api)
            # The first request meets the dead pool and waits out its timeout (1 s); the breaker answers the rest.
            slowest = sorted(a[3] for a in answers)
            print(f"outage answers: {len(answers)}, p50 {slowest[len(slowest) // 2]:.3f} s, max {slowest[-1]:.3f} s")
            # Bounds, not speed: a p95 within a second, and nothing near the old 10 s pool wait even on a loaded machine.
            assert slowest[int(len(slowest) * 0.95)] <= 1.0, [(a[0], a[1], round(a[3], 3)) for a in answers if a[3] > 1]
            assert slowest[-1] <= 2.0
            ready = [a for a in answers if a[0] == "/healthz/ready"]
            assert {a[2] for a in ready} == {503}
            assert "PostgreSQL at 127.0.0.1" in ready[-1][4].json()["checks"]["database"]
            assert {a[2] for a in answers if a[0] == "/healthz/live"} == {200}

            database.start()
            back = time.monotonic()
            while client.get(f"{base}/healthz/ready").status_code != 200:
                assert time.monotonic() - back < 10, client.get(f"{base}/healthz/ready").json()
                time.sleep(0.05)
            ready_after = time.monotonic() - back
            print(f"ready {ready_after:.2f} s after the database came back")
            assert ready_after <= 2.0
            assert client.get(f"{base}/v1/generations", headers=auth).status_code == 200
