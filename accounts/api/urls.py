from django.urls import path

from accounts.api.views import ApiKeyListCreateView, ApiKeyRevokeView

urlpatterns = [
    path("api-keys", ApiKeyListCreateView.as_view(), name="api-keys"),
    path("api-keys/<str:key_id>/revoke", ApiKeyRevokeView.as_view(), name="api-key-revoke"),
]
