"""Typed TOML configuration: defaults < file < flags, and errors that name the key.

Each program declares its settings as frozen dataclasses whose fields carry a
`doc` and, where useful, a `check` in their metadata. This module turns a TOML
document plus flag overrides into such a dataclass, refusing unknown keys and
wrong types with a message that names the file (or flag) and the dotted key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from hangwatch.errors import ConfigError

T = TypeVar("T")

Check = Callable[[Any], str | None]

# A table of test-only knobs (a faked kernel release, a wedged loop): a file may
# hold it only when the program is started with this flag.
TESTING_SECTION = "testing"
ALLOW_TESTING_FLAG = "--allow-testing"
# TOML integers are 64-bit; Python's parser takes any size, which protobuf fields,
# timers and float conversion then fail on far from the file.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# The largest value `positive` allows: about 31 years in seconds, below what a
# protobuf Duration or a thread timeout can hold, so no setting overflows one.
POSITIVE_MAX = 1e9


class SettingError(ValueError):
    """Raised by a settings class's __post_init__ when keys disagree with each other."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


def setting(default: Any, doc: str, check: Check | None = None) -> Any:
    """Declares one setting: its default, what it is for, and an optional value check.

    `check` returns an error text for a bad value, or None.
    """
    if isinstance(default, list | dict):
        factory = lambda d=default: type(d)(d)  # noqa: E731
        return dataclasses.field(default_factory=factory, metadata={"doc": doc, "check": check})
    return dataclasses.field(default=default, metadata={"doc": doc, "check": check})


def section(cls: type[T], doc: str) -> Any:
    """Declares a nested table of settings."""
    return dataclasses.field(default_factory=cls, metadata={"doc": doc, "check": None})


def load(
    cls: type[T],
    path: Path | None,
    overrides: Mapping[str, tuple[Any, str]] | None = None,
    allow_testing: bool = False,
) -> T:
    """Builds `cls` from the TOML file at `path` and flag overrides.

    `overrides` maps dotted keys to (value, flag name); None values are ignored so
    unset flags fall through to the file and the defaults. A [testing] table is
    refused unless `allow_testing`.
    """
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
        raw = _toml(text, str(path))
    testing = any(f.name == TESTING_SECTION for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    if testing and TESTING_SECTION in raw and not allow_testing:
        raise ConfigError(
            f"{path}: section [{TESTING_SECTION}] holds test-only knobs: refused unless "
            f"the program is started with {ALLOW_TESTING_FLAG}"
        )
    for key, (value, flag) in (overrides or {}).items():
        if value is None:
            continue
        table = raw
        *parents, leaf = key.split(".")
        for part in parents:
            table = table.setdefault(part, {})
        table[leaf] = value
        origin[key] = flag
    return _build(cls, raw, prefix="", where=str(path) if path else "defaults", origin=origin)


def parse(cls: type[T], text: str, where: str) -> T:
    """Builds `cls` from TOML text that is not a config file of its own (a packaged
    resource, say); `where` names it in error messages."""
    return _build(cls, _toml(text, where), prefix="", where=where, origin={})


def _toml(text: str, where: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None


def _build(
    cls: type[T], raw: Mapping[str, Any], prefix: str, where: str, origin: Mapping[str, str]
) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    for key in raw:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(f"{where}: unknown key '{prefix}{key}' (known here: {known})")
    values: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in raw:
            continue
        dotted = prefix + name
        source = f"{origin[dotted]}" if dotted in origin else where
        hint = hints[name]
        value = raw[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: key '{dotted}': expected a table")
            values[name] = _build(typing.cast(type, hint), value, dotted + ".", where, origin)
            continue
        values[name] = _coerce(value, hint, source, dotted)
        check = f.metadata.get("check")
        if check is not None:
            problem = check(values[name])
            if problem:
                raise ConfigError(f"{source}: key '{dotted}': {problem}")
    try:
        return cls(**values)
    except SettingError as exc:
        raise ConfigError(f"{where}: key '{prefix}{exc.key}': {exc.problem}") from None


def _coerce(value: Any, hint: Any, where: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, where, key)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: key '{key}': expected a list, got {_tname(value)}")
        (item,) = args
        if dataclasses.is_dataclass(item):
            return [_entry(item, entry, f"{key}[{i}]", where) for i, entry in enumerate(value)]
        return [_coerce(v, item, where, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a table, got {_tname(value)}")
        _, item = args
        return {k: _coerce(v, item, where, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: key '{key}': expected a table, got {_tname(value)}")
        return _build(typing.cast(type, hint), value, key + ".", where, {})
    if isinstance(value, int) and not isinstance(value, bool) and not INT_MIN <= value <= INT_MAX:
        raise ConfigError(f"{where}: key '{key}': {value} is out of range (a 64-bit integer)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where}: key '{key}': must be a finite number, got {value}")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if type(value) is not hint:
            expected = {
                int: "an integer",
                float: "a number",
                str: "a string",
                bool: "true or false",
            }
            raise ConfigError(
                f"{where}: key '{key}': expected {expected[hint]}, got {_tname(value)}"
            )
        return value
    raise TypeError(f"unsupported setting type {hint!r} for {key}")


def _entry(cls: Any, entry: Any, label: str, where: str) -> Any:
    """One table of an array of tables ([[x]]). Messages about it name the entry, by
    its `name` key too when it has one: "rules.toml: rule[2] ('nfs_ok'): key 'kind': ..."."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: key '{label}': expected a table")
    name = entry.get("name")
    if isinstance(name, str) and name:
        label += f" ({name!r})"
    return _build(typing.cast(type, cls), entry, "", f"{where}: {label}", {})


def _tname(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "a table",
    }
    return names.get(type(value), type(value).__name__)


def dump(config: Any) -> str:
    """Renders the effective config as TOML (what --print-config shows)."""

    def strip_none(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [strip_none(v) for v in value]
        return value

    data = dataclasses.asdict(config)
    # Test-only knobs at their defaults are left out, so the output is a valid file.
    testing = getattr(config, TESTING_SECTION, None)
    if testing is not None and testing == type(testing)():
        del data[TESTING_SECTION]
    return tomli_w.dumps(strip_none(data))


def positive(value: float) -> str | None:
    if value <= 0:
        return f"must be greater than 0, got {value}"
    return None if value <= POSITIVE_MAX else f"must be at most {POSITIVE_MAX:g}, got {value}"


def at_most(maximum: float) -> Check:
    """A positive number no greater than `maximum` (a share, a percentage)."""

    def check(value: float) -> str | None:
        problem = positive(value)
        if problem is None and value > maximum:
            problem = f"must be at most {maximum:g}, got {value}"
        return problem

    return check


def optional_absolute_path(value: str) -> str | None:
    """Unset, or an absolute path: a daemon's working directory is no anchor for files."""
    return None if not value or value.startswith("/") else f"{value!r} is not an absolute path"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}, got {value!r}"

    return check
