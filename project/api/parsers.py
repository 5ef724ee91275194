"""JSON with a nesting limit, for request bodies and JSON carried inside form fields.

Python's json module recurses once per nesting level: a body of a few thousand `[` raises RecursionError (a 500)
in the parser itself, and one a little shallower parses but breaks whatever walks it next (validation, hashing).
No request of this API needs more than a handful of levels, so anything deeper than `API_JSON_MAX_DEPTH` is
refused as malformed.
"""

import codecs
import json
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JsonTooDeep(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_depth_check(value: Any, *, max_depth: int) -> None:
    """Iterative, so checking cannot itself run out of stack."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels is not accepted.")
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


def json_loads_limited(text: str | bytes) -> Any:
    """`json.loads` that refuses NaN/Infinity and nesting deeper than API_JSON_MAX_DEPTH (both ValueError)."""
    max_depth = settings.API_JSON_MAX_DEPTH
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels is not accepted.") from None
    json_depth_check(value, max_depth=max_depth)
    return value


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: dict | None = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.getreader(encoding)(stream).read()
            return json_loads_limited(text)
        except JsonTooDeep as exc:
            raise ParseError(str(exc)) from exc
        except ValueError as exc:
            # The position is useful; the decoder's wording is plain (no Python internals in it).
            raise ParseError(f"JSON parse error - {exc}") from exc
