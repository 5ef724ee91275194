from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from project.metrics import metrics_collector_register
        from webhooks.metrics import WebhookBacklogCollector

        metrics_collector_register(WebhookBacklogCollector())
