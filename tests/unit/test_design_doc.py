"""docs/design.md stays true to the code: what the code cites exists, what it cites exists.

Comments point at the design's sections by anchor (`docs/design.md#1-no-waiting`), and
the design names modules and tests as evidence. Renaming a heading, a module or a
test without following up breaks one side silently; these tests break it loudly.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = ROOT / "docs" / "design.md"
# Where the project's own text lives (fixture trees hold fake /proc and /sys).
SCANNED = ("agent", "controller", "hangwatch", "hangwatchctl", "lab", "tests", "bench", "docs")
SKIPPED = {"fixtures", "__pycache__", "v1"}
SUFFIXES = {".py", ".sql", ".proto", ".toml", ".md"}
TOP_LEVEL = ("agent/", "controller/", "hangwatch/", "hangwatchctl/", "lab/", "tests/", "bench/")
TOP_LEVEL += ("protos/", "docs/", "systemd/", "scripts/")

CITATION = re.compile(r"design\.md#([\w-]+)")
TEST_CITATION = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
PATH_CITATION = re.compile(r"`([\w./-]+)`")
INVARIANT = re.compile(r"\binvariant[ -]?\d", re.IGNORECASE)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if in_code or not line.startswith("#"):
            continue
        base = slug(line.lstrip("#"))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def project_files() -> list[Path]:
    files = []
    for top in SCANNED:
        for path in (ROOT / top).rglob("*"):
            relative = path.relative_to(ROOT)
            if path.suffix in SUFFIXES and path.is_file() and not SKIPPED & set(relative.parts):
                files.append(path)
    return sorted(files)


def cited_anchors() -> list[tuple[str, str]]:
    """(where, anchor) for every design.md#<anchor> in the project's files and README."""
    out = []
    for path in [ROOT / "README.md", *project_files()]:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            for anchor in CITATION.findall(line):
                out.append((f"{path.relative_to(ROOT)}:{number}", anchor))
    return out


def comments_and_docstrings(path: Path) -> list[tuple[int, str]]:
    """(line number, line) of the comments and docstrings of a Python file."""
    source = path.read_text("utf-8")
    out = [
        (token.start[0], token.string)
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    ]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            docstring = ast.get_docstring(node, clean=False)
            if docstring is not None:
                first = node.body[0].lineno
                out += [(first + i, line) for i, line in enumerate(docstring.splitlines())]
    return out


def test_the_design_has_its_numbered_invariants():
    found = anchors(DESIGN.read_text("utf-8"))
    for number in range(1, 7):
        assert any(a.startswith(f"{number}-") for a in found), f"no invariant {number} heading"


def test_every_anchor_cited_in_the_code_is_a_heading_of_the_design():
    found = anchors(DESIGN.read_text("utf-8"))
    cited = cited_anchors()
    assert cited, "nothing cites docs/design.md: the scan is broken"
    missing = [f"{where}: #{anchor}" for where, anchor in cited if anchor not in found]
    assert not missing, "cited sections the design does not have:\n" + "\n".join(missing)


def test_links_inside_the_design_land_on_its_headings():
    text = DESIGN.read_text("utf-8")
    found = anchors(text)
    missing = [a for a in re.findall(r"\]\(#([\w-]+)\)", text) if a not in found]
    assert not missing, f"links to headings the design does not have: {missing}"


def test_every_test_the_design_names_exists():
    text = DESIGN.read_text("utf-8")
    cited = TEST_CITATION.findall(text)
    assert len(cited) > 20, "the design names its evidence as tests/...py::test_name"
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.is_file():
            missing.append(f"{file} (no such file)")
            continue
        tree = ast.parse(path.read_text("utf-8"))
        defined = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        if name not in defined:
            missing.append(f"{file}::{name}")
    assert not missing, "the design names tests that do not exist:\n" + "\n".join(missing)


def test_every_path_the_design_names_exists():
    text = DESIGN.read_text("utf-8")
    paths = {
        p.split("::")[0]
        for p in PATH_CITATION.findall(text)
        if p.startswith(TOP_LEVEL) and not p.endswith(".")
    }
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"the design names paths that do not exist: {missing}"


def test_comments_that_invoke_an_invariant_point_into_the_design():
    loose = []
    for path in project_files():
        if path.suffix == ".py":
            lines = comments_and_docstrings(path)
        elif path.suffix == ".sql":
            text = path.read_text("utf-8").splitlines()
            lines = [(n, line) for n, line in enumerate(text, 1) if line.lstrip().startswith("--")]
        else:
            continue
        loose += [
            f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
            for n, line in lines
            if INVARIANT.search(line) and "design.md#" not in line
        ]
    assert not loose, "cite the invariant as docs/design.md#<anchor>:\n" + "\n".join(loose)
