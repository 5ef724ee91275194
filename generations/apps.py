from django.apps import AppConfig


class GenerationsConfig(AppConfig):
    name = "generations"
    verbose_name = "Generations"

    def ready(self) -> None:
        from django_q.signals import post_spawn, pre_execute

        from billing.model_ids import model_id_resolver_register
        from generations.catalog import model_id_resolve
        from generations.models import PromptBlockRule
        from project.health import worker_heartbeat_record
        from project.readcache import readcache_invalidate_on_change

        readcache_invalidate_on_change(PromptBlockRule)

        model_id_resolver_register(model_id_resolve)
        post_spawn.connect(worker_heartbeat_record, dispatch_uid="worker-heartbeat-spawn")
        pre_execute.connect(worker_heartbeat_record, dispatch_uid="worker-heartbeat-task")
