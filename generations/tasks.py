"""django-q2 entry points. Thin: each calls one service."""

from generations.forwarder import forward_drain
from generations.services.files import generation_files_purge_expired
from generations.services.idempotency import idempotency_records_purge
from generations.services.lifecycle import generations_reap


def forward_generations() -> int:
    return forward_drain().claimed


def reap_generations() -> str:
    result = generations_reap()
    purged = idempotency_records_purge()
    return f"requeued={result.requeued} failed={result.failed} woken={result.woken} idempotency_purged={purged}"


def purge_expired_files() -> str:
    result = generation_files_purge_expired()
    return f"generations={result.generations} files={result.files}"
