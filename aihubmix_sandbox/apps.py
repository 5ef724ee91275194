from django.apps import AppConfig


class AihubmixSandboxConfig(AppConfig):
    # An app only so that `manage.py aihubmix_sandbox` is found; it has no models.
    name = "aihubmix_sandbox"
    verbose_name = "AIHubMix sandbox"
