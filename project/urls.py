from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from project.health import liveness_view, readiness_view
from project.metrics import metrics_view

# Staff pages: our name on them, and no "View site" link (there is no public site; it would be a 404).
admin.site.site_header = "Image generation — staff"
admin.site.site_title = "Image generation staff"
admin.site.index_title = "Operations"
admin.site.site_url = None
# The left app list costs ~280 px that the change lists need at 1366 px; the index page lists the apps.
admin.site.enable_nav_sidebar = False

api_v1 = [
    path("", include("accounts.api.urls")),
    path("", include("billing.api.urls")),
    path("", include("webhooks.api.urls")),
    path("", include("generations.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", readiness_view, name="healthz"),
    path("healthz/ready", readiness_view, name="healthz-ready"),
    path("healthz/live", liveness_view, name="healthz-live"),
    path("metrics", metrics_view, name="metrics"),
    path("v1/", include(api_v1)),
]

# Unknown paths, crashes and outages answer in the API's one JSON error shape (admin pages keep HTML).
handler400 = "project.api.errors.bad_request_view"
handler403 = "project.api.errors.permission_denied_view"
handler404 = "project.api.errors.not_found_view"
handler500 = "project.api.errors.server_error_view"
