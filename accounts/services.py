"""Writes for tenants, keys and the audit trail."""

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.text import slugify

from accounts.models import ApiKey, AuditEvent, Tenant, User
from project import errors


class TenantSlugTaken(errors.Conflict):
    code = "tenant_slug_taken"


class InvalidTenantSlug(errors.InvalidRequest):
    code = "invalid_tenant_slug"


@dataclass(frozen=True)
class Actor:
    """Who is acting: a staff user, an API key, or the system itself."""

    user: User | None = None
    api_key: ApiKey | None = None
    ip_address: str | None = None

    @property
    def actor_type(self) -> str:
        if self.api_key is not None:
            return AuditEvent.ActorType.API_KEY
        if self.user is not None:
            return AuditEvent.ActorType.STAFF
        return AuditEvent.ActorType.SYSTEM


def actor_from_staff(*, request: HttpRequest) -> Actor:
    """The staff user behind an admin request."""
    return Actor(user=request.user, ip_address=request.META.get("REMOTE_ADDR"))


def actor_from_api(*, request: HttpRequest) -> Actor:
    """The API key behind an API request (DRF puts it in `request.auth`)."""
    return Actor(api_key=request.auth, ip_address=request.META.get("REMOTE_ADDR"))


SYSTEM = Actor()


def _target_id(target: Any) -> str:
    # An API key's primary key embeds its hash: the audit trail names keys by their public prefix instead.
    if isinstance(target, ApiKey):
        return target.prefix
    return str(getattr(target, "pk", "") or "")


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: Any,
    tenant: Tenant | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        actor_type=actor.actor_type,
        actor_user=actor.user,
        actor_api_key=actor.api_key,
        tenant=tenant,
        action=action,
        target_type=type(target).__name__ if not isinstance(target, str) else target,
        target_id=_target_id(target),
        before=before,
        after=after,
        ip_address=actor.ip_address,
    )


def tenant_create(*, slug: str, name: str, actor: Actor = SYSTEM) -> Tenant:
    if slugify(slug) != slug or not slug:
        raise InvalidTenantSlug(f"'{slug}' is not a valid slug (lowercase letters, digits and hyphens).")
    try:
        with transaction.atomic():
            tenant = Tenant.objects.create(slug=slug, name=name or slug)
            audit_record(actor=actor, action="tenant.created", target=tenant, tenant=tenant, after={"slug": slug})
    except IntegrityError as exc:
        raise TenantSlugTaken(f"A tenant with slug '{slug}' already exists.") from exc
    return tenant


def tenant_set_status(*, tenant: Tenant, status: str, actor: Actor) -> Tenant:
    with transaction.atomic():
        locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if locked.status == status:
            return locked
        before = {"status": locked.status}
        locked.status = status
        locked.save(update_fields=["status"])
        action = "tenant.suspended" if status == Tenant.Status.SUSPENDED else "tenant.reactivated"
        audit_record(actor=actor, action=action, target=locked, tenant=locked, before=before, after={"status": status})
    return locked


@dataclass(frozen=True)
class IssuedApiKey:
    api_key: ApiKey
    secret: str


def api_key_create(
    *,
    tenant: Tenant,
    name: str,
    is_admin: bool = False,
    user: User | None = None,
    monthly_budget_micros: int | None = None,
    actor: Actor = SYSTEM,
) -> IssuedApiKey:
    """Create a key. The secret is returned here and never again: only its hash is stored."""
    with transaction.atomic():
        api_key, secret = ApiKey.objects.create_key(
            tenant=tenant, name=name, is_admin=is_admin, user=user, monthly_budget_micros=monthly_budget_micros
        )
        audit_record(
            actor=actor,
            action="api_key.created",
            target=api_key,
            tenant=tenant,
            after={"prefix": api_key.prefix, "name": name, "is_admin": is_admin},
        )
    return IssuedApiKey(api_key=api_key, secret=secret)


class InvalidKeyBudget(errors.InvalidRequest):
    code = "invalid_key_budget"
    message = "A key budget is a non-negative amount, or empty for none."


def api_key_budget_set(*, api_key: ApiKey, monthly_budget_micros: int | None, actor: Actor = SYSTEM) -> ApiKey:
    """Set or clear a key's own monthly spend cap (audited)."""
    if monthly_budget_micros is not None and monthly_budget_micros < 0:
        raise InvalidKeyBudget(param="monthly_budget_micros")
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.monthly_budget_micros == monthly_budget_micros:
            return locked
        before = {"monthly_budget_micros": locked.monthly_budget_micros}
        locked.monthly_budget_micros = monthly_budget_micros
        locked.save(update_fields=["monthly_budget_micros"])
        audit_record(
            actor=actor,
            action="api_key.budget_changed",
            target=locked,
            tenant=locked.tenant,
            before=before,
            after={"monthly_budget_micros": monthly_budget_micros},
        )
    return locked


def api_key_revoke(*, api_key: ApiKey, actor: Actor = SYSTEM) -> ApiKey:
    """Revoke a key. Idempotent: revoking a revoked key changes nothing and audits nothing."""
    with transaction.atomic():
        locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        if locked.revoked:
            return locked
        locked.revoked = True
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked", "revoked_at"])
        audit_record(
            actor=actor,
            action="api_key.revoked",
            target=locked,
            tenant=locked.tenant,
            before={"revoked": False},
            after={"revoked": True},
        )
    return locked
