#!/usr/bin/env python
"""Submit throughput of the API against a bare Django + DRF insert, side by side in one run. (Over 400 lines: both
servers, the load generator and the report in one script anyone can run.)

Starts two servers under the same gunicorn settings (the Procfile's `web` line unless --workers/--threads/--worker-class
say otherwise) against the same PostgreSQL: the project (worker not running, so only the API is measured) and the
baseline in bench/baseline (one endpoint: one INSERT, 201 JSON). Loads both with the same keep-alive client (wrk,
`apt-get install wrk`), interleaved and repeated, at each connection count, and prints medians of req/s, p50, p99,
CPU ms per request of the server processes and of their PostgreSQL backends (from /proc), and the ratios. A third
load, "spread", sends the project's requests over 200 tenants instead of one hot tenant.

    .venv/bin/python bench/submit.py [--connections 16,32,64] [--duration 10] [--repeats 3] [--workers 2 --threads 1]

Needs PostgreSQL (--pg, default postgres://postgres@127.0.0.1:5432); drops and recreates the databases
--project-db and --baseline-db. Anything else in the environment (CACHE_URL, LOG_LEVEL, Q_BROKER, …) is passed to
the project server unchanged.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
SPREAD_TENANTS = 200
BODY = {"model": "openai/gpt-image-2", "quality": "low", "size": "1024x1024", "prompt": "a lighthouse at dawn"}
TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", default="16,32,64")
    parser.add_argument("--duration", type=int, default=10, help="seconds per load run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load per server first")
    parser.add_argument("--workers", type=int, help="gunicorn workers (default: the Procfile's)")
    parser.add_argument("--threads", type=int, help="gunicorn threads per worker (default: the Procfile's)")
    parser.add_argument("--worker-class", help="gunicorn worker class (default: the Procfile's)")
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--project-db", default="bench_project")
    parser.add_argument("--baseline-db", default="bench_baseline")
    parser.add_argument("--no-spread", action="store_true", help="skip the 200-tenant load")
    parser.add_argument("--json", type=Path, help="also write the raw runs here")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the databases of the previous run (keys in var/bench-keys.json)"
    )
    return parser.parse_args()


# --- Server settings ------------------------------------------------------------------------------------


def procfile_server_settings() -> dict[str, str]:
    """workers, threads and worker class from the Procfile's web line, so the bench follows what is deployed."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    words = shlex.split(line.partition(":")[2])
    found = {"workers": "1", "threads": "1", "worker_class": "sync", "database_pool": "false"}
    if "DATABASE_POOL=true" in words:
        found["database_pool"] = "true"
    for flag, name in (("--workers", "workers"), ("--threads", "threads"), ("--worker-class", "worker_class")):
        if flag in words:
            value = words[words.index(flag) + 1]
            variable = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)  # ${WEB_WORKERS:-4}: the environment's or 4
            found[name] = os.environ.get(variable.group(1), variable.group(2)) if variable else value
    return found


def gunicorn_command(app: str, port: int, settings: dict[str, str]) -> list[str]:
    return [
        str(GUNICORN), app,
        "--bind", f"127.0.0.1:{port}",
        "--workers", settings["workers"],
        "--threads", settings["threads"],
        "--worker-class", settings["worker_class"],
        "--access-logfile", "-",
        "--timeout", "120",
    ]


# --- Databases ------------------------------------------------------------------------------------------


def database_url(pg: str, name: str) -> str:
    return f"{pg.rstrip('/')}/{name}"


def recreate_database(pg: str, name: str) -> None:
    import psycopg

    with psycopg.connect(database_url(pg, "postgres"), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def run(command: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


SEED = """
import json, sys
from accounts.services import SYSTEM, api_key_create, tenant_create
from billing.models import Plan
from billing.services.wallets import billing_account_open

# Every limit set (so the submit path checks them all) but far above what a run can reach; no concurrency
# limit, because without a worker every accepted generation stays in flight.
plan = Plan.objects.create(
    name="bench", markup_bps=2000, max_n=10, max_concurrent=None, images_per_day=2_000_000_000,
    images_per_month=2_000_000_000, monthly_spend_limit_micros=10**15, requests_per_minute=2_000_000_000,
)
keys = []
for index in range(int(sys.argv[1])):
    tenant = tenant_create(slug=f"bench-{index}", name=f"Bench {index}")
    billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=10**13)
    keys.append(api_key_create(tenant=tenant, name="bench").secret)
print(json.dumps(keys))
"""


def project_environment(pg: str, name: str, pool: str = "false") -> dict[str, str]:
    return {
        **os.environ, "DATABASE_URL": database_url(pg, name), "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_POOL": pool,
    }


def baseline_environment(pg: str, name: str, pool: str = "false") -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url(pg, name),
        "DATABASE_POOL": pool,
        "DJANGO_SETTINGS_MODULE": "baseline.settings",
        "PYTHONPATH": str(BENCH),
    }


def prepare_project(pg: str, name: str) -> list[str]:
    recreate_database(pg, name)
    env = project_environment(pg, name)
    run([str(PYTHON), "manage.py", "migrate", "--noinput", "-v0"], env)
    run([str(PYTHON), "manage.py", "createcachetable"], env)
    output = run([str(PYTHON), "manage.py", "shell", "-c", SEED.replace("sys.argv[1]", str(SPREAD_TENANTS + 1))], env)
    return json.loads(output.strip().splitlines()[-1])


def prepare_baseline(pg: str, name: str) -> None:
    recreate_database(pg, name)
    env = baseline_environment(pg, name)
    run([str(PYTHON), "-m", "django", "migrate", "--run-syncdb", "--noinput", "-v0"], env)


# --- Servers and their CPU ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    name: str
    database: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rpartition(")")[2].split()
                except OSError:
                    continue
                if int(fields[1]) == self.process.pid:
                    children.append(int(entry.name))
        return [self.process.pid, *children]

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(name: str, app: str, env: dict[str, str], settings: dict[str, str], database: str) -> Server:
    port = free_port()
    process = subprocess.Popen(
        gunicorn_command(app, port, settings),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(name=name, database=database, port=port, process=process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{name} server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"{server.url}/nothing-here", timeout=1)
        except urllib.error.HTTPError:
            return server
        except OSError:
            time.sleep(0.2)
            continue
        return server
    server.stop()
    sys.exit(f"{name} server did not start")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def postgres_backends(database: str) -> list[int]:
    """PostgreSQL backends serving `database` (titled `postgres: [cluster:] user database host …`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        words = title.split()
        if words[:1] != ["postgres:"]:
            continue
        words = words[2:] if len(words) > 1 and words[1].endswith(":") else words[1:]  # cluster name, if any
        if len(words) >= 2 and words[1] == database:
            pids.append(int(entry.name))
    return pids


# --- Load -----------------------------------------------------------------------------------------------

LUA = """
local keys = {%(keys)s}
local body = %(body)s
local counter = 0
request = function()
  counter = counter + 1
  local headers = {["Content-Type"] = "application/json"}
  if #keys > 0 then
    headers["Authorization"] = "Bearer " .. keys[math.random(#keys)]
  end
  return wrk.format("POST", "/v1/generations", headers, body)
end
"""


def lua_script(directory: Path, name: str, keys: list[str]) -> Path:
    path = directory / f"{name}.lua"
    quoted = ", ".join(json.dumps(key) for key in keys)
    path.write_text(LUA % {"keys": quoted, "body": json.dumps(json.dumps(BODY))})
    return path


@dataclass
class Result:
    target: str
    connections: int
    repeat: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_ms: float
    pg_cpu_ms: float


def _duration_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def load(server: Server, script: Path, *, connections: int, duration: int, wrk_threads: int) -> dict:
    pg_before = {pid: cpu_seconds([pid]) for pid in postgres_backends(server.database)}
    pids = server.pids()
    cpu_before = cpu_seconds(pids)
    output = subprocess.run(
        [
            "wrk", f"-t{min(wrk_threads, connections)}", f"-c{connections}", f"-d{duration}s", "--timeout", "60s",
            "--latency", "-s", str(script), server.url,
        ],
        capture_output=True, text=True, check=True,
    ).stdout
    # Requests wrk gave up on at the end may still be queued in the server: let it finish them (their CPU is
    # counted here) so they do not slow down the next run.
    cpu_after = cpu_seconds(pids)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pids)
        if now - cpu_after < 0.02:
            break
        cpu_after = now
    cpu = cpu_after - cpu_before
    # A backend opened during the run started from zero; one that closed is lost (connections persist here).
    pg = sum(cpu_seconds([pid]) - pg_before.get(pid, 0.0) for pid in postgres_backends(server.database))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", output))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.MULTILINE))
    return {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _duration_ms(latency["50"]),
        "p99_ms": _duration_ms(latency["99"]),
        "errors": errors,
        "cpu_ms": 1000 * cpu / max(requests, 1),
        "pg_cpu_ms": 1000 * pg / max(requests, 1),
    }


def check_answer(server: Server, key: str | None, expected: int) -> None:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        f"{server.url}/v1/generations", data=json.dumps(BODY).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    if status != expected:
        sys.exit(f"{server.name} answered {status}, expected {expected}: {body[:500]!r}")


# --- Report ---------------------------------------------------------------------------------------------


def median(results: list[Result], field: str) -> float:
    return statistics.median(getattr(result, field) for result in results)


def report(results: list[Result], connections: list[int], settings: dict[str, str]) -> None:
    print(
        f"\ngunicorn {settings['workers']} workers × {settings['threads']} threads ({settings['worker_class']}), "
        f"{os.cpu_count()} CPUs; medians of {max(r.repeat for r in results) + 1} interleaved runs each\n"
    )
    header = (
        f"{'conns':>5} {'target':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>10} "
        f"{'pg ms/req':>9} {'errors':>6}"
    )
    print(header)
    print("-" * len(header))
    for count in connections:
        for target in ("project", "baseline", "spread"):
            runs = [r for r in results if r.connections == count and r.target == target]
            if not runs:
                continue
            print(
                f"{count:>5} {target:<9} {median(runs, 'rps'):>8.1f} {median(runs, 'p50_ms'):>8.1f} "
                f"{median(runs, 'p99_ms'):>8.1f} {median(runs, 'cpu_ms'):>10.2f} {median(runs, 'pg_cpu_ms'):>9.2f} "
                f"{sum(r.errors for r in runs):>6}"
            )
    print("\nratios (medians)")
    for count in connections:
        project = [r for r in results if r.connections == count and r.target == "project"]
        baseline = [r for r in results if r.connections == count and r.target == "baseline"]
        spread = [r for r in results if r.connections == count and r.target == "spread"]
        line = (
            f"{count:>5} conns: project/baseline req/s {median(project, 'rps') / median(baseline, 'rps'):.2f} "
            f"(≥ 0.5 wanted), p99 project/baseline {median(project, 'p99_ms') / median(baseline, 'p99_ms'):.2f} "
            f"(≤ 4 wanted), cpu/req {median(project, 'cpu_ms') / median(baseline, 'cpu_ms'):.1f}×"
        )
        if spread:
            line += f", hot/spread req/s {median(project, 'rps') / median(spread, 'rps'):.2f} (≥ 0.5 wanted)"
        print(line)


def main() -> None:
    args = parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    connections = [int(value) for value in args.connections.split(",")]
    settings = procfile_server_settings()
    for name in ("workers", "threads", "worker_class"):
        if getattr(args, name) is not None:
            settings[name] = str(getattr(args, name))

    keys_file = ROOT / "var" / "bench-keys.json"
    if args.reuse and keys_file.exists():
        keys = json.loads(keys_file.read_text())
    else:
        print("preparing databases …", flush=True)
        keys = prepare_project(args.pg, args.project_db)
        prepare_baseline(args.pg, args.baseline_db)
        keys_file.parent.mkdir(exist_ok=True)
        keys_file.write_text(json.dumps(keys))
    # The same interface for both: ASGI when the Procfile serves the project with uvicorn workers, else WSGI.
    interface = "asgi" if "uvicorn" in settings["worker_class"].lower() else "wsgi"
    pool = settings["database_pool"]
    servers = {
        "project": start_server(
            "project", f"project.{interface}", project_environment(args.pg, args.project_db, pool), settings,
            args.project_db,
        ),
        "baseline": start_server(
            "baseline", f"baseline.{interface}", baseline_environment(args.pg, args.baseline_db, pool), settings,
            args.baseline_db,
        ),
    }
    results: list[Result] = []
    try:
        check_answer(servers["project"], keys[0], 202)
        check_answer(servers["baseline"], None, 201)
        with tempfile.TemporaryDirectory() as directory:
            scripts = {
                "project": lua_script(Path(directory), "hot", keys[:1]),
                "baseline": lua_script(Path(directory), "baseline", []),
                "spread": lua_script(Path(directory), "spread", keys[1:]),
            }
            targets = ["project", "baseline"] + ([] if args.no_spread else ["spread"])
            for target in targets:  # warm every worker: imports, connections, caches
                server = servers["baseline" if target == "baseline" else "project"]
                load(server, scripts[target], connections=max(connections), duration=args.warmup,
                     wrk_threads=args.wrk_threads)
            for repeat in range(args.repeats):
                for count in connections:
                    order = targets if repeat % 2 == 0 else targets[::-1]
                    for target in order:
                        server = servers["baseline" if target == "baseline" else "project"]
                        figures = load(server, scripts[target], connections=count, duration=args.duration,
                                       wrk_threads=args.wrk_threads)
                        result = Result(target=target, connections=count, repeat=repeat, **figures)
                        results.append(result)
                        print(
                            f"run {repeat + 1}/{args.repeats} c={count:<3} {target:<8} {result.rps:8.1f} req/s "
                            f"p50 {result.p50_ms:7.1f} ms p99 {result.p99_ms:7.1f} ms "
                            f"cpu {result.cpu_ms:6.2f} ms/req pg {result.pg_cpu_ms:5.2f} ms/req errors {result.errors}",
                            flush=True,
                        )
    finally:
        for server in servers.values():
            server.stop()
    report(results, connections, settings)
    if args.json:
        args.json.write_text(json.dumps([result.__dict__ for result in results], indent=1))


if __name__ == "__main__":
    main()
