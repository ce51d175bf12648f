"""Kernel release ordering and ranges, on real Debian, Ubuntu and RHEL release strings."""

from __future__ import annotations

import pytest

from controller.upgrades.kernelversion import BadVersion, at_least, compare, parse, parse_range

# (older, newer): each pair as the distribution orders it.
ORDERED = [
    # Debian: the ABI number is compared as a number, not as text.
    ("6.1.0-9-amd64", "6.1.0-13-amd64"),
    ("5.10.0-26-amd64", "6.1.0-9-amd64"),
    ("6.1.0-0.deb11.13-amd64", "6.1.0-13-amd64"),  # a bullseye backport sorts first
    ("6.1.0-13-amd64", "6.1.0-13+b1-amd64"),
    ("6.1.0~rc7-1-amd64", "6.1.0-1-amd64"),  # ~ sorts before the release
    # Ubuntu.
    ("5.4.0-42-generic", "5.4.0-100-generic"),
    ("5.4.0-100-generic", "5.15.0-25-generic"),
    ("5.15.0-1034-aws", "5.15.0-1040-aws"),
    ("5.15.0-91-generic", "5.15.0-1034-aws"),
    # RHEL and friends.
    ("4.18.0-80.el8.x86_64", "4.18.0-305.el8.x86_64"),
    ("4.18.0-305.el8.x86_64", "4.18.0-305.10.2.el8_4.x86_64"),
    ("4.18.0-513.5.1.el8_9.x86_64", "5.14.0-284.11.1.el9_2.x86_64"),
    ("5.14.0-284.11.1.el9_2.aarch64", "5.14.0-362.8.1.el9_3.aarch64"),
    ("6.5.6-300.fc39.x86_64", "6.6.2-201.fc39.x86_64"),
    ("5.10.184-175.731.amzn2.x86_64", "5.10.192-182.736.amzn2.x86_64"),
]

# Equal in order: the flavour names a build of the same source.
SAME = [
    ("5.4.0-42-generic", "5.4.0-42-lowlatency"),
    ("6.1.0-13-amd64", "6.1.0-13-cloud-amd64"),
    ("4.18.0-305.el8.x86_64", "4.18.0-305.el8.x86_64+debug"),
    ("5.4.0-42-generic", "5.4.0"),  # a bound without a release: upstream only
    ("4.18.0-305.el8.x86_64", "4.18.0"),
]


@pytest.mark.parametrize(("older", "newer"), ORDERED)
def test_order(older, newer):
    assert compare(parse(older), parse(newer)) == -1
    assert compare(parse(newer), parse(older)) == 1
    assert compare(parse(newer), parse(newer)) == 0


@pytest.mark.parametrize(("a", "b"), SAME)
def test_same(a, b):
    assert compare(parse(a), parse(b)) == 0


@pytest.mark.parametrize(
    ("text", "style"),
    [
        ("6.1.0-13-amd64", "deb"),
        ("5.4.0-42-generic", "deb"),
        ("4.18.0-305.el8.x86_64", "rpm"),
        ("4.18.0-305.el8", "rpm"),
        ("6.5.6-300.fc39.aarch64", "rpm"),
        ("5.4.0", None),
    ],
)
def test_style_comes_from_the_string(text, style):
    assert parse(text).style == style


def test_styles_are_never_compared_with_each_other():
    assert compare(parse("6.1.0-13-amd64"), parse("4.18.0-305.el8.x86_64")) is None
    assert not parse_range("<5.0.0-1.el8.x86_64").matches("4.19.0-26-amd64")


@pytest.mark.parametrize(
    ("spec", "release", "expected"),
    [
        (">=5.4.0-40-generic,<5.4.0-48-generic", "5.4.0-39-generic", False),
        (">=5.4.0-40-generic,<5.4.0-48-generic", "5.4.0-40-generic", True),
        (">=5.4.0-40-generic,<5.4.0-48-generic", "5.4.0-47-lowlatency", True),
        (">=5.4.0-40-generic,<5.4.0-48-generic", "5.4.0-48-generic", False),
        (">=5.4.0-40-generic,<5.4.0-48-generic", "5.4.0-100-generic", False),
        ("<6.1.0-15-amd64", "6.1.0-13-amd64", True),
        ("<6.1.0-15-amd64", "6.1.0-15-amd64", False),
        ("=6.1.0-13-amd64", "6.1.0-13-cloud-amd64", True),
        ("=5.4.0", "5.4.0-42-generic", True),
        ("<5.4.0", "5.4.0-42-generic", False),
        ("<4.18.0-305.10.2.el8_4.x86_64", "4.18.0-305.el8.x86_64", True),
        ("<4.18.0-305.10.2.el8_4.x86_64", "4.18.0-305.12.1.el8_4.x86_64", False),
        (">=4.18.0-305.el8, <= 4.18.0-348.el8", "4.18.0-348.el8.x86_64", True),
        ("<4.18.0-305.el8", "5.4.0-42-generic", False),
        ("<7", "not a release", False),
    ],
)
def test_ranges(spec, release, expected):
    assert parse_range(spec).matches(release) is expected


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("5.4.0", "each clause starts with one of"),
        (">=5.4.0-40-generic,<4.18.0-305.el8.x86_64", "mixes RPM and Debian"),
        ("<", "is not a kernel release"),
        ("<linux-6.1", "is not a kernel release"),
        (">=5.4.0,", "each clause starts with one of"),
    ],
)
def test_bad_ranges_say_what_is_wrong(spec, problem):
    with pytest.raises(BadVersion, match=problem):
        parse_range(spec)


def test_at_least():
    assert at_least("6.1.0-15-amd64", "6.1.0-15-amd64")
    assert at_least("6.1.0-16-amd64", "6.1.0-15-amd64")
    assert not at_least("6.1.0-13-amd64", "6.1.0-15-amd64")
    assert not at_least("4.18.0-305.el8.x86_64", "6.1.0-15-amd64")
