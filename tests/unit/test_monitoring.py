"""monitoring/: the alert rules pass promtool's checks and their own unit tests, and the
dashboard and the rules ask only for metrics docs/metrics.md documents (which
tests/integration/test_metrics.py holds to what the programs export)."""

from __future__ import annotations

import json
import re
import subprocess

import yaml
from metricdocs import (
    DASHBOARD,
    DOC,
    MONITORING,
    RULE_TESTS,
    RULES,
    documented,
    expressions,
    metric_names,
    promtool,
)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=MONITORING, capture_output=True, text=True, timeout=60
    )


def test_the_rules_pass_promtool_check_rules():
    checked = run("check", "rules", RULES.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_rules_raise_the_alerts_their_unit_tests_expect():
    tested = run("test", "rules", RULE_TESTS.name)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_metric_the_dashboard_and_the_rules_name_is_documented():
    known = {name for d in documented().values() for name in d.series}
    unknown = {}
    for where, expr in expressions():
        for name in metric_names(expr) - known:
            unknown[name] = where
    assert not unknown, f"not in docs/metrics.md (so not exported): {unknown}"


def test_the_name_finder_sees_through_functions_and_operators():
    expr = (
        'sum by (group) (rate(a_total{x="1"}[$__rate_interval])) / on (group) group_left b '
        "> bool 3 or absent(c) unless histogram_quantile(0.9, sum by (le) (rate(d_bucket[1h])))"
    )
    assert metric_names(expr) == {"a_total", "b", "c", "d_bucket"}


def test_every_alert_is_tested_and_documented():
    rules = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"]}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert alerts == firing, "an alert without a test case that makes it fire"
    in_doc = set(re.findall(r"^\| `(Hangwatch\w+)` \|", DOC.read_text(), re.M))
    assert alerts == in_doc, "docs/metrics.md's alert table and alerts.yml differ"
    for group in rules:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_the_dashboard_queries_through_its_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
