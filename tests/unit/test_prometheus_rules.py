"""The Prometheus files in infra/ name only metrics the grading service exports: a renamed
metric would otherwise silence an SLO alert without anyone noticing."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from components.serving.metrics import ServiceMetrics

PROMETHEUS = Path(__file__).parents[2] / "infra" / "prometheus"


def exercised_metrics() -> str:
    """The service's metrics exposition once each metric has been touched."""
    metrics = ServiceMetrics()
    metrics.observe_prediction("card-grader", 1, "champion", 0.02, error=True)
    metrics.count_request("card-grader", 1, "champion", 200)
    metrics.observe_shadow("card-grader", 1, 2, same_grade=True)
    metrics.set_canary_share("card-grader", 0.05)
    metrics.set_queue_depth(3)
    metrics.set_loaded("card-grader", "champion", 1, "d-1")
    metrics.count_rejected_upload("too_large")
    metrics.count_denied(401)
    metrics.count_tampering("card-grader")
    metrics.count_log_failure()
    metrics.set_log_pending(3)
    return metrics.exposition()[0].decode()


def _exported_series() -> set[str]:
    """Every sample name the service's metrics expose once each has been touched."""
    return {sample.name for family in text_string_to_metric_families(exercised_metrics())
            for sample in family.samples}


def test_every_metric_the_alert_rules_use_is_exported() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    rules = yaml.safe_load((PROMETHEUS / config["rule_files"][0]).read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    used = {name for expression in expressions
            for name in re.findall(r"\bgradeline_[a-z_]+", expression)}

    assert len(expressions) >= 5 and used
    assert used <= _exported_series(), used - _exported_series()
