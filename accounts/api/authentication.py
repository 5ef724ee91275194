"""`Authorization: Bearer <api key>` authentication.

The key's tenant and the key itself land on the request (`request.tenant`, `request.api_key`) and in the
structured-log context, so every later layer can scope by tenant without looking it up again.
"""

import hashlib
from datetime import timedelta

import structlog
from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication
from rest_framework.request import Request

from accounts.api.auth_failures import (
    auth_failure_record,
    auth_failures_check,
    auth_verified_record,
    client_address,
)
from accounts.models import ApiKey, Tenant
from project import errors
from project.readcache import readcache_get, readcache_peek


class ApiKeyAuthFailed(errors.Unauthenticated):
    pass


class TenantSuspended(errors.Forbidden):
    code = "tenant_suspended"
    message = "This tenant is suspended. Contact support."


def _parse_bearer(header: str) -> str:
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise ApiKeyAuthFailed("Use 'Authorization: Bearer <api key>'.", code="malformed_authorization")
    key = credentials.strip()
    prefix, dot, secret = key.partition(".")
    if not dot or not prefix or not secret or " " in key or len(key) > 200:
        raise ApiKeyAuthFailed("The API key is malformed.", code="malformed_api_key")
    return key


def _api_key_verified(key: str) -> ApiKey | None:
    prefix = key.partition(".")[0]
    api_key = ApiKey.objects.select_related("tenant").filter(prefix=prefix).first()
    return api_key if api_key is not None and api_key.is_valid(key) else None


def _cache_key(secret: str) -> tuple[str, str]:
    # Only keys that verified are cached, under a digest of the whole secret, so a wrong secret for a known prefix
    # never matches a cached entry. Revocation and suspension bump the read cache (accounts.apps).
    return ("api_key", hashlib.sha256(secret.encode()).hexdigest())


def api_key_from_secret(key: str) -> ApiKey:
    api_key = readcache_get(_cache_key(key), lambda: _api_key_verified(key))
    if api_key is None:
        raise ApiKeyAuthFailed("The API key is not valid.", code="invalid_api_key")
    if api_key.revoked:
        raise ApiKeyAuthFailed("The API key has been revoked.", code="api_key_revoked")
    if api_key.has_expired:
        raise ApiKeyAuthFailed("The API key has expired.", code="api_key_expired")
    return api_key


def _touch_last_used(api_key: ApiKey, *, secret: str) -> None:
    """Record use at most once per resolution window, so hot keys don't write on every request (the auth-failure
    limiter's memory of good keys is refreshed at the same pace)."""
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is None or api_key.last_used_at < stale_before:
        ApiKey.objects.filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale_before), pk=api_key.pk).update(
            last_used_at=now
        )
        api_key.last_used_at = now
        auth_verified_record(secret=secret)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[None, ApiKey] | None:
        header = request.headers.get("Authorization")
        if not header:
            return None
        address = client_address(request)
        try:
            secret = _parse_bearer(header)
        except ApiKeyAuthFailed:
            auth_failures_check(address=address, secret=None)
            auth_failure_record(address=address)
            raise
        if readcache_peek(_cache_key(secret)) is None:
            # A key this process already verified costs no lookup, so only unknown keys are counted against the
            # address's limit (and a warm submit reads no failure counter).
            auth_failures_check(address=address, secret=secret)
        try:
            api_key = api_key_from_secret(secret)
        except ApiKeyAuthFailed:
            auth_failure_record(address=address)
            raise
        if api_key.tenant.status != Tenant.Status.ACTIVE:
            raise TenantSuspended()
        _touch_last_used(api_key, secret=secret)
        request.tenant = api_key.tenant
        request.api_key = api_key
        structlog.contextvars.bind_contextvars(tenant=api_key.tenant.slug, api_key=api_key.prefix)
        return (None, api_key)

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "An API key issued to your tenant."}
