"""CSV written line by line, so an export of any size streams instead of being built in memory first."""

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.http import StreamingHttpResponse


class _Echo:
    """A write-only file for csv.writer that hands each line back instead of buffering it."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


def csv_streaming_response(
    rows: Iterable[Iterable[Any]], *, filename: str, content_type: str = "text/csv"
) -> StreamingHttpResponse:
    """A download of `rows` as `filename`; rows are pulled (and queried, if lazy) only as the client reads."""
    response = StreamingHttpResponse(csv_lines(rows), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
