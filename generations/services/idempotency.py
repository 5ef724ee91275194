"""Stripe-style Idempotency-Key handling for POST endpoints.

Same key + same body → the first response is replayed (nothing charged twice); same key + different body → 422;
a first request still in flight → 409. Records live 24 h per tenant. The record is written in the same
transaction as the work it protects, so a crash can never leave a key that points at nothing.
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
    message = "This Idempotency-Key was used with a different request body."


class IdempotencyRequestInProgress(errors.Conflict):
    code = "idempotency_request_in_progress"
    message = "A request with this Idempotency-Key is still being processed. Retry shortly."


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def idempotency_key_check(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid(param="Idempotency-Key")
    return key


def request_fingerprint(*, method: str, path: str, payload: Any) -> str:
    canonical = json.dumps([method, path, payload], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _lock_key(*, tenant: Tenant, key: str) -> int:
    digest = hashlib.blake2b(f"{tenant.pk}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def idempotency_begin(*, tenant: Tenant, key: str, fingerprint: str) -> StoredResponse | None:
    """Call inside the request's transaction. Returns the response to replay, or None to go ahead.

    On PostgreSQL a transaction-scoped advisory lock marks the key as in flight: a second request that cannot take
    it gets 409 at once instead of queueing behind the first. SQLite serialises writers (IMMEDIATE transactions), so
    the second request simply sees the committed record.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_lock_key(tenant=tenant, key=key)])
            if not cursor.fetchone()[0]:
                raise IdempotencyRequestInProgress()
    record = IdempotencyRecord.objects.filter(tenant=tenant, key=key, expires_at__gt=timezone.now()).first()
    if record is None:
        IdempotencyRecord.objects.filter(tenant=tenant, key=key).delete()
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyKeyReused(param="Idempotency-Key")
    return StoredResponse(status=record.response_status, body=record.response_body)


def idempotency_complete(
    *, tenant: Tenant, key: str, fingerprint: str, generation: Generation | None, response: StoredResponse
) -> IdempotencyRecord:
    return IdempotencyRecord.objects.create(
        tenant=tenant,
        key=key,
        fingerprint=fingerprint,
        generation=generation,
        response_status=response.status,
        response_body=response.body,
        expires_at=timezone.now() + IDEMPOTENCY_TTL,
    )


def idempotency_records_purge() -> int:
    deleted, _ = IdempotencyRecord.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
