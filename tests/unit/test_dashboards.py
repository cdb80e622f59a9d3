"""The Grafana dashboard in dashboards/ asks only for metrics the grading service exports, by
labels those metrics carry: a renamed metric or label would otherwise leave a panel empty on
the day someone needs it. (Whether each query returns data from a live Prometheus is for the
cluster tests; see issue 18.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.unit.test_prometheus_rules import exercised_metrics

DASHBOARD = Path(__file__).parents[2] / "dashboards" / "gradeline-service.json"


def _queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _labels_by_metric() -> dict[str, set[str]]:
    """Every exported sample name with the label names it carries."""
    labels: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(exercised_metrics()):
        for sample in family.samples:
            labels.setdefault(sample.name, set()).update(sample.labels)
    return labels


def test_every_panel_queries_exported_metrics_by_their_own_labels() -> None:
    exported = _labels_by_metric()

    queries = _queries()
    assert len(queries) >= 10
    for query in queries:
        metrics = set(re.findall(r"\bgradeline_[a-z_]+", query))
        assert metrics and metrics <= set(exported), (query, metrics - set(exported))
        carried = set().union(*(exported[name] for name in metrics))
        grouped = {label.strip() for group in re.findall(r"by \(([^)]*)\)", query)
                   for label in group.split(",")}
        matched = set(re.findall(r"[{,]\s*([a-z_]+)\s*=", query))
        assert grouped | matched <= carried | {"le"}, (query, (grouped | matched) - carried)


def test_panels_have_unique_ids_and_use_the_dashboards_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard["panels"]

    assert len({panel["id"] for panel in panels}) == len(panels)
    assert {panel["datasource"]["uid"] for panel in panels} == {"${datasource}"}
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
