"""What several staff pages share: history that is looked at only, and an image's staff thumbnail."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from generations.models import GenerationImage


class HistoryAdmin(admin.ModelAdmin):
    """History is looked at, never edited or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def thumbnail_tag(image: GenerationImage, *, size: int = 96) -> str:
    return format_html(
        '<a href="{url}" target="_blank"><img src="{url}" alt="{alt}" loading="lazy" '
        'style="max-width:{size}px;max-height:{size}px;border:1px solid var(--hairline-color)"></a>',
        url=reverse("admin:generations_image_thumbnail", args=[image.pk]),
        alt=str(image),
        size=size,
    )
