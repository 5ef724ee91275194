"""`GET /v1/quota`. Billing owns the limits and the money; the running, queued and waiting counts are the
generations app's, so the view that puts them together lives here (billing does not import generations)."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from billing.api.serializers import QuotaSerializer
from billing.selectors.quotas import TenantActivity, quota_status
from billing.throttles import tenant_requests_this_minute
from generations.selectors import generations_in_progress
from generations.services.waits import wait_slots_in_use


class QuotaView(TenantGenericAPIView):
    serializer_class = QuotaSerializer

    @extend_schema(
        operation_id="quota_retrieve", summary="Each limit of your plan with its use and reset time"
    )
    def get(self, request: Request) -> Response:
        running, queued = generations_in_progress(tenant=self.tenant)
        status = quota_status(
            tenant=self.tenant,
            api_key=self.api_key,
            requests_this_minute=tenant_requests_this_minute(tenant_id=self.tenant.pk),
            activity=TenantActivity(running=running, queued=queued, waits=wait_slots_in_use(tenant=self.tenant)),
        )
        return Response(QuotaSerializer(status).data)
