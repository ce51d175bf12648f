"""Kernel releases (`uname -r`) ordered the way the distributions order them, and ranges.

Which ordering applies is decided by the strings themselves:

- RPM style (RHEL, Fedora, Amazon Linux, ...): the release ends with an RPM
  architecture (`.x86_64`, `.aarch64`, optionally `+debug`) or carries a dist tag
  (`.el8`, `.fc39`, `.amzn2`). `4.18.0-305.el8.x86_64` is version `4.18.0`, release
  `305.el8`, each compared with rpm's own `rpmvercmp` (the `rpm-vercmp` package).
- Debian style (Debian, Ubuntu, and anything else with a dash): `6.1.0-13-amd64`
  is upstream `6.1.0`, ABI/revision `13` and flavour `amd64`; the first two are
  compared with dpkg's algorithm (`python-debian`).
- A plain upstream version (`5.4.0`, no dash) fits either style.

The flavour (`generic`, `amd64`, `x86_64`, `+debug`) names one build of the same
source, so it does not take part in the order: a bug in 5.4.0-42 is in all of its
flavours. A bound without a release (`<5.4.0`, `=5.4.0`) compares the upstream
version only, as rpm does for a requirement without a release. A host and a bound
of different styles are never compared: a RHEL range never matches a Debian host.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from debian.debian_support import version_compare
from rpm_vercmp import vercmp

_RPM_ARCH = re.compile(r"\.(x86_64|aarch64|ppc64le|ppc64|s390x|i686|armv7hl|noarch)(\+\w+)?$")
_RPM_DIST = re.compile(r"\.(el\d+|fc\d+|amzn\d+|an\d+|ol\d+|mga\d+)")
# Trailing dash-separated words that start with a letter: "-generic", "-cloud-amd64".
_DEB_FLAVOUR = re.compile(r"(-[A-Za-z][A-Za-z0-9+]*)+$")
_RELEASE = re.compile(r"^[0-9][0-9A-Za-z.+~_-]*$")

Compare = Callable[[str, str], int]
_COMPARE: dict[str, Compare] = {"deb": version_compare, "rpm": vercmp}
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "=": operator.eq,
}


class BadVersion(ValueError):
    """A kernel release or range that cannot be read; the message says why."""


@dataclass(frozen=True)
class Release:
    text: str
    style: str | None  # "deb", "rpm", or None for a plain upstream version
    upstream: str
    release: str  # "" when the string has none
    flavour: str


def parse(text: str) -> Release:
    """Splits a kernel release into its ordered parts; raises BadVersion."""
    if not _RELEASE.match(text):
        raise BadVersion(
            f"{text[:80]!r} is not a kernel release (it starts with a digit and holds "
            "letters, digits and . + ~ _ - only)"
        )
    arch = _RPM_ARCH.search(text)
    if arch or _RPM_DIST.search(text):
        core = text[: arch.start()] if arch else text
        upstream, _, release = core.rpartition("-") if "-" in core else (core, "", "")
        return Release(text, "rpm", upstream, release, arch.group(0)[1:] if arch else "")
    flavour = _DEB_FLAVOUR.search(text)
    core = text[: flavour.start()] if flavour else text
    upstream, dash, release = core.partition("-")
    style = "deb" if dash or flavour else None
    return Release(text, style, upstream, release, flavour.group(0)[1:] if flavour else "")


def compare(a: Release, b: Release) -> int | None:
    """-1, 0 or 1 as `a` sorts before, with or after `b`; None when the styles differ."""
    if a.style and b.style and a.style != b.style:
        return None
    cmp = _COMPARE[a.style or b.style or "deb"]
    first = cmp(a.upstream, b.upstream)
    if first or not a.release or not b.release:
        return _sign(first)
    return _sign(cmp(a.release, b.release))


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


@dataclass(frozen=True)
class Range:
    """Comma-joined clauses (`>=A,<B`, `<B`, `=A`) that must all hold."""

    text: str
    clauses: tuple[tuple[str, Release], ...]

    def matches(self, release: str) -> bool:
        try:
            host = parse(release)
        except BadVersion:
            return False
        for op, bound in self.clauses:
            order = compare(host, bound)
            if order is None or not _OPS[op](order, 0):
                return False
        return True


def parse_range(text: str) -> Range:
    """Reads a range; raises BadVersion naming the clause that is wrong."""
    clauses = []
    styles = set()
    for raw in text.split(","):
        clause = raw.strip()
        op = next((o for o in _OPS if clause.startswith(o)), None)
        if op is None:
            raise BadVersion(
                f"{clause[:80]!r}: each clause starts with one of {', '.join(_OPS)} "
                "(e.g. '>=5.4.0-40-generic,<5.4.0-48-generic')"
            )
        bound = parse(clause[len(op) :].strip())
        if bound.style:
            styles.add(bound.style)
        clauses.append((op, bound))
    if len(styles) > 1:
        raise BadVersion(f"{text[:80]!r} mixes RPM and Debian style releases")
    return Range(text, tuple(clauses))


def at_least(release: str, target: str) -> bool:
    """Whether `release` is `target` or newer (False when they cannot be compared)."""
    try:
        order = compare(parse(release), parse(target))
    except BadVersion:
        return False
    return order is not None and order >= 0
