from django.urls import path

from generations.api.catalog import ModelDetailView, ModelListView
from generations.api.moderation_views import ImageReportView
from generations.api.openai_views import OpenAIImageEditsView, OpenAIImageGenerationsView
from generations.api.views import (
    GenerationCancelView,
    GenerationDetailView,
    GenerationImageView,
    GenerationListCreateView,
    SignedImageView,
)
from generations.api.waiting import waiting_view

urlpatterns = [
    path("models", ModelListView.as_view(), name="models"),
    path("models/<path:model>", ModelDetailView.as_view(), name="model-detail"),
    path("generations", waiting_view(GenerationListCreateView.as_view()), name="generations"),
    path("generations/<str:generation_id>", GenerationDetailView.as_view(), name="generation-detail"),
    path("generations/<str:generation_id>/cancel", GenerationCancelView.as_view(), name="generation-cancel"),
    path(
        "generations/<str:generation_id>/images/<int:index>",
        GenerationImageView.as_view(),
        name="generation-image",
    ),
    path(
        "generations/<str:generation_id>/images/<int:index>/report",
        ImageReportView.as_view(),
        name="image-report",
    ),
    path("files/<str:token>", SignedImageView.as_view(), name="signed-image"),
    path("images/generations", waiting_view(OpenAIImageGenerationsView.as_view()), name="openai-images-generations"),
    path("images/edits", waiting_view(OpenAIImageEditsView.as_view()), name="openai-images-edits"),
]
