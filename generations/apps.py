from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from billing.model_ids import model_id_resolver_register
        from generations.api.openai_errors import OPENAI_PATH_PREFIX, openai_error_body
        from generations.catalog.lookup import model_id_resolve
        from generations.models import CatalogModel, PromptBlockRule
        from project.api.errors import error_shape_register
        from project.readcache import readcache_invalidate_on_change

        readcache_invalidate_on_change(PromptBlockRule, CatalogModel)
        model_id_resolver_register(model_id_resolve)
        error_shape_register(path_prefix=OPENAI_PATH_PREFIX, reshape=openai_error_body)

        from generations.metrics import GenerationsCollector
        from project.metrics import metrics_collector_register

        metrics_collector_register(GenerationsCollector())
