import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from project import errors


class InvalidCursor(errors.InvalidRequest):
    code = "invalid_cursor"
    message = "The cursor is not valid; use the `next` or `previous` link of a list response."


# The characters of the cursors DRF writes (standard base64). DRF's decoder skips any others, so a cursor made only
# of them (a NUL, say) would read as the first page instead of being refused.
_CURSOR_CHARACTERS = re.compile(r"[A-Za-z0-9+/=]*")


class CreatedCursorPagination(CursorPagination):
    """Stable, opaque cursors over newest-first lists (offsets skip or repeat rows under concurrent inserts)."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
    invalid_cursor_message = InvalidCursor.message

    def decode_cursor(self, request: Request) -> Any:
        if not _CURSOR_CHARACTERS.fullmatch(request.query_params.get(self.cursor_query_param) or ""):
            raise InvalidCursor(param="cursor")
        try:
            return super().decode_cursor(request)
        except NotFound as exc:
            raise InvalidCursor(param="cursor") from exc

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: APIView | None = None) -> list[Any]:
        # DRF checks a cursor's encoding but not its position: a forged position fails in the query itself.
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValidationError, ValueError, TypeError, OverflowError) as exc:
            raise InvalidCursor(param="cursor") from exc
