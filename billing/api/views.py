from datetime import timedelta

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView, TenantListAPIView
from billing.api.serializers import (
    StatementDetailSerializer,
    StatementSerializer,
    UsageQuerySerializer,
    UsageSerializer,
)
from billing.models import Statement
from billing.periods import as_utc_start
from billing.reports import statement_csv_response, statement_html
from billing.selectors.usage import usage_rows, usage_totals


class UsageView(TenantGenericAPIView):
    serializer_class = UsageSerializer

    @extend_schema(
        operation_id="usage_retrieve",
        summary="Charged usage between two UTC dates (inclusive), optionally grouped",
        parameters=[UsageQuerySerializer],
    )
    def get(self, request: Request) -> Response:
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        start, end, group_by = (query.validated_data[k] for k in ("start", "end", "group_by"))
        period = {"start": as_utc_start(start), "end": as_utc_start(end) + timedelta(days=1)}
        rows = usage_rows(tenant=self.tenant, group_by=group_by, **period)
        body = {
            "start": start,
            "end": end,
            "group_by": group_by,
            "data": rows,
            "totals": usage_totals(tenant=self.tenant, **period),
        }
        return Response(UsageSerializer(body).data)


class StatementListView(TenantListAPIView):
    queryset = Statement.objects.all()
    serializer_class = StatementSerializer

    @extend_schema(operation_id="statements_list", summary="Monthly statements, newest first")
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        return super().get(request, *args, **kwargs)


class StatementDetailView(TenantGenericAPIView):
    queryset = Statement.objects.prefetch_related("lines")
    serializer_class = StatementDetailSerializer
    lookup_url_kwarg = "statement_id"

    @extend_schema(operation_id="statements_retrieve", summary="One statement with its line items")
    def get(self, request: Request, statement_id: int) -> Response:
        return Response(StatementDetailSerializer(self.get_object()).data)


class StatementCsvView(TenantGenericAPIView):
    queryset = Statement.objects.select_related("tenant")
    lookup_url_kwarg = "statement_id"

    @extend_schema(
        operation_id="statements_csv",
        summary="One statement as CSV (one row per line item, then a total row)",
        responses={(200, "text/csv"): OpenApiResponse(response=OpenApiTypes.STR)},
    )
    def get(self, request: Request, statement_id: int) -> HttpResponse:
        return statement_csv_response(self.get_object())


class StatementHtmlView(TenantGenericAPIView):
    queryset = Statement.objects.select_related("tenant")
    lookup_url_kwarg = "statement_id"

    @extend_schema(
        operation_id="statements_html",
        summary="One statement as a printable HTML page",
        responses={(200, "text/html"): OpenApiResponse(response=OpenApiTypes.STR)},
    )
    def get(self, request: Request, statement_id: int) -> HttpResponse:
        return HttpResponse(statement_html(self.get_object()), content_type="text/html; charset=utf-8")
