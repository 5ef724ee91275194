from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from generations.models import Generation, ImageReport
from generations.selectors import ImageNotFound, image_get
from generations.services.moderation import image_report
from project.api.serializers import StrictFieldsMixin


class ImageReportCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class ImageReportSerializer(serializers.Serializer):
    object = serializers.SerializerMethodField()
    generation = serializers.CharField(source="image.generation.public_id")
    index = serializers.IntegerField(source="image.index")
    review_status = serializers.CharField(source="image.review_status")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_object(self, report: ImageReport) -> str:
        return "image_report"


class ImageReportView(TenantGenericAPIView):
    queryset = Generation.objects.all()
    lookup_field = "public_id"
    lookup_url_kwarg = "generation_id"
    serializer_class = ImageReportCreateSerializer

    @extend_schema(
        operation_id="generations_image_report",
        summary="Report an image for moderation",
        description=(
            "Puts the image into the staff moderation queue (`review_status: pending`); it stays available "
            "meanwhile. Reporting an image again changes nothing and answers the first report. A rejected image "
            "stays rejected."
        ),
        request=ImageReportCreateSerializer,
        responses={200: ImageReportSerializer, 404: OpenApiResponse(description="not_found")},
    )
    def post(self, request: Request, generation_id: str, index: int) -> Response:
        body = ImageReportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = image_get(generation=self.get_object(), index=index)
        if image is None:
            raise ImageNotFound()
        report = image_report(image=image, api_key=self.api_key, reason=body.validated_data["reason"])
        return Response(ImageReportSerializer(report).data)
