"""Service metrics: what the service observes shows up in the exposition with its labels, and
each `ServiceMetrics` keeps its own registry."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from components.serving.metrics import ServiceMetrics


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_predictions_and_requests_are_counted_per_model_version_and_role() -> None:
    metrics = ServiceMetrics()
    metrics.observe_prediction("card-grader", 3, "champion", 0.012, error=False)
    metrics.observe_prediction("card-grader", 3, "champion", 0.3, error=True)
    metrics.observe_prediction("card-grader", 4, "shadow", 0.02, error=False)
    metrics.count_request("card-grader", 3, "champion", 200)
    metrics.count_request("card-grader", 3, "champion", 200)
    metrics.count_request("card-grader", 3, "champion", 503)

    samples = _samples(metrics)

    champion = _labels(model="card-grader", version="3", role="champion")
    assert samples[("gradeline_request_seconds_count", champion)] == 2
    assert samples[("gradeline_request_seconds_sum", champion)] == pytest.approx(0.312)
    assert samples[("gradeline_request_seconds_bucket",
                    _labels(model="card-grader", version="3", role="champion", le="0.02"))] == 1
    assert samples[("gradeline_prediction_errors_total", champion)] == 1
    assert ("gradeline_prediction_errors_total",
            _labels(model="card-grader", version="4", role="shadow")) not in samples
    assert samples[("gradeline_requests_total", _labels(model="card-grader", version="3",
                                                        role="champion", status="200"))] == 2
    assert samples[("gradeline_requests_total", _labels(model="card-grader", version="3",
                                                        role="champion", status="503"))] == 1


def test_shadow_agreement_is_the_running_share_of_same_grades() -> None:
    metrics = ServiceMetrics()
    for same in (True, True, False, True):
        metrics.observe_shadow("card-grader", 3, 4, same_grade=same)

    pair = _labels(model="card-grader", champion_version="3", challenger_version="4")
    assert _samples(metrics)[("gradeline_shadow_agreement", pair)] == 0.75


def test_the_loaded_models_replace_their_stale_label_sets() -> None:
    metrics = ServiceMetrics()
    metrics.set_loaded("card-grader", "champion", 3, "d-7")
    metrics.set_loaded("card-grader", "challenger", 4, None)
    metrics.set_loaded("card-grader", "champion", 4, "d-8")
    metrics.clear_loaded("card-grader", "challenger")

    info = {labels: value for (name, labels), value in _samples(metrics).items()
            if name == "gradeline_model_info"}

    assert info == {_labels(model="card-grader", alias="champion", version="4",
                            data_version="d-8"): 1.0}


def test_gauges_and_rejections_show_their_last_values() -> None:
    metrics = ServiceMetrics()
    metrics.set_canary_share("card-grader", 0.05)
    metrics.set_queue_depth(7)
    metrics.count_rejected_upload("too_large")
    metrics.count_rejected_upload("too_large")

    samples = _samples(metrics)

    assert samples[("gradeline_canary_share", _labels(model="card-grader"))] == 0.05
    assert samples[("gradeline_queue_depth", ())] == 7
    assert samples[("gradeline_rejected_uploads_total", _labels(reason="too_large"))] == 2


def test_two_instances_do_not_share_a_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.count_rejected_upload("empty")
    assert ("gradeline_rejected_uploads_total", _labels(reason="empty")) not in _samples(second)
