"""Text that is safe on a terminal: which characters are not printable, and their escapes.

A host id, a mount path or a summary comes from a machine somebody else controls; a
raw ESC in it would let that machine repaint an SRE's terminal (clear it, hide what
follows). Identifiers and paths refuse such characters at ingest; tables escape them.
"""

from __future__ import annotations


def first_unprintable(text: str) -> int | None:
    """The index of the first character that is not printable (control, format, line
    or paragraph separator, unassigned, or a space other than ' '); None when all are."""
    if text.isprintable():
        return None
    return next(i for i, ch in enumerate(text) if not ch.isprintable())


def escape(text: str) -> str:
    """`text` with every unprintable character as a Python-style escape: ESC as \\x1b,
    U+202E as \\u202e. Printable text comes back unchanged."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"
