from health_check.views import HealthCheckView

HEALTH_CHECKS = (
    "health_check.checks.Database",
    "health_check.checks.Cache",
    "health_check.checks.Storage",
)

health_view = HealthCheckView.as_view(checks=HEALTH_CHECKS)
