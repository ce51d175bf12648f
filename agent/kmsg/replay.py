"""`hangwatch-agent rules check FILE`: replays a saved kernel log through the rules.

Operators use it to see what the agent would have raised for a log they have (and to
test their own rule files). Formats are detected per line, so a file mixing raw /dev/kmsg
records, dmesg output and syslog lines works too. Lines starting with '#' are comments,
so a saved log can be annotated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from agent.kmsg.classifier import Detection, KmsgClassifier
from agent.kmsg.record import (
    LINE_LIMIT,
    Format,
    KmsgRecord,
    Malformed,
    ParseResult,
    add_meta,
    parse_continuation,
    parse_line,
)
from agent.kmsg.rules import RuleSet

Output = Literal["table", "json"]
_COLUMNS = ("line", "rule", "kind", "severity", "device", "mount", "summary")


@dataclass(frozen=True)
class Firing:
    """One signal the log would raise; `line` is 1-based, where the signal's text starts."""

    line: int
    rule: str
    kind: str
    severity: str
    device: str | None
    mount: str | None
    summary: str

    @classmethod
    def of(cls, detection: Detection) -> Firing:
        signal = detection.signal
        return cls(
            line=detection.origin or 0,
            rule=detection.rule,
            kind=signal.kind,
            severity=signal.severity.name.lower(),
            device=signal.device,
            mount=signal.mount,
            summary=signal.summary,
        )


def _parsed(lines: Iterable[bytes]) -> Iterator[tuple[int, ParseResult]]:
    """(line number, record) pairs; ` KEY=VALUE` lines join the raw record above them."""
    held: tuple[int, KmsgRecord] | None = None
    for number, line in enumerate(lines, start=1):
        if line[:1] == b"#":
            continue
        pair = parse_continuation(line.decode("utf-8", "replace")) if line[:1] == b" " else None
        if pair is not None:
            if held is None:
                yield number, Malformed("continuation line without a record", repr(line[:80]))
            else:
                held = (held[0], add_meta(held[1], *pair))
            continue
        if held is not None:
            yield held
            held = None
        parsed = parse_line(line)
        if isinstance(parsed, KmsgRecord) and parsed.format is Format.KMSG:
            held = (number, parsed)
        else:
            yield number, parsed
    if held is not None:
        yield held


def replay(
    lines: Iterable[bytes],
    rules: RuleSet,
    device_to_mount: Callable[[str], str | None] | None = None,
) -> tuple[list[Firing], int]:
    """(firings in line order, malformed line count) for the lines of a saved log."""
    # A frozen clock: reports close by structure and line budget, never by how fast the
    # machine replays, so the result is the same everywhere.
    classifier = KmsgClassifier(
        rules, device_to_mount=device_to_mount or (lambda _: None), clock=lambda: 0.0
    )
    detections: list[Detection] = []
    for number, parsed in _parsed(lines):
        detections += classifier.feed(parsed, origin=number)
    detections += classifier.flush()
    firings = sorted((Firing.of(d) for d in detections), key=lambda f: f.line)
    return firings, classifier.malformed


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    """Lines of at most LINE_LIMIT + 1 bytes: an endless line cannot exhaust memory."""
    while line := stream.readline(LINE_LIMIT + 1):
        if len(line) > LINE_LIMIT and not line.endswith(b"\n"):
            while (rest := stream.readline(LINE_LIMIT)) and not rest.endswith(b"\n"):
                pass
        yield line


def check_file(
    path: Path | str,
    rules: RuleSet,
    device_to_mount: Callable[[str], str | None] | None = None,
) -> list[Firing]:
    with open(path, "rb") as stream:
        firings, _ = replay(_lines(stream), rules, device_to_mount)
    return firings


def format_firings(firings: Iterable[Firing], output: Output = "table") -> str:
    """A table for people, or JSON lines (one object per firing, fixed keys) for tools."""
    rows = [[getattr(f, column) for column in _COLUMNS] for f in firings]
    if output == "json":
        return "".join(json.dumps(dict(zip(_COLUMNS, row, strict=True))) + "\n" for row in rows)
    cells = [[c.upper() for c in _COLUMNS]] + [
        ["-" if value is None else str(value) for value in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_COLUMNS) - 1)]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        + "\n"
        for row in cells
    )
