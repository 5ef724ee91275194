from django.urls import path

import project.api.converters  # noqa: F401  (registers the `id` converter)
from webhooks.api.views import (
    WebhookDeliveryListView,
    WebhookEndpointDetailView,
    WebhookEndpointListCreateView,
    WebhookEndpointRotateSecretView,
    WebhookSigningSecretRotateView,
    WebhookSigningSecretView,
    WebhookTenantDeliveryListView,
)

urlpatterns = [
    path("webhook-secret", WebhookSigningSecretView.as_view(), name="webhook-secret"),
    path("webhook-secret/rotate", WebhookSigningSecretRotateView.as_view(), name="webhook-secret-rotate"),
    path("webhook-deliveries", WebhookTenantDeliveryListView.as_view(), name="webhook-deliveries"),
    path("webhook-endpoints", WebhookEndpointListCreateView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<id:endpoint_id>", WebhookEndpointDetailView.as_view(), name="webhook-endpoint"),
    path(
        "webhook-endpoints/<id:endpoint_id>/rotate-secret",
        WebhookEndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<id:endpoint_id>/deliveries",
        WebhookDeliveryListView.as_view(),
        name="webhook-endpoint-deliveries",
    ),
]
