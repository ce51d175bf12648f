"""What docs/metrics.md documents, and the metric names monitoring/ uses in PromQL.

Shared by the unit test of the dashboard and rules and by the test that holds the
document to what a running controller and agent export.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import promql_parser
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "metrics.md"
MONITORING = ROOT / "monitoring"
RULES = MONITORING / "alerts.yml"
RULE_TESTS = MONITORING / "alerts-test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
PROGRAMS = ("controller", "agent")
# Headings of docs/metrics.md and the programs their tables are about.
SECTIONS = {
    "## Both programs": frozenset(PROGRAMS),
    "## The controller": frozenset({"controller"}),
    "## The agent": frozenset({"agent"}),
}
ROW = re.compile(r"\| `([a-z_:]+)` \| (counter|gauge|histogram) \|([^|]*)\|")
# What Grafana puts into a query before Prometheus sees it.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$host": ".*"}


@dataclass(frozen=True)
class Documented:
    # The family name, as a parser of the exposition names it (no `_total`).
    family: str
    type: str
    labels: frozenset[str]
    programs: frozenset[str]

    @property
    def series(self) -> set[str]:
        """The names its samples have, the ones PromQL selects."""
        if self.type == "counter":
            return {self.family + "_total"}
        if self.type == "histogram":
            return {self.family + s for s in ("_bucket", "_count", "_sum")}
        return {self.family}


def documented() -> dict[str, Documented]:
    """Every metric docs/metrics.md lists, by family name."""
    out: dict[str, Documented] = {}
    programs: frozenset[str] | None = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            programs = SECTIONS.get(line.strip())
            continue
        match = ROW.match(line)
        if match is None or programs is None:
            continue
        name, kind, labels = match.groups()
        if kind == "counter":
            assert name.endswith("_total"), f"docs/metrics.md: counter {name} without _total"
            name = name.removesuffix("_total")
        assert name not in out, f"docs/metrics.md lists {name} twice"
        out[name] = Documented(name, kind, frozenset(re.findall(r"`(\w+)`", labels)), programs)
    return out


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert rule and every dashboard query."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alerts.yml {rule['alert']}", str(rule["expr"])
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"dashboard panel {panel['title']!r}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("definition", "")
        if query.startswith("label_values("):
            inner = query.removeprefix("label_values(").rsplit(",", 1)[0]
            yield f"dashboard variable {variable['name']}", inner


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is not installed: apt-get install prometheus (scripts/test does)")
    return found
