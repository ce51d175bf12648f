"""Frozen dataclass records to and from JSON, for the store (a record is one column).

Generic over the record's type hints: enums are kept by value, tuples (of records,
of enums, of pairs) and optionals are rebuilt as declared. One codec, so every record
the store keeps round-trips the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def dumps(record: Any) -> str:
    """The record as JSON with sorted keys (stable bytes for the same record)."""
    return json.dumps(dataclasses.asdict(record), sort_keys=True, default=_enum_value)


def loads(cls: type[T], text: str) -> T:
    """The `cls` record that `dumps` wrote as `text`."""
    return from_json(cls, json.loads(text))


def to_json(record: Any) -> dict[str, Any]:
    """The record as a JSON value (to nest inside a larger JSON document)."""
    data: dict[str, Any] = json.loads(dumps(record))
    return data


def from_json(cls: type[T], data: dict[str, Any]) -> T:
    """The `cls` record that `to_json` made `data` from."""
    return _record(cls, data)


def _enum_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not a record field type")


def _record(cls: type[T], data: dict[str, Any]) -> T:
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name], value) for name, value in data.items()})


def _value(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        kinds = [a for a in args if a is not type(None)]
        return _value(kinds[0], value) if len(kinds) == 1 else value
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], item) for item in value)
        return tuple(_value(a, item) for a, item in zip(args, value, strict=True))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _record(hint, value)
    return value
