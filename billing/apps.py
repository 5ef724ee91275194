from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.models import Plan, Price, TenantPlan
        from project.readcache import readcache_invalidate_on_change

        readcache_invalidate_on_change(Plan, TenantPlan, Price)

        from billing.metrics import MoneyCollector
        from project.metrics import metrics_collector_register

        metrics_collector_register(MoneyCollector())
