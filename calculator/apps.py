from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class CalculatorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "calculator"
    verbose_name = "LLM Tools calculator"

    def ready(self) -> None:
        # Connected here, never by importing a module: every process (server, shell, command)
        # forgets the kept catalogs when a catalog row is saved or deleted in it.
        from calculator.domain.caching import catalog_cache_clear
        from calculator.models import Gpu, ModelProfile

        for model in (ModelProfile, Gpu):
            for signal in (post_save, post_delete):
                signal.connect(
                    catalog_cache_clear,
                    sender=model,
                    dispatch_uid=f"catalog-cache-{signal is post_save}-{model.__name__}",
                )
