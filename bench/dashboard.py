#!/usr/bin/env python
"""The staff dashboard on a month of 1M generations: seconds and queries per page, next to the billing report page
(the baseline: the one money page staff had before the dashboard) in the same run.

Seeds, on PostgreSQL only, a database of its own (dropped and created unless --reuse): 60 tenants with wallets and
two keys each, then N generations spread over the last 30 days (skewed towards a few tenants; 94 % succeeded,
4 % failed under three codes, 1.7 % canceled, the rest queued or running) with their ledger rows (a HOLD each, a
CAPTURE or RELEASE for the settled ones), all by `INSERT … SELECT generate_series` in creation order, as
production writes them (a few minutes for 1M on a shared machine), then ANALYZE. Each page is fetched through Django's test client as a superuser, `--runs` times after one warm-up;
prints the median time and the number of SQL queries.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/dashboard.py [--generations 1000000]
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # dashboard_exact, the baseline's generation figures

DB_NAME = "imagegen_bench_dashboard"
TENANTS = 60
MODELS = [
    ("openai/gpt-image-1", "low", "1024x1024", 11_000),
    ("openai/gpt-image-1", "medium", "1024x1024", 42_000),
    ("openai/gpt-image-1", "high", "1536x1024", 250_000),
    ("google/imagen-4.0-generate-001", "*", "1024x1024", 40_000),
    ("black-forest-labs/flux-1.1-pro", "*", "1024x1024", 40_000),
    ("bytedance/seedream-3", "*", "1024x1024", 30_000),
]


def database_url(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{name}"))


def recreate_database(base: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {name}")


def seed(generations: int) -> None:
    from django.core.management import call_command
    from django.db import connection

    from accounts.services import SYSTEM, api_key_create, tenant_create
    from billing.models import Plan, Wallet
    from billing.services.wallets import billing_account_open

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    alerting = Plan.objects.create(name="alerting", low_balance_threshold_micros=5_000_000, spend_alert_percent=80,
                                   monthly_spend_limit_micros=2_000_000_000)
    tenant_ids, key_ids = [], []
    for index in range(TENANTS):
        tenant = tenant_create(slug=f"tenant-{index:02d}", name=f"Tenant {index}")
        billing_account_open(tenant=tenant, plan=alerting if index % 10 == 0 else None,
                             opening_credit_micros=50_000_000_000, actor=SYSTEM)
        tenant_ids.append(tenant.pk)
        key_ids += [api_key_create(tenant=tenant, name=name).api_key.pk for name in ("app", "batch")]
    models = ", ".join(f"ROW('{m}', '{q}', '{s}', {c})::bench_model" for m, q, s, c in MODELS)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TYPE bench_model AS (model_id text, quality text, size text, cost bigint)")
        # tenant k (1-based, skewed: k ~ T·u²) owns keys 2k-1 and 2k.
        cursor.execute(
            f"""
            INSERT INTO generations_generation (
                public_id, tenant_id, api_key_id, model_id, operation, prompt, negative_prompt, n, size, quality,
                params, upstream_body, upstream_interface, requested_model_id, status, cancel_requested, attempts,
                max_attempts, error_code, error_message, upstream_trace_id, upstream_task_id, upstream_response,
                unknown_outcomes, unit_cost_micros, unit_price_micros, estimate_micros, images_returned,
                charged_micros, upstream_cost_micros, webhook_url, webhook_events_filter, created_at, started_at,
                finished_at, updated_at)
            SELECT 'gen_bench_' || i, (%(tenants)s::bigint[])[t], (%(keys)s::text[])[2 * t - (i %% 2)], (m).model_id, 'generate',
                   'bench', '', n, (m).size, (m).quality, '{{}}', '{{}}', 'openai_compat', '',
                   status, false, 1, 4,
                   CASE WHEN status = 'failed' THEN (ARRAY['upstream_error', 'content_policy', 'timeout'])[1 + i %% 3]
                        WHEN status = 'canceled' THEN 'canceled' ELSE '' END,
                   '', '', '', '', 0, (m).cost, (m).cost * 12 / 10, (m).cost * 12 / 10 * n,
                   CASE WHEN status = 'succeeded' THEN n ELSE 0 END,
                   CASE WHEN status = 'succeeded' THEN (m).cost * 12 / 10 * n END,
                   CASE WHEN status = 'succeeded' THEN (m).cost * n END,
                   '', '[]', created,
                   CASE WHEN status <> 'queued' THEN created + random() * interval '2 seconds' END,
                   CASE WHEN status IN ('succeeded', 'failed', 'canceled')
                        THEN created + interval '2 seconds' + random() * interval '18 seconds' END,
                   created
            FROM (
                SELECT i, 1 + floor({TENANTS} * power(random(), 2))::int AS t,
                       (ARRAY[{models}])[1 + floor(random() * {len(MODELS)})::int] AS m,
                       1 + (i %% 4 = 0)::int AS n,
                       now() - random() * interval '30 days' AS created,
                       CASE WHEN r < 0.94 THEN 'succeeded' WHEN r < 0.98 THEN 'failed' WHEN r < 0.997 THEN 'canceled'
                            WHEN r < 0.999 THEN 'queued' ELSE 'running' END AS status
                FROM (SELECT i, random() AS r FROM generate_series(1, %(count)s) AS i) AS s
            ) AS g
            -- In creation order, as production writes them: a day's rows sit together on disk.
            ORDER BY created
            """,
            {"tenants": tenant_ids, "keys": key_ids, "count": generations},
        )
        print(f"  generations inserted: {time.perf_counter() - started:.1f} s", flush=True)
        cursor.execute(
            """
            INSERT INTO billing_ledgerentry (tenant_id, api_key_id, kind, reference, amount_micros, model_id, quality,
                size, images, unit_cost_micros, unit_price_micros, cost_micros, note, created_at)
            SELECT tenant_id, api_key_id, 'hold', public_id, estimate_micros, model_id, quality, size, n,
                   unit_cost_micros, unit_price_micros, 0, '', created_at
            FROM generations_generation
            UNION ALL
            SELECT tenant_id, api_key_id, CASE WHEN status = 'succeeded' THEN 'capture' ELSE 'release' END, public_id,
                   CASE WHEN status = 'succeeded' THEN charged_micros ELSE estimate_micros END, model_id, quality,
                   size, images_returned, unit_cost_micros, unit_price_micros,
                   CASE WHEN status = 'succeeded' THEN upstream_cost_micros
                        WHEN status = 'failed' AND error_code = 'timeout' THEN unit_cost_micros ELSE 0 END,
                   '', finished_at
            FROM generations_generation WHERE status IN ('succeeded', 'failed', 'canceled')
            ORDER BY 14
            """
        )
        print(f"  ledger inserted: {time.perf_counter() - started:.1f} s", flush=True)
        # The wallets as the ledger leaves them: open holds held, this month's captures counted.
        cursor.execute(
            """
            UPDATE billing_wallet AS w SET held_micros = h.held, open_holds = h.holds,
                month_start = date_trunc('month', now() AT TIME ZONE 'UTC')::date, month_spend_micros = c.spend,
                balance_micros = w.balance_micros - c.total
            FROM (SELECT tenant_id, coalesce(sum(estimate_micros) FILTER (WHERE status IN ('queued', 'running')), 0) AS held,
                         count(*) FILTER (WHERE status IN ('queued', 'running')) AS holds
                  FROM generations_generation GROUP BY tenant_id) AS h,
                 (SELECT tenant_id,
                         coalesce(sum(amount_micros) FILTER (WHERE created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'), 0) AS spend,
                         coalesce(sum(amount_micros), 0) AS total
                  FROM billing_ledgerentry WHERE kind = 'capture' GROUP BY tenant_id) AS c
            WHERE w.tenant_id = h.tenant_id AND w.tenant_id = c.tenant_id
            """
        )
        cursor.execute("DROP TYPE bench_model")
        cursor.execute("ANALYZE")
    print(f"seeded {generations} generations, {Wallet.objects.count()} wallets in {time.perf_counter() - started:.1f} s")


def time_page(client, path: str, runs: int) -> tuple[float, int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    started = time.perf_counter()
    response = client.get(path)  # warm-up: templates, the read cache, PostgreSQL's buffers, the rollup's first write
    first = time.perf_counter() - started
    assert response.status_code == 200, (path, response.status_code)
    seconds = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(path)
            seconds.append(time.perf_counter() - started)
        assert response.status_code == 200
    return first, statistics.median(seconds), len(queries), len(response.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--database", default=DB_NAME, help="the bench's own database (dropped and created)")
    parser.add_argument("--reuse", action="store_true", help="keep the database seeded by an earlier run")
    parser.add_argument("--fresh-rollup", action="store_true", help="drop the daily rollups before the "
                        "rollup pass (its first load then writes them)")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        sys.exit("DATABASE_URL must point at PostgreSQL (any database: the bench creates its own).")
    if not args.reuse:
        recreate_database(base, args.database)
    os.environ["DATABASE_URL"] = database_url(base, args.database)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.test import Client

    from accounts.models import User

    settings.ALLOWED_HOSTS = ["*"]
    if args.reuse:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # the rollup tables of a newer checkout
    else:
        seed(args.generations)
    user = User.objects.filter(email="bench@example.com").first() or User.objects.create_superuser(
        "bench@example.com", "bench"
    )
    client = Client()
    client.force_login(user)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    thirty_days_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 29 * 86400))
    month_by_model = f"start={thirty_days_ago}&end={today}&group_by=model"
    pages = [
        ("billing report (baseline: month to date by day)", "/admin/billing/ledgerentry/report/"),
        ("billing report, 30 days by model", "/admin/billing/ledgerentry/report/?" + month_by_model),
        ("dashboard, 30-day charts", "/admin/"),
        ("dashboard, 90-day charts", "/admin/?days=90"),
        ("tenant page (busiest tenant)", "/admin/dashboard/tenants/tenant-00/"),
    ]
    print(f"{'page':52} {'first s':>8} {'median s':>9} {'queries':>8} {'KB':>6}")
    from unittest import mock

    import dashboard_exact

    import billing.selectors.reports
    import generations.admin.dashboard

    # No rollup: every money figure summed from the ledger rows, every generation figure exact from the generations
    # table (bench/dashboard_exact.py), as before the daily rollups (the baseline's own path).
    with (
        mock.patch.object(billing.selectors.reports, "rollup_span", lambda **_kwargs: None),
        mock.patch.object(generations.admin.dashboard, "generation_figures", dashboard_exact.generation_figures),
    ):
        for name, path in pages:
            first, seconds, queries, size = time_page(client, path, args.runs)
            print(f"{'[no rollup] ' + name:52} {first:8.3f} {seconds:9.3f} {queries:8d} {size / 1024:6.0f}", flush=True)
    if args.fresh_rollup:
        from billing.models import DailyUsage, DailyUsageDay
        from generations.models import DailyGenerationStats, DailyGenerationStatsDay

        for model in (DailyUsage, DailyUsageDay, DailyGenerationStats, DailyGenerationStatsDay):
            model.objects.all().delete()
    for name, path in pages:
        first, seconds, queries, size = time_page(client, path, args.runs)
        print(f"{'[rollup] ' + name:52} {first:8.3f} {seconds:9.3f} {queries:8d} {size / 1024:6.0f}", flush=True)


if __name__ == "__main__":
    main()
