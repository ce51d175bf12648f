"""Kernel call-trace lines of every architecture, and function names without build noise.

One reading of a trace for the agent (grouping hung-task reports) and the controller
(fingerprints of confirmed lockups), so both agree on what a frame is.
"""

from __future__ import annotations

import re

# A call-trace line of any architecture: x86 `? fn+0x1/0x2 [mod]`, arm64 `fn+0x1/0x2`,
# powerpc `[c0..] [c0..] fn+0x1/0x2` (` (unreliable)` after a guessed one; big-endian
# ppc64 writes `.fn`), s390 ` [<00..>] fn+0x1/0x2` and `([<00..>] fn+0x1/0x2)` for a
# guessed one, 32-bit ARM ` from `, /proc/PID/stack `[<0>] fn+0x1/0x2`.
FRAME = re.compile(
    r"(?P<paren>\()?(?:<\w+>\s+)?(?:\[<?[0-9a-f]+>?\]\s*)*(?P<unreliable>\?\s+)?"
    r"(?:\[<?[0-9a-f]+>?\]\s*)*\.?(?P<fn>[A-Za-z_][\w.]*)"
    r"(?:\+0x[0-9a-f]+/0x[0-9a-f]+(?:\s+\[[^\]]*\])?(?P<guessed>\s+\(unreliable\))?"
    r"| from [A-Za-z_][\w.]*\+0x[0-9a-f]+/0x[0-9a-f]+)(?(paren)\))"
)
# A function name on its own, as the agent keeps them (offsets already stripped); a
# run of hex digits is an address, not a name.
_NAME = re.compile(r"(?![0-9a-f]{8,}$)\.?(?P<fn>[A-Za-z_][\w.]*)")
# Suffixes the compiler gives the copies it makes of a function: the same code, named
# differently from one build to the next.
_CLONE = re.compile(r"(?:\.(?:constprop|isra|part|cold|llvm|lto_priv|localalias)(?:\.\d+)*)+$")


def is_frame(text: str) -> bool:
    """True for any call-trace line, reliable (`fn+0x1/0x2`) or not (`? fn+0x1/0x2`)."""
    return "+0x" in text and FRAME.fullmatch(text) is not None


def frame_function(text: str) -> tuple[str, bool] | None:
    """(function, guessed) of a call-trace line; `None` when the line is not one.

    A guessed frame is one the unwinder was not sure of (x86 `?`, powerpc
    `(unreliable)`, s390 parentheses): a leftover on the stack, not a caller.
    """
    match = FRAME.fullmatch(text)
    if match is None:
        return None
    return match["fn"], bool(match["unreliable"] or match["paren"] or match["guessed"])


def function_name(text: str) -> str | None:
    """The function a frame names, without offsets, module or compiler clone suffix.

    Takes a call-trace line of any architecture or a bare function name; `None` for a
    guessed frame and for anything else (an address, `Call Trace:`, `<TASK>`).
    """
    text = text.strip()
    parsed = frame_function(text)
    if parsed is not None:
        name, guessed = parsed
        if guessed:
            return None
    else:
        bare = _NAME.fullmatch(text)
        if bare is None:
            return None
        name = bare["fn"]
    return _CLONE.sub("", name) or None
