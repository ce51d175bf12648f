"""API messages as plain data: the JSON view every program prints and posts, and enum
values by their short names.

One definition, so that `hangwatchctl -o json`, webhook bodies and logs agree.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

if TYPE_CHECKING:  # the generic wrapper exists in the stubs only
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

V = TypeVar("V", bound=int)


def to_dict(message: Message) -> dict[str, Any]:
    """The message with its proto field names (stable keys) and every field present."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _prefix(enum: Any) -> str:
    # CommandStatus -> COMMAND_STATUS_: the API's enums prefix each value with their name.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.DESCRIPTOR.name).upper() + "_"


def enum_label(enum: Any, value: int) -> str:
    """SUCCEEDED for COMMAND_STATUS_SUCCEEDED; the number itself for a value this build
    does not know (a newer peer's), so printing never fails. `enum` is a generated
    enum type (typed loosely: each one's stub is a class of its own)."""
    try:
        name: str = enum.Name(value)
    except ValueError:
        return str(value)
    return name.removeprefix(_prefix(enum))


def enum_number(enum: _EnumTypeWrapper[V], label: str) -> V:
    """The value `enum_label` calls `label` (COMMAND_STATUS_SUCCEEDED for SUCCEEDED);
    ValueError for a label the enum does not have."""
    return enum.Value(_prefix(enum) + label)
