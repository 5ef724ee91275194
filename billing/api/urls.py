from django.urls import path

from billing.api.views import (
    StatementCsvView,
    StatementDetailView,
    StatementHtmlView,
    StatementListView,
    UsageView,
)

urlpatterns = [
    path("usage", UsageView.as_view(), name="usage"),
    path("statements", StatementListView.as_view(), name="statements"),
    path("statements/<int:statement_id>", StatementDetailView.as_view(), name="statement-detail"),
    path("statements/<int:statement_id>.csv", StatementCsvView.as_view(), name="statement-csv"),
    path("statements/<int:statement_id>.html", StatementHtmlView.as_view(), name="statement-html"),
]
