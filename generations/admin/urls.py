"""The staff dashboard's URLs, included at `/admin/` before the admin site's own (so `/admin/` is the dashboard);
each view is wrapped by the admin site (staff login, no caching)."""

from django.contrib import admin
from django.urls import path

from generations.admin.dashboard import dashboard_view, tenant_dashboard_view

urlpatterns = [
    path("", admin.site.admin_view(dashboard_view), name="staff_dashboard"),
    path("apps/", admin.site.admin_view(admin.site.index), name="staff_apps"),
    path("dashboard/tenants/<slug:slug>/", admin.site.admin_view(tenant_dashboard_view), name="staff_tenant_dashboard"),
]
