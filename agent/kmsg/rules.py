"""Kernel-log rules: the rule files' settings, and matching messages fast.

The agent matches every kernel line against every rule, so matching has a fast path: each
rule carries literals of which at least one is in every line it matches (declared or
derived from its pattern), and a rule's regex only runs on lines that contain one.
Rule files are read by the typed config loader, so a bad one is rejected whole with a
ConfigError that names the file, the rule and the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.kmsg.keywords import required_literals
from agent.kmsg.prefilter import KeywordIndex
from agent.signals import Severity
from hangwatch import config as cfg
from hangwatch.config import SettingError, one_of, positive, setting
from hangwatch.ids import is_kind

_TYPES = {"temporary": False, "permanent": True}


def _kind(value: str) -> str | None:
    if is_kind(value):
        return None
    return f"{value!r} is not an upper snake case kind (e.g. XFS_SHUTDOWN)"


def _regex(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regex: {exc}"
    return None


def _severity(value: str) -> str | None:
    try:
        Severity.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


def _keywords(value: list[str]) -> str | None:
    if value and all(value):
        return None
    return f"expected a non-empty list of non-empty strings, got {value!r}"


@dataclass(frozen=True)
class RateLimit:
    count: int = setting(0, "at most this many firings of the rule ...", positive)
    seconds: float = setting(0.0, "... in any window of this many seconds", positive)

    def __post_init__(self) -> None:
        for key in ("count", "seconds"):
            if not getattr(self, key):
                raise SettingError(key, "missing (expected { count = N, seconds = S })")


@dataclass(frozen=True)
class RuleSettings:
    """One [[rule]] table as written; `Rule` is what it compiles to."""

    name: str = setting("", "unique; an operator file's rule of the same name replaces it")
    pattern: str = setting("", "Python regex, searched anywhere in the message", _regex)
    kind: str = setting("", "upper snake case signal kind (agent/signals.py, Kind)", _kind)
    severity: str = setting("", "info, warning, error or critical", _severity)
    type: str = setting(
        "", "temporary (one-off) or permanent (holds until cleared)", one_of(*_TYPES)
    )
    clears: str | None = setting(None, "kind of the permanent condition this ends", _kind)
    rate_limit: RateLimit | None = setting(None, "{ count = N, seconds = S }: firings cap")
    device_group: str | None = setting(
        None, "named group of the pattern that captures the device (default: first named)"
    )
    keywords: list[str] | None = setting(
        None, "literals of which one is in every match (default: derived)", _keywords
    )
    description: str = setting("", "what the message means, for operators")

    def __post_init__(self) -> None:
        for key in ("name", "pattern", "kind", "severity", "type"):
            if not getattr(self, key):
                raise SettingError(key, "missing or empty")
        groups = re.compile(self.pattern).groupindex
        if self.device_group is not None and self.device_group not in groups:
            raise SettingError("device_group", f"pattern has no named group {self.device_group!r}")


@dataclass(frozen=True)
class RulesFile:
    rule: list[RuleSettings] = setting([], "the rules ([[rule]] tables), in order")

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, rule in enumerate(self.rule):
            if rule.name in seen:
                raise SettingError("rule", f"rule[{index}] repeats the name {rule.name!r}")
            seen.add(rule.name)


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

    @classmethod
    def compile(cls, settings: RuleSettings) -> Rule:
        keywords = settings.keywords
        return cls(
            name=settings.name,
            pattern=re.compile(settings.pattern),
            kind=settings.kind,
            severity=Severity.parse(settings.severity),
            permanent=_TYPES[settings.type],
            clears=settings.clears,
            rate_limit=settings.rate_limit,
            device_group=settings.device_group,
            keywords=tuple(keywords) if keywords else required_literals(settings.pattern) or (),
            description=settings.description,
        )


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
        self._searches = tuple(rule.pattern.search for rule in self.rules)

    def match(self, text: str) -> list[RuleMatch]:
        found = []
        for index in self._index.candidates(text):
            hit = self._searches[index](text)
            if hit is not None:
                found.append(RuleMatch(self.rules[index], hit))
        return found

    def match_naive(self, text: str) -> list[RuleMatch]:
        """Every regex on the line: the reference `match` must agree with."""
        found = []
        for rule in self.rules:
            hit = rule.pattern.search(text)
            if hit is not None:
                found.append(RuleMatch(rule, hit))
        return found


def parse_rules(content: str, source: str) -> list[Rule]:
    """Rules of one file; `source` names the file in error messages."""
    return _compiled(cfg.parse(RulesFile, content, source))


def _compiled(rules_file: RulesFile) -> list[Rule]:
    return [Rule.compile(settings) for settings in rules_file.rule]


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


def default_rules_text() -> str:
    return resources.files("agent.kmsg").joinpath("default_rules.toml").read_text("utf-8")


def load_rules(extra_files: Sequence[Path] = (), *, shipped: bool = True) -> RuleSet:
    """The shipped rules (unless `shipped` is False) extended by `extra_files`, in order."""
    rules = parse_rules(default_rules_text(), "default_rules.toml") if shipped else []
    for path in extra_files:
        rules = merge_rules(rules, _compiled(cfg.load(RulesFile, path)))
    return RuleSet(rules)
