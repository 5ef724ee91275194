from django.urls import path
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from baseline.models import Item


class ItemCreateView(APIView):
    def post(self, request: Request) -> Response:
        item = Item.objects.create(prompt=str(request.data.get("prompt", "")))
        return Response({"id": item.pk, "prompt": item.prompt}, status=status.HTTP_201_CREATED)


urlpatterns = [path("v1/generations", ItemCreateView.as_view())]
