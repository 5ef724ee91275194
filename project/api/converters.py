"""URL converters for ids in API paths.

Django's `str` converter takes any character but `/`, NUL and control characters included; PostgreSQL refuses a
NUL inside a query parameter, so such an id used to end as a 500. An id segment here is printable text only, and
anything else is simply not a route (the JSON 404). Importing this module registers the converter.
"""

from django.urls import register_converter


class IdConverter:
    regex = r"[^/\x00-\x1f\x7f]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class IdPathConverter(IdConverter):
    """Like `id`, but may contain `/` (catalog model ids: `openai/gpt-image-1`)."""

    regex = r"[^\x00-\x1f\x7f]+"


register_converter(IdConverter, "id")
register_converter(IdPathConverter, "idpath")
