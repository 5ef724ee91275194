"""The tenant-aware API base: the tenant-scoped views every native endpoint derives from.

The tenant is resolved once by `accounts.api.authentication` and every queryset is filtered by it here. Like
PostHog's `TeamAndOrgViewSetMixin`, there is exactly one way to scope: a subclass that overrides `get_queryset` or
`get_object` fails at import, so a view cannot quietly skip the tenant filter. Views that need a narrower queryset
override `scoped_queryset` (which receives the already tenant-filtered queryset).
"""

from typing import Any

from django.db.models import Model, QuerySet
from rest_framework import generics

from accounts.models import ApiKey, Tenant


class TenantScopingOverridden(TypeError):
    """Raised at import when a view replaces the tenant scoping instead of narrowing it."""


class TenantScopedMixin:
    """Filters `queryset` by the authenticated tenant. Objects of other tenants are simply not found (404)."""

    tenant_field = "tenant"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:
            return
        for name in ("get_queryset", "get_object"):
            if name in cls.__dict__:
                raise TenantScopingOverridden(
                    f"{cls.__module__}.{cls.__qualname__} overrides {name}(); narrow the tenant's queryset in "
                    "scoped_queryset() instead, so every object stays filtered by the tenant."
                )

    @property
    def tenant(self) -> Tenant:
        return self.request.tenant  # type: ignore[attr-defined]

    @property
    def api_key(self) -> ApiKey:
        return self.request.api_key  # type: ignore[attr-defined]

    def scoped_queryset(self, queryset: QuerySet[Model]) -> QuerySet[Model]:
        return queryset

    def get_queryset(self) -> QuerySet[Model]:
        queryset = super().get_queryset()  # type: ignore[misc]
        return self.scoped_queryset(queryset.filter(**{self.tenant_field: self.tenant}))


class TenantGenericAPIView(TenantScopedMixin, generics.GenericAPIView):
    pass


class TenantListAPIView(TenantScopedMixin, generics.ListAPIView):
    pass
