"""The kernel's own wordings, collected from its source, raise what each example says.

The fixtures (tests/fixtures/kmsg-wordings, format in its README) hold what the format
strings of kernel 3.10 through 6.x print on x86-64, arm64, powerpc and s390. Each example
is replayed alone and must raise exactly its expected signals; each file is also replayed
whole through `hangwatch-agent rules check`, as an operator would.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from agent.kmsg.replay import Firing, replay
from agent.kmsg.rules import load_rules

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kmsg-wordings"
SOURCE = re.compile(r"# source: (?P<file>[\w./-]+\.[ch]) (?P<version>v[3-6]\.\d+)\b")
EXPECT = re.compile(
    r"# expect: (?:none|(?P<rule>\w+) (?P<kind>[A-Z0-9_]+)(?: device=(?P<dev>\S+))?)$"
)
RULES = load_rules()


@dataclass
class Example:
    path: Path
    first_line: int
    sources: list[str] = field(default_factory=list)
    expected: list[tuple[str, str, str | None]] = field(default_factory=list)
    says_none: bool = False
    lines: list[tuple[int, bytes]] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.path.stem}:{self.first_line}"

    @property
    def last_line(self) -> int:
        return self.lines[-1][0]


def examples_of(path: Path) -> list[Example]:
    found: list[Example] = []
    current: Example | None = None
    for number, raw in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        text = raw.decode("utf-8").rstrip("\n")
        if not text.strip():
            continue
        if not text.startswith("#"):
            if current is not None:
                current.lines.append((number, raw))
            continue
        if current is None or current.lines:
            if not text.startswith("# source:"):
                continue  # the file's own header, before its first example
            current = Example(path, number)
            found.append(current)
        if text.startswith("# source:"):
            current.sources.append(text)
        elif text.startswith("# expect:"):
            match = EXPECT.match(text)
            assert match, f"{path.name}:{number}: bad expectation {text!r}"
            if match["rule"]:
                current.expected.append((match["rule"], match["kind"], match["dev"]))
            else:
                current.says_none = True
    return found


FILES = sorted(FIXTURES.glob("*.txt"))
EXAMPLES = [example for path in FILES for example in examples_of(path)]


def test_fixtures_cover_every_category():
    assert {path.stem for path in FILES} >= {
        "hung-task",
        "lockups",
        "rcu",
        "xfs",
        "ext4",
        "btrfs",
        "block",
        "scsi",
        "nvme",
        "nfs",
        "md",
        "multipath",
    }
    assert len(EXAMPLES) > 150


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_is_well_formed(example):
    assert example.lines, "an example needs message lines"
    assert example.sources and all(SOURCE.match(s) for s in example.sources), example.sources
    assert example.says_none != bool(example.expected), "expect either signals or none"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_example_raises_what_it_expects(example):
    firings, malformed = replay((raw for _, raw in example.lines), RULES)
    assert malformed == 0
    got = Counter((f.rule, f.kind) for f in firings)
    assert got == Counter((rule, kind) for rule, kind, _ in example.expected), [
        (f.rule, f.summary) for f in firings
    ]
    devices = {f.rule: f.device for f in firings}
    for rule, _, device in example.expected:
        if device is not None:
            assert devices[rule] == device


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_rules_check_on_the_whole_file(path):
    """Nothing outside an example fires (comments, notes), and each example fires as alone."""
    result = CliRunner().invoke(main, ["rules", "check", str(path), "-o", "json"])
    assert result.exit_code == 0, result.output
    firings = [Firing(**json.loads(line)) for line in result.output.splitlines()]
    examples = examples_of(path)
    by_example: dict[int, Counter[tuple[str, str]]] = {}
    for firing in firings:
        (owner,) = [e for e in examples if e.first_line <= firing.line <= e.last_line]
        by_example.setdefault(owner.first_line, Counter())[(firing.rule, firing.kind)] += 1
    for example in examples:
        expected = Counter((rule, kind) for rule, kind, _ in example.expected)
        assert by_example.get(example.first_line, Counter()) == expected, example.id
