"""Key permissions. Kept apart from `base.py`: DRF imports this module through DEFAULT_PERMISSION_CLASSES while
`rest_framework.generics` (which `base.py` needs) is still loading."""

from typing import TYPE_CHECKING

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.models import ApiKey

if TYPE_CHECKING:
    from rest_framework.views import APIView


class HasTenantKey(BasePermission):
    """Every native endpoint needs a valid key; authentication already refused bad ones."""

    def has_permission(self, request: Request, view: "APIView") -> bool:
        return isinstance(request.auth, ApiKey)


class HasAdminKey(HasTenantKey):
    message = "This operation needs an admin API key."
    code = "admin_key_required"

    def has_permission(self, request: Request, view: "APIView") -> bool:
        return super().has_permission(request, view) and request.auth.is_admin
