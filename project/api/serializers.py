"""Serializer helpers shared by every API module."""

from collections.abc import Mapping
from typing import Any

from project import errors


class UnknownParameter(errors.InvalidRequest):
    code = "unknown_parameter"


class StrictFieldsMixin:
    """Refuse body fields the serializer does not declare, naming the first one. A silently dropped field is a
    request the caller believes was honoured (`background` sent beside `params` instead of in it) and paid for."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            declared = self.fields  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in declared)
            if unknown:
                name = unknown[0][:100]
                known = ", ".join(name for name, field in declared.items() if not field.read_only)
                raise UnknownParameter(f"Unknown parameter {name!r}; this endpoint takes: {known}.", param=name)
        return super().to_internal_value(data)  # type: ignore[misc]
