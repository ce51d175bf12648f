"""Example config files generated from the settings classes, so they cannot drift.

Every setting appears with its doc text and its default, commented out: uncommenting
a `# key = value` line gives a valid file equal to the defaults. Lists of tables
(`[[groups]]`) have no default entries; their keys are listed at the end, indented,
so uncommenting the plain settings never touches them.
"""

from __future__ import annotations

import dataclasses
import textwrap
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any

import tomli_w

WIDTH = 84


def render(
    cls: type, placeholders: Mapping[str, str] | None = None, omit: Collection[str] = ()
) -> str:
    """The body of an example file for `cls`.

    `placeholders` maps dotted keys to the text shown instead of a default that
    depends on the machine (the hostname); `omit` names top-level tables left out.
    """
    shown = placeholders or {}
    lines: list[str] = []
    tables: list[tuple[str, str, type]] = []
    arrays: list[tuple[str, str, type]] = []
    _fields(cls, "", shown, lines, tables, arrays)
    tables = [table for table in tables if table[0] not in omit]
    while tables:
        name, doc, table = tables.pop(0)
        lines += ["", *_comment(doc), f"[{name}]"]
        nested: list[tuple[str, str, type]] = []
        _fields(table, f"{name}.", shown, lines, nested, arrays)
        tables[:0] = nested
    for name, doc, table in arrays:
        lines += ["", *_comment(f"{doc}; none by default. Keys of each [[{name}]]:")]
        for field in dataclasses.fields(table):
            lines.append(f"#   {_assignment(field, f'{name}.{field.name}', shown)}")
            lines += [f"#       {line}" for line in textwrap.wrap(_doc(field), WIDTH - 8)]
    return "\n".join(lines) + "\n"


def _fields(
    cls: type,
    prefix: str,
    shown: Mapping[str, str],
    lines: list[str],
    tables: list[tuple[str, str, type]],
    arrays: list[tuple[str, str, type]],
) -> None:
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        dotted = prefix + field.name
        if dataclasses.is_dataclass(hint):
            tables.append((dotted, _doc(field), typing.cast(type, hint)))
            continue
        # A list's item type; a dict's value type (never a table) is last too.
        item = (typing.get_args(hint) or (None,))[-1]
        if typing.get_origin(hint) is list and dataclasses.is_dataclass(item):
            arrays.append((dotted, _doc(field), typing.cast(type, item)))
        lines += ["", *_comment(_doc(field)), f"# {_assignment(field, dotted, shown)}"]


def _assignment(field: dataclasses.Field[Any], dotted: str, shown: Mapping[str, str]) -> str:
    if dotted in shown:
        return f"{field.name} = {shown[dotted]}"
    if field.default is dataclasses.MISSING:
        return f"{field.name} = {_value(typing.cast(Callable[[], Any], field.default_factory)())}"
    return f"{field.name} = {_value(field.default)}"


def _value(value: Any) -> str:
    """One TOML value on one line (tomli_w would turn a dict into a table)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    return tomli_w.dumps({"v": value}).strip().removeprefix("v = ")


def _doc(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata["doc"])


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, WIDTH - 2)]
