from django.urls import path

import project.api.converters  # noqa: F401  (registers the `id` converter)
from accounts.api.views import ApiKeyListCreateView, ApiKeyRevokeView

urlpatterns = [
    path("api-keys", ApiKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<id:key_id>/revoke", ApiKeyRevokeView.as_view(), name="api-key-revoke"),
]
