"""Every example of the shared kernel-log corpus is classified as its EXPECT line says.

The corpus lives outside the project (../shared/corpus from the project root) and is read
where it lies. Its header gives the format: an example starts with
'### SOURCE: <where> | EXPECT: <categories>' and runs to the next one; '## NOTE:' lines
are annotations and are dropped.
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.kmsg.replay import replay
from agent.kmsg.rules import load_rules

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "kernel-log-corpus.txt"
HEADER = re.compile(r"### SOURCE: (?P<source>.*) \| EXPECT: (?P<expect>.+)$")
STORAGE_EXEMPT = {"OOM"}


@dataclass
class Example:
    line: int
    source: str
    expect: list[str]
    lines: list[bytes]


def examples() -> list[Example]:
    if not CORPUS.is_file():
        return []
    found: list[Example] = []
    for number, line in enumerate(CORPUS.read_bytes().splitlines(keepends=True), start=1):
        header = HEADER.match(line.decode("utf-8").rstrip("\n"))
        if header:
            expect = [c.strip() for c in header["expect"].split(",")]
            found.append(Example(number, header["source"], expect, []))
        elif found and not line.startswith(b"## NOTE:"):
            found[-1].lines.append(line)
    return found


EXAMPLES = examples()
RULES = load_rules()


def test_corpus_present():
    if not EXAMPLES:
        pytest.skip(f"kernel-log corpus not found at {CORPUS} (it is not part of the repo)")
    assert len(EXAMPLES) > 10


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_example(example):
    firings, _ = replay(example.lines, RULES)
    kinds = {f.kind for f in firings}
    summary = [(f.rule, f.severity, f.summary) for f in firings]
    for category in example.expect:
        if category in ("benign", "oom"):
            continue
        assert category.upper() in kinds, f"{example.source}: {category} not raised; got {summary}"
    if "benign" in example.expect:
        loud = [s for s in summary if s[1] != "info"]
        assert not loud, f"{example.source}: benign example raised {loud}"
    if "oom" in example.expect:
        expected = {c.upper() for c in example.expect}
        storage = kinds - STORAGE_EXEMPT - expected
        assert not storage, f"{example.source}: OOM example raised storage kinds {storage}"
