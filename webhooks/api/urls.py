from django.urls import path

import project.api.converters  # noqa: F401  (registers the `id` converter)
from webhooks.api.views import (
    WebhookDeliveryListView,
    WebhookEndpointDetailView,
    WebhookEndpointListCreateView,
    WebhookEndpointRotateSecretView,
)

urlpatterns = [
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
