from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from accounts.api.permissions import HasAdminKey
from accounts.services import actor_from_api
from webhooks.api.serializers import (
    IssuedWebhookEndpointSerializer,
    WebhookDeliveryFilterSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreateSerializer,
    WebhookEndpointSerializer,
    WebhookEndpointUpdateSerializer,
    WebhookSigningSecretSerializer,
    WebhookTenantDeliveryFilterSerializer,
)
from webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookSigningSecret
from webhooks.selectors import webhook_delivery_list, webhook_tenant_delivery_list
from webhooks.services.endpoints import (
    webhook_endpoint_create,
    webhook_endpoint_disable,
    webhook_endpoint_rotate_secret,
    webhook_endpoint_update,
)
from webhooks.services.request_webhooks import webhook_signing_secret_get, webhook_signing_secret_rotate


class WebhookEndpointView(TenantGenericAPIView):
    """Admin keys manage the tenant's webhook endpoints; another tenant's endpoint is not found (404)."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    permission_classes = [HasAdminKey]
    lookup_url_kwarg = "endpoint_id"


class WebhookEndpointListCreateView(WebhookEndpointView):
    """Endpoints receive signed POSTs (Standard Webhooks) for the event types they list, or all when empty.

    URLs must be https and resolve to public addresses; otherwise 400 `webhook_url_not_allowed` (param `url`).
    """

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List the tenant's webhook endpoints (newest first, cursor-paginated)",
        responses={200: WebhookEndpointSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(WebhookEndpointSerializer(page, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Create a webhook endpoint (the signing secret is returned once)",
        request=WebhookEndpointCreateSerializer,
        responses={201: IssuedWebhookEndpointSerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = WebhookEndpointCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = webhook_endpoint_create(
            tenant=self.tenant,
            url=data["url"],
            event_types=data["events"],
            description=data["description"],
            actor=actor_from_api(request=request),
        )
        body = IssuedWebhookEndpointSerializer(issued.endpoint, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(WebhookEndpointView):
    """DELETE disables the endpoint rather than removing it, so its delivery history stays visible."""

    @extend_schema(operation_id="webhook_endpoints_retrieve", summary="Retrieve a webhook endpoint")
    def get(self, request: Request, endpoint_id: str) -> Response:
        return Response(WebhookEndpointSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint's URL, events, description or enabled state",
        request=WebhookEndpointUpdateSerializer,
        responses={200: WebhookEndpointSerializer},
    )
    def patch(self, request: Request, endpoint_id: str) -> Response:
        serializer = WebhookEndpointUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint = webhook_endpoint_update(
            endpoint=self.get_object(),
            actor=actor_from_api(request=request),
            url=data.get("url"),
            event_types=data.get("events"),
            description=data.get("description"),
            enabled=data.get("enabled"),
        )
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_disable",
        summary="Disable a webhook endpoint (kept, with its deliveries; re-enable with PATCH)",
        responses={200: WebhookEndpointSerializer},
    )
    def delete(self, request: Request, endpoint_id: str) -> Response:
        endpoint = webhook_endpoint_disable(endpoint=self.get_object(), actor=actor_from_api(request=request))
        return Response(WebhookEndpointSerializer(endpoint).data)


class WebhookEndpointRotateSecretView(WebhookEndpointView):
    """Pending retries are signed with the new secret too; the old one stops verifying at once."""

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="Replace the signing secret (the new one is returned once; the old one stops at once)",
        request=None,
        responses={200: IssuedWebhookEndpointSerializer},
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        issued = webhook_endpoint_rotate_secret(endpoint=self.get_object(), actor=actor_from_api(request=request))
        return Response(
            IssuedWebhookEndpointSerializer(issued.endpoint, context={"secret": issued.secret}).data
        )


class WebhookDeliveryListView(WebhookEndpointView):
    """One delivery per event sent to this endpoint: its status, attempts so far, and the last response or error."""

    @extend_schema(
        operation_id="webhook_endpoints_deliveries",
        summary="List an endpoint's deliveries, newest first",
        parameters=[WebhookDeliveryFilterSerializer],
        responses={200: WebhookDeliverySerializer(many=True)},
    )
    def get(self, request: Request, endpoint_id: str) -> Response:
        filters = WebhookDeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        deliveries = webhook_delivery_list(
            endpoint=self.get_object(), status=filters.validated_data.get("status")
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)


class WebhookSigningSecretBaseView(TenantGenericAPIView):
    queryset = WebhookSigningSecret.objects.all()
    permission_classes = [HasAdminKey]
    serializer_class = WebhookSigningSecretSerializer


class WebhookSigningSecretView(WebhookSigningSecretBaseView):
    """The secret that signs per-request webhooks (the `webhook` field of `POST /v1/generations`).

    Verify deliveries with any Standard Webhooks library: `Webhook(secret).verify(body, headers)`.
    """

    @extend_schema(operation_id="webhook_secret_retrieve", summary="Get the per-request webhook signing secret")
    def get(self, request: Request) -> Response:
        return Response({"secret": webhook_signing_secret_get(tenant=self.tenant)})


class WebhookSigningSecretRotateView(WebhookSigningSecretBaseView):
    @extend_schema(
        operation_id="webhook_secret_rotate",
        summary="Replace the per-request webhook signing secret (the old one stops verifying at once)",
        request=None,
    )
    def post(self, request: Request) -> Response:
        secret = webhook_signing_secret_rotate(tenant=self.tenant, actor=actor_from_api(request=request))
        return Response({"secret": secret})


class WebhookTenantDeliveryListView(TenantGenericAPIView):
    """Every delivery of the tenant's events, to endpoints and to per-request webhooks, newest first."""

    queryset = WebhookDelivery.objects.all()
    tenant_field = "event__tenant"
    permission_classes = [HasAdminKey]
    serializer_class = WebhookDeliverySerializer

    @extend_schema(
        operation_id="webhook_deliveries_list",
        summary="List webhook deliveries (endpoints and per-request webhooks), newest first",
        parameters=[WebhookTenantDeliveryFilterSerializer],
        responses={200: WebhookDeliverySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        filters = WebhookTenantDeliveryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        values = filters.validated_data
        deliveries = webhook_tenant_delivery_list(
            tenant=self.tenant,
            status=values.get("status"),
            target=values.get("target"),
            endpoint_id=values.get("endpoint"),
            object_id=values.get("generation"),
        )
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
