"""Which queued generations the forwarder claims next: fair between tenants, and never more running per tenant than
the plan's `max_concurrent`.

Fewest running first: the k-th claimable generation of a tenant with r running ranks r + k, and a claim takes the
lowest ranks (oldest first among equals), so each claim evens out the tenants' running counts — whether it fills one
freed slot or many — and a tenant with 10,000 queued delays another tenant's first generation by at most one claim
round. (Ranking by queue position alone was first come, first served whenever a claim filled a single slot, the
usual case once every slot is busy.) The running cap is applied here (not at submit, which only bounds the queue
depth), inside one claim transaction that holds a transaction-scoped advisory lock, so two forwarder processes can
never both fill the same tenant's last slot.
A generation past its `Cancel-After` deadline is never claimed (the deadline sweep cancels it: deadlines.py).
"""

from datetime import datetime

from django.db import connection

from accounts.models import Tenant
from billing.selectors.limits import tenant_limits, tenants_limit_sql
from generations.models import Generation

# pg_advisory_xact_lock key: an arbitrary constant naming "the claim".
CLAIM_LOCK_KEY = 0x6E6E_10C1

# `caps`: billing's relation of (tenant id, effective max_concurrent) rows, the plan rule as SQL.
_FAIR_CANDIDATES_SQL = """
SELECT picked.id
FROM ({caps}) AS c (tenant_id, cap)
CROSS JOIN LATERAL (
    SELECT count(*) AS running FROM {generation} r WHERE r.tenant_id = c.tenant_id AND r.status = 'running'
) r
CROSS JOIN LATERAL (
    SELECT g.id, g.created_at, row_number() OVER (ORDER BY g.created_at, g.id) AS position
    FROM {generation} g
    WHERE g.tenant_id = c.tenant_id AND g.status = 'queued' AND (g.not_before IS NULL OR g.not_before <= %s)
      AND (g.deadline_at IS NULL OR g.deadline_at > %s)
    ORDER BY g.created_at, g.id
    LIMIT GREATEST(0, LEAST(%s, COALESCE(c.cap - r.running, %s)))
) picked
ORDER BY r.running + picked.position, picked.created_at, picked.id
LIMIT %s
"""


def _fair_candidates_postgresql(*, limit: int, now: datetime) -> list[int]:
    caps, caps_params = tenants_limit_sql(field="max_concurrent")
    sql = _FAIR_CANDIDATES_SQL.format(caps=caps, generation=Generation._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK_KEY])
        cursor.execute(sql, [*caps_params, now, now, limit, limit, limit])
        return [row[0] for row in cursor.fetchall()]


def _fair_candidates_portable(*, limit: int, now: datetime) -> list[int]:
    """The same choice in Python, for SQLite (whose IMMEDIATE transactions already serialise claims)."""
    from django.db.models import Count, Q

    queued = Generation.objects.filter(status=Generation.Status.QUEUED).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now), Q(deadline_at__isnull=True) | Q(deadline_at__gt=now)
    )
    tenant_ids = sorted(set(queued.values_list("tenant_id", flat=True)))
    if not tenant_ids:
        return []
    running = dict(
        Generation.objects.filter(status=Generation.Status.RUNNING, tenant_id__in=tenant_ids)
        .values_list("tenant_id")
        .annotate(count=Count("id"))
    )
    ranked = []
    for tenant in Tenant.objects.filter(pk__in=tenant_ids).order_by("pk"):
        cap = tenant_limits(tenant=tenant).max_concurrent
        now_running = running.get(tenant.pk, 0)
        room = limit if cap is None else max(0, min(limit, cap - now_running))
        rows = queued.filter(tenant=tenant).order_by("created_at", "id").values_list("id", "created_at")[:room]
        ranked += [(now_running + position, created_at, gid) for position, (gid, created_at) in enumerate(rows, 1)]
    return [gid for _rank, _created_at, gid in sorted(ranked)[:limit]]


def claim_candidates(*, limit: int, now: datetime) -> list[int]:
    """Ids to claim, in claim order. Call inside the claim transaction (on PostgreSQL it takes the claim lock)."""
    if limit <= 0:
        return []
    if connection.vendor == "postgresql":
        return _fair_candidates_postgresql(limit=limit, now=now)
    return _fair_candidates_portable(limit=limit, now=now)
