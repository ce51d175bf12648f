"""Kernel-log rules: loading and validating TOML rule files, and matching messages fast.

The agent matches every kernel line against every rule, so matching has a fast path: each
rule carries literals of which at least one is in every line it matches (declared or
derived from its pattern), and a rule's regex only runs on lines that contain one.
Bad rule files are rejected whole, with the file, rule and key named.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agent.kmsg.keywords import required_literals
from agent.kmsg.prefilter import KeywordIndex
from agent.signals import Severity

KIND_RE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
_TYPES = {"temporary": False, "permanent": True}
_KEYS = {
    "name",
    "pattern",
    "kind",
    "severity",
    "type",
    "clears",
    "rate_limit",
    "device_group",
    "keywords",
    "description",
}


class RulesError(ValueError):
    """A rule file is unusable; the message names the file, rule and key."""


# Builds the error for (key, problem) of the rule being read.
_Fail = Callable[[str, str], RulesError]


@dataclass(frozen=True)
class RateLimit:
    count: int
    seconds: float


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    kind: str
    severity: Severity
    permanent: bool = False
    clears: str | None = None
    rate_limit: RateLimit | None = None
    device_group: str | None = None
    # Any-of prefilter literals; empty: the regex runs on every line.
    keywords: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class RuleMatch:
    rule: Rule
    match: re.Match[str]


class RuleSet:
    """Rules in file order; `match` returns every rule that matches, in that order."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        by_keyword: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword, []).append(index)
        always = (i for i, rule in enumerate(self.rules) if not rule.keywords)
        self._index = KeywordIndex(by_keyword, always)

    def match(self, text: str) -> list[RuleMatch]:
        found = []
        for index in self._index.candidates(text):
            rule = self.rules[index]
            hit = rule.pattern.search(text)
            if hit is not None:
                found.append(RuleMatch(rule, hit))
        return found

    def match_naive(self, text: str) -> list[RuleMatch]:
        """Every regex on the line: the reference `match` must agree with."""
        found = []
        for rule in self.rules:
            hit = rule.pattern.search(text)
            if hit is not None:
                found.append(RuleMatch(rule, hit))
        return found


def _where(source: str, index: int, table: Mapping[str, Any]) -> str:
    name = table.get("name")
    label = f"{name!r}" if isinstance(name, str) else "unnamed"
    return f"{source}: rule {index} ({label})"


def _rule(source: str, index: int, table: Mapping[str, Any]) -> Rule:
    where = _where(source, index, table)

    def fail(key: str, problem: str) -> RulesError:
        return RulesError(f"{where}: key {key!r}: {problem}")

    def optional(key: str) -> str | None:
        value = table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def required(key: str) -> str:
        value = optional(key)
        if value is None:
            raise fail(key, "missing")
        return value

    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown key (known: {', '.join(sorted(_KEYS))})")
    name = required("name")
    source_pattern = required("pattern")
    kind = required("kind")
    clears = optional("clears")
    try:
        pattern = re.compile(source_pattern)
    except re.error as exc:
        raise fail("pattern", f"invalid regex: {exc}") from None
    for key, value in (("kind", kind), ("clears", clears)):
        if value is not None and KIND_RE.fullmatch(value) is None:
            raise fail(key, f"{value!r} is not an upper snake case kind (e.g. XFS_SHUTDOWN)")
    try:
        severity = Severity.parse(required("severity"))
    except ValueError as exc:
        raise fail("severity", str(exc)) from None
    kind_type = required("type")
    if kind_type not in _TYPES:
        raise fail("type", f"unknown type {kind_type!r} (expected temporary or permanent)")
    device_group = optional("device_group")
    if device_group is not None and device_group not in pattern.groupindex:
        raise fail("device_group", f"pattern has no named group {device_group!r}")
    return Rule(
        name=name,
        pattern=pattern,
        kind=kind,
        severity=severity,
        permanent=_TYPES[kind_type],
        clears=clears,
        rate_limit=_rate_limit(table.get("rate_limit"), fail),
        device_group=device_group,
        keywords=_keywords(table.get("keywords"), source_pattern, fail),
        description=optional("description") or "",
    )


def _rate_limit(value: Any, fail: _Fail) -> RateLimit | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"count", "seconds"}:
        raise fail("rate_limit", f"expected {{ count = N, seconds = S }}, got {value!r}")
    count, seconds = value["count"], value["seconds"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise fail("rate_limit", f"count must be a positive integer, got {count!r}")
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise fail("rate_limit", f"seconds must be a positive number, got {seconds!r}")
    return RateLimit(count, float(seconds))


def _keywords(value: Any, pattern: str, fail: _Fail) -> tuple[str, ...]:
    if value is None:
        return required_literals(pattern) or ()
    if not isinstance(value, list) or not value or not all(isinstance(k, str) and k for k in value):
        raise fail("keywords", f"expected a non-empty list of non-empty strings, got {value!r}")
    return tuple(value)


def parse_rules(content: str, source: str) -> list[Rule]:
    """Rules of one file; `source` names the file in error messages."""
    try:
        document = tomllib.loads(content)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{source}: invalid TOML: {exc}") from None
    extra = sorted(set(document) - {"rule"})
    if extra:
        raise RulesError(f"{source}: unknown top-level key {extra[0]!r} (expected [[rule]])")
    tables = document.get("rule", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise RulesError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, table in enumerate(tables, start=1):
        rule = _rule(source, index, table)
        if rule.name in seen:
            raise RulesError(f"{_where(source, index, table)}: key 'name': duplicate name")
        seen.add(rule.name)
        rules.append(rule)
    return rules


def merge_rules(base: Sequence[Rule], extra: Sequence[Rule]) -> list[Rule]:
    """Operator rules: a same-named rule replaces the base one in place, others append."""
    merged = list(base)
    position = {rule.name: i for i, rule in enumerate(merged)}
    for rule in extra:
        if rule.name in position:
            merged[position[rule.name]] = rule
        else:
            position[rule.name] = len(merged)
            merged.append(rule)
    return merged


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{path}: cannot read: {exc}") from None


def default_rules_text() -> str:
    return resources.files("agent.kmsg").joinpath("default_rules.toml").read_text("utf-8")


def load_rules(extra_files: Sequence[Path] = (), *, shipped: bool = True) -> RuleSet:
    """The shipped rules (unless `shipped` is False) extended by `extra_files`, in order."""
    rules = parse_rules(default_rules_text(), "default_rules.toml") if shipped else []
    for path in extra_files:
        rules = merge_rules(rules, parse_rules(_read(path), str(path)))
    return RuleSet(rules)
