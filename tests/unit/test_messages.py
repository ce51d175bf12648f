"""Enum labels: the short name of every API enum value, and back."""

from __future__ import annotations

import pytest

from hangwatch.messages import enum_label, enum_number
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import types_pb2 as pb

ENUMS = [
    getattr(module, name)
    for module in (pb, admin_pb)
    for name in module.DESCRIPTOR.enum_types_by_name
]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.DESCRIPTOR.name)
def test_every_label_is_short_and_names_its_value(enum):
    for number in enum.values():
        label = enum_label(enum, number)
        assert enum.Name(number).endswith("_" + label) and "_" + label != enum.Name(number)
        assert enum_number(enum, label) == number


def test_labels_of_known_and_unknown_values():
    assert enum_label(pb.CommandStatus, pb.COMMAND_STATUS_SUCCEEDED) == "SUCCEEDED"
    assert enum_label(admin_pb.UpgradePlanState, 99) == "99"
    assert enum_number(admin_pb.FailoverState, "FENCE_FAILED") == (
        admin_pb.FAILOVER_STATE_FENCE_FAILED
    )
    with pytest.raises(ValueError):
        enum_number(pb.CommandStatus, "NOT_A_STATUS")
