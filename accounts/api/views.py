from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from accounts.api.permissions import HasAdminKey
from accounts.api.serializers import ApiKeyCreateSerializer, ApiKeySerializer, IssuedApiKeySerializer
from accounts.models import ApiKey
from accounts.services import actor_from_api, api_key_create, api_key_revoke
from project.api.pagination import CreatedCursorPagination


class ApiKeyPagination(CreatedCursorPagination):
    ordering = ("-created", "-id")



class ApiKeyListCreateView(TenantGenericAPIView):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    permission_classes = [HasAdminKey]
    pagination_class = ApiKeyPagination

    @extend_schema(
        operation_id="api_keys_list",
        summary="List the tenant's API keys (newest first, cursor-paginated)",
        responses={200: ApiKeySerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ApiKeySerializer(page, many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        summary="Create an API key (the secret is returned once)",
        request=ApiKeyCreateSerializer,
        responses={201: IssuedApiKeySerializer},
    )
    def post(self, request: Request) -> Response:
        serializer = ApiKeyCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        issued = api_key_create(tenant=self.tenant, actor=actor_from_api(request=request), **serializer.validated_data)
        body = IssuedApiKeySerializer(issued.api_key, context={"secret": issued.secret}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ApiKeyRevokeView(TenantGenericAPIView):
    queryset = ApiKey.objects.all()
    serializer_class = ApiKeySerializer
    permission_classes = [HasAdminKey]
    lookup_field = "prefix"
    lookup_url_kwarg = "key_id"

    @extend_schema(operation_id="api_keys_revoke", summary="Revoke an API key", request=None)
    def post(self, request: Request, key_id: str) -> Response:
        api_key = api_key_revoke(api_key=self.get_object(), actor=actor_from_api(request=request))
        return Response(ApiKeySerializer(api_key).data)
