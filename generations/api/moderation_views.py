from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.base import TenantGenericAPIView
from accounts.services import actor_from_api
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
            "meanwhile: 201 with the report. Reporting an image again changes nothing and answers the first "
            "report with 200. A rejected image stays rejected."
        ),
        request=ImageReportCreateSerializer,
        responses={
            201: ImageReportSerializer,
            200: OpenApiResponse(ImageReportSerializer, description="Reported before: the first report."),
            404: OpenApiResponse(description="not_found"),
        },
    )
    def post(self, request: Request, generation_id: str, index: int) -> Response:
        body = ImageReportCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = image_get(generation=self.get_object(), index=index)
        if image is None:
            raise ImageNotFound()
        report, created = image_report(image=image, actor=actor_from_api(request=request),
                                       reason=body.validated_data["reason"])
        return Response(ImageReportSerializer(report).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
