"""The forwarder: a long-running process that keeps up to FORWARD_CONCURRENCY upstream calls in flight.

`manage.py forwarder` runs one asyncio loop per process (run several for more). It is not a django-q2 task: an
upstream call takes 5–60 s, and a queue of per-submit wake-up tasks starved the scheduled work behind it. Instead:

- It learns of new work within milliseconds from `generations.notifications` (PostgreSQL LISTEN/NOTIFY, Redis
  pub/sub, or a short poll on SQLite) — coalesced: however many submits notify, the loop wakes once and claims
  what fits — and also re-checks every FORWARD_POLL_SECONDS, so a lost notice costs latency, never work.
- Claims are fair between tenants and respect each tenant's running cap (`generations.services.claims`).
- Database work runs on a small thread pool, never on the event loop, retried through errors while the lease holds
  (`database.py`).
- A cancel notice (or the periodic check of in-flight rows) cancels the in-flight asyncio task at once; the
  generation is settled `canceled`, the tenant pays nothing for the abandoned call and its possible upstream
  cost is recorded as ours.
- Every FORWARD_REAP_SECONDS the process also requeues leases that expired elsewhere (a killed forwarder), so
  recovery does not wait for the once-a-minute maintenance reaper.

Modules: `loop.py` (the process: claims, slots, leases, notices, signals), `pipeline.py` (one generation: call →
verify → store → settle), `settling.py` (successes settled in batches), `database.py` (the database thread pool).
What an outcome settles to, and its money, is `generations.services.settle`'s: the forwarder only reports.

`forward_drain()` runs the same machinery until nothing is claimable (tests, benches, one-off use).
"""

from generations.forwarder.loop import DrainStats, Forwarder, forward_drain, forward_forever

__all__ = ["DrainStats", "Forwarder", "forward_drain", "forward_forever"]
