from django.urls import path

from webhooks.api.views import (
    WebhookDeliveryListView,
    WebhookEndpointDetailView,
    WebhookEndpointListCreateView,
    WebhookEndpointRotateSecretView,
)

urlpatterns = [
    path("webhook-endpoints", WebhookEndpointListCreateView.as_view(), name="webhook-endpoints"),
    path("webhook-endpoints/<str:endpoint_id>", WebhookEndpointDetailView.as_view(), name="webhook-endpoint"),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret",
        WebhookEndpointRotateSecretView.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/deliveries",
        WebhookDeliveryListView.as_view(),
        name="webhook-endpoint-deliveries",
    ),
]
