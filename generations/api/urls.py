from django.urls import path

import project.api.converters  # noqa: F401  (registers the `id` converter)
from generations.api.catalog import ModelDetailView, ModelListView
from generations.api.event_views import GenerationEventsView
from generations.api.moderation_views import ImageReportView
from generations.api.openai_views import OpenAIImageEditsView, OpenAIImageGenerationsView
from generations.api.quota_views import QuotaView
from generations.api.views import (
    GenerationCancelView,
    GenerationDetailView,
    GenerationImageView,
    GenerationListCreateView,
    SignedImageView,
)
from generations.api.waiting import waiting_view

urlpatterns = [
    path("quota", QuotaView.as_view(), name="quota"),
    path("models", ModelListView.as_view(), name="models"),
    path("models/<idpath:model>", ModelDetailView.as_view(), name="model-detail"),
    path("generations", waiting_view(GenerationListCreateView.as_view()), name="generations"),
    path("generations/<id:generation_id>", GenerationDetailView.as_view(), name="generation-detail"),
    path("generations/<id:generation_id>/events", waiting_view(GenerationEventsView.as_view(), always_waits=True),
         name="generation-events"),
    path("generations/<id:generation_id>/cancel", GenerationCancelView.as_view(), name="generation-cancel"),
    path(
        "generations/<id:generation_id>/images/<int:index>",
        GenerationImageView.as_view(),
        name="generation-image",
    ),
    path(
        "generations/<id:generation_id>/images/<int:index>/report",
        ImageReportView.as_view(),
        name="image-report",
    ),
    path("files/<id:token>", SignedImageView.as_view(), name="signed-image"),
    path("images/generations", waiting_view(OpenAIImageGenerationsView.as_view(), always_waits=True), name="openai-images-generations"),
    path("images/edits", waiting_view(OpenAIImageEditsView.as_view(), always_waits=True), name="openai-images-edits"),
]
