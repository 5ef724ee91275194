"""Base views for the native API: the tenant is resolved once, and every queryset is filtered by it here."""

from django.db.models import Model, QuerySet
from rest_framework import generics

from accounts.models import ApiKey, Tenant


class TenantScopedMixin:
    """Filters `queryset` by the authenticated tenant. Objects of other tenants are simply not found (404)."""

    tenant_field = "tenant"

    @property
    def tenant(self) -> Tenant:
        return self.request.tenant  # type: ignore[attr-defined]

    @property
    def api_key(self) -> ApiKey:
        return self.request.api_key  # type: ignore[attr-defined]

    def get_queryset(self) -> QuerySet[Model]:
        queryset = super().get_queryset()  # type: ignore[misc]
        return queryset.filter(**{self.tenant_field: self.tenant})


class TenantGenericAPIView(TenantScopedMixin, generics.GenericAPIView):
    pass


class TenantListAPIView(TenantScopedMixin, generics.ListAPIView):
    pass
