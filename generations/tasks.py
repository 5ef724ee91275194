"""django-q2 entry points for the maintenance lane (scheduled by migration). Thin: each calls one service.

Forwarding is not here: it runs in its own long-running processes (`manage.py forwarder`)."""

from generations.services.deadlines import generations_deadlines_enforce
from generations.services.files import generation_files_purge_expired
from generations.services.idempotency import idempotency_records_purge
from generations.services.leases import generations_reap
from project.health import reaper_run_record


def reap_generations() -> str:
    result = generations_reap()
    # Backstop for deadlines when no forwarder runs (each forwarder sweeps every FORWARD_DEADLINE_POLL_SECONDS).
    deadlines = generations_deadlines_enforce()
    purged = idempotency_records_purge()
    reaper_run_record()
    return (
        f"requeued={result.requeued} failed={result.failed} woken={result.woken} "
        f"deadline_canceled={len(deadlines.canceled)} deadline_stopping={len(deadlines.running)} "
        f"idempotency_purged={purged}"
    )


def purge_expired_files() -> str:
    result = generation_files_purge_expired()
    return f"generations={result.generations} files={result.files}"
