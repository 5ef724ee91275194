"""Stripe-style Idempotency-Key handling for POST endpoints.

Same key + same body → a replay: nothing is created or charged again, and the answer is the generation the first
request created *as it is now* (a client retries because it lost the first answer; the stored snapshot of a queued
generation would tell it a finished one is still queued). Same key + different body → 422; a first request still
in flight → 409. Records live 24 h per tenant. The record is written in the same transaction as the work it
protects, so a crash can never leave a key that points at nothing.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from accounts.models import Tenant
from generations.models import Generation, IdempotencyRecord
from project import errors

IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255


class IdempotencyKeyInvalid(errors.InvalidRequest):
    code = "invalid_idempotency_key"
    message = "Idempotency-Key must be 1 to 255 printable ASCII characters."


class IdempotencyKeyReused(errors.Unprocessable):
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used with a different request (body or Cancel-After)."


class IdempotencyRequestInProgress(errors.Conflict):
    code = "idempotency_request_in_progress"
    message = "A request with this Idempotency-Key is still being processed. Retry shortly."


@dataclass(frozen=True)
class IdempotentReplay:
    """A request with this key committed: the caller answers with its generation as it is now. None only if that
    generation was deleted (the record's foreign key is SET_NULL; the API never deletes a generation)."""

    generation_id: int | None


def idempotency_key_check(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid(param="Idempotency-Key")
    return key


def request_fingerprint(*, method: str, path: str, payload: Any, headers: dict[str, str] | None = None) -> str:
    """What makes two requests "the same" for an Idempotency-Key: the body and the headers that change what is
    created (`Cancel-After`). Headers are added only when present, so a request without them keeps the fingerprint
    it had before they counted (keys stored then still replay)."""
    parts: list[Any] = [method, path, payload]
    if headers:
        parts.append(headers)
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_key(*, tenant: Tenant, key: str) -> int:
    digest = hashlib.blake2b(f"{tenant.pk}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _stored(record: IdempotencyRecord | None, fingerprint: str) -> IdempotentReplay | None:
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(param="Idempotency-Key")
    return IdempotentReplay(generation_id=record.generation_id)


def _live_record(*, tenant: Tenant, key: str) -> IdempotencyRecord | None:
    return IdempotencyRecord.objects.filter(tenant=tenant, key=key, expires_at__gt=timezone.now()).first()


def idempotency_replay(*, tenant: Tenant, key: str, fingerprint: str) -> IdempotentReplay | None:
    """The replay if a request with this key committed, checked before any work (and again, under
    the key's lock, by `idempotency_begin`)."""
    return _stored(_live_record(tenant=tenant, key=key), fingerprint)


def idempotency_begin(*, tenant: Tenant, key: str, fingerprint: str) -> IdempotentReplay | None:
    """Call inside the request's transaction. Returns the replay, or None to go ahead.

    On PostgreSQL a transaction-scoped advisory lock marks the key as in flight: a second request that cannot take
    it gets 409 at once instead of queueing behind the first. SQLite serialises writers (IMMEDIATE transactions), so
    the second request simply sees the committed record.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(tenant=tenant, key=key)])
            if not cursor.fetchone()[0]:
                raise IdempotencyRequestInProgress()
    record = _live_record(tenant=tenant, key=key)
    if record is None:
        IdempotencyRecord.objects.filter(tenant=tenant, key=key).delete()
    return _stored(record, fingerprint)


def idempotency_complete(*, tenant: Tenant, key: str, fingerprint: str, generation: Generation) -> IdempotencyRecord:
    """Record the key in the transaction of the work it protects, so a committed generation always has it (a replay
    renders the generation as it is now)."""
    return IdempotencyRecord.objects.create(
        tenant=tenant,
        key=key,
        fingerprint=fingerprint,
        generation=generation,
        expires_at=timezone.now() + IDEMPOTENCY_TTL,
    )


def idempotency_records_purge() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
