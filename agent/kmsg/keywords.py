"""Literal text a regex cannot match without: the cheap prefilter in front of the rules.

For a pattern, returns alternatives of which at least one occurs in every match, e.g.
`XFS \\((?P<d>[^)]+)\\): (?:log|metadata) I/O error` gives ("): log I/O error", "): metadata
I/O error") or ("XFS (",), whichever is more selective. A pattern this walker cannot reason
about (case-insensitive, verbose) gets None and is then tried on every line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shorter literals hit too many lines to be worth checking first.
MIN_KEYWORD = 4

_Alternatives = tuple[str, ...]
_ESCAPE_OPERANDS = {
    "x": r"[0-9a-fA-F]{2}",
    "u": r"[0-9a-fA-F]{4}",
    "U": r"[0-9a-fA-F]{8}",
    "N": r"\{[^}]*\}",
}


class _Unsupported(Exception):
    """The pattern uses a construct after which no literal can be trusted."""


class _Walker:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def peek(self) -> str:
        return self.pattern[self.pos : self.pos + 1]

    def alternation(self) -> _Alternatives | None:
        """Branches up to ')' or the end; any-of literals for the whole, or None."""
        branches = [self.branch()]
        while self.peek() == "|":
            self.pos += 1
            branches.append(self.branch())
        found: list[str] = []
        for branch in branches:
            if branch is None:
                return None
            found.extend(k for k in branch if k not in found)
        return tuple(found)

    def branch(self) -> _Alternatives | None:
        candidates: list[_Alternatives] = []
        run: list[str] = []

        def end_run() -> None:
            if run:
                candidates.append(("".join(run),))
                run.clear()

        while self.peek() not in ("", "|", ")"):
            atom = self.atom()
            optional, repeated = self.quantifier()
            if isinstance(atom, str):
                if optional:
                    end_run()
                else:
                    run.append(atom)
                    if repeated:
                        end_run()
                continue
            end_run()
            if atom is not None and not optional:
                candidates.append(atom)
        end_run()
        return _best(candidates)

    def atom(self) -> str | _Alternatives | None:
        """A literal character, a group's alternatives, or None for anything else."""
        char = self.peek()
        self.pos += 1
        if char == "\\":
            escaped = self.peek()
            self.pos += 1
            if escaped and not escaped.isalnum():
                return escaped
            # Skip the operands of \xHH, \uHHHH, \UHHHHHHHH, \N{...} and \1 / \012.
            operand_re = _ESCAPE_OPERANDS.get(escaped, r"\d{0,2}" if escaped.isdigit() else "")
            operand = re.match(operand_re, self.pattern[self.pos :])
            self.pos += operand.end() if operand else 0
            return None
        if char == "[":
            self.skip_class()
            return None
        if char == "(":
            return self.group()
        if char in ".^$":
            return None
        return char

    def skip_class(self) -> None:
        if self.peek() == "^":
            self.pos += 1
        if self.peek() == "]":
            self.pos += 1
        while self.peek() not in ("", "]"):
            self.pos += 2 if self.peek() == "\\" else 1
        self.pos += 1

    def group(self) -> _Alternatives | None:
        required = True
        if self.peek() == "?":
            self.pos += 1
            head = self.peek()
            if head == "P" and self.pattern[self.pos + 1 : self.pos + 2] == "<":
                self.pos = self.pattern.index(">", self.pos) + 1
            elif head == ":":
                self.pos += 1
            elif head in ("=", "!", "<"):
                required = False
                self.pos += 2 if head == "<" else 1
            else:
                raise _Unsupported(f"group (?{head}")
        inner = self.alternation()
        if self.peek() != ")":
            raise _Unsupported("unbalanced group")
        self.pos += 1
        return inner if required else None

    def quantifier(self) -> tuple[bool, bool]:
        """(makes the atom optional, repeats it)."""
        char = self.peek()
        if char in ("*", "?", "+"):
            self.pos += 1
            optional, repeated = char != "+", char != "?"
        elif char == "{" and (bounds := re.match(r"\{(\d*)(,?)\d*\}", self.pattern[self.pos :])):
            self.pos += bounds.end()
            optional, repeated = bounds[1] in ("", "0"), True
        else:
            return False, False
        if self.peek() in ("?", "+"):
            self.pos += 1
        return optional, repeated


def _best(candidates: Iterable[_Alternatives]) -> _Alternatives | None:
    """The most selective candidate: its shortest literal is the longest."""
    best: _Alternatives | None = None
    for candidate in candidates:
        if not candidate or min(map(len, candidate)) < MIN_KEYWORD:
            continue
        if best is None or min(map(len, candidate)) > min(map(len, best)):
            best = candidate
    return best


def required_literals(pattern: str) -> _Alternatives | None:
    """Any-of literals every match of `pattern` contains; None when none can be derived."""
    try:
        flags = re.compile(pattern).flags
    except re.error:
        return None
    if flags & (re.IGNORECASE | re.VERBOSE):
        return None
    walker = _Walker(pattern)
    try:
        found = walker.alternation()
    except _Unsupported:
        return None
    return found if walker.pos >= len(pattern) else None
