from rest_framework.pagination import CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Stable, opaque cursors over newest-first lists (offsets skip or repeat rows under concurrent inserts)."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200
