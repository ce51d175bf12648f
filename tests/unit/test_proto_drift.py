"""The committed generated code and stubs are exactly what the protos generate."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.signals import Severity
from hangwatch.v1 import types_pb2 as pb

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_matches_protos(tmp_path):
    if shutil.which("protoc-gen-mypy") is None:
        pytest.fail("protoc-gen-mypy (mypy-protobuf) is not on PATH: pip install '.[test]'")
    subprocess.run(
        [str(ROOT / "scripts" / "gen-protos"), str(tmp_path)], check=True, capture_output=True
    )
    fresh = tmp_path / "hangwatch" / "v1"
    committed = ROOT / "hangwatch" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.suffix != ".proto")
    assert names == sorted(
        p.name for p in committed.iterdir() if p.is_file() and p.suffix not in (".pyc", ".proto")
    )
    _, mismatch, errors = filecmp.cmpfiles(fresh, committed, names, shallow=False)
    assert not mismatch and not errors, (
        f"generated code drifted from protos/: {mismatch + errors}; run scripts/gen-protos"
    )


def test_each_proto_is_linked_beside_its_generated_code():
    # The wheel ships hangwatch/v1/*.proto (package data): links to the sources.
    sources = sorted((ROOT / "protos" / "hangwatch" / "v1").glob("*.proto"))
    linked = sorted((ROOT / "hangwatch" / "v1").glob("*.proto"))
    assert [p.name for p in linked] == [p.name for p in sources]
    for link, source in zip(linked, sources, strict=True):
        assert link.is_symlink() and link.resolve() == source.resolve(), link


def test_every_enum_starts_with_unspecified_zero():
    from hangwatch.v1 import admin_service_pb2, agent_service_pb2

    for module in (pb, admin_service_pb2, agent_service_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            assert enum.values_by_number[0].name.endswith("_UNSPECIFIED"), enum.name


def test_agent_severity_mirrors_the_api():
    for member in Severity:
        assert pb.Severity.Value(f"SEVERITY_{member.name}") == member.value
