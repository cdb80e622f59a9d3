"""`monitor` parameters (params.yaml): the window, the reference, and when a difference is drift.

Each signal is an Evidently statistical test between the reference and the window: for a p-value
test (ks, TVD) a signal drifts when its p-value is below the threshold, for a distance
(wasserstein, jensenshannon, psi) when the distance is above it. The defaults are p-value tests:
windows of tens of photos are small, and a distance between two small samples of the same
distribution is often above any useful threshold, where a p-value accounts for the sample size.
"""

from __future__ import annotations

from pydantic import Field

from components.params import StrictParams


class DriftThresholds(StrictParams):
    """When a signal counts as drifted."""

    property_method: str = Field("ks", description="Evidently stattest per image property "
                                 "(Kolmogorov-Smirnov by default)")
    property_threshold: float = Field(0.01, gt=0, description="p-value below (or distance "
                                      "above) which a property drifts")
    max_drifted_property_share: float = Field(0.3, gt=0, le=1, description="image drift when "
                                              "more than this share of properties drift")
    embedding_method: str = Field("model", description="Evidently embeddings drift method: "
                                  "model (domain classifier ROC AUC), mmd, ratio, distance")
    embedding_threshold: float = Field(0.65, gt=0, description="drift above this score")
    grade_method: str = Field("TVD", description="stattest of the grade distribution: total "
                              "variation distance, p-value by permutation (two-sample)")
    grade_threshold: float = Field(0.01, gt=0)
    set_size_method: str = Field("ks", description="stattest of the conformal set sizes")
    set_size_threshold: float = Field(0.01, gt=0)
    max_needs_review_increase: float = Field(0.15, ge=0, description="needs_review share may "
                                             "rise this much over the reference's")


class SloParams(StrictParams):
    """The service objectives a window is held to, from the prediction log itself."""

    max_error_rate: float = Field(0.01, ge=0, le=1, description="share of the champion's "
                                  "requests that may end in an error")
    max_p99_ms: float = Field(2000, gt=0, description="the champion's 99th percentile latency")


class MonitorParams(StrictParams):
    """The `monitor` section of params.yaml."""

    window_hours: float = Field(24, gt=0, description="default window: the last N hours")
    min_window: int = Field(50, ge=1, description="served photos needed to judge a window")
    reference_items: int = Field(1000, ge=10, description="newest items of the champion's "
                                 "data whose held-out part (~30%) forms the reference")
    embedding_components: int = Field(5, ge=1, description="principal components of the "
                                      "backbone's embeddings that are compared")
    drift: DriftThresholds = DriftThresholds()
    slo: SloParams = SloParams()
    max_kappa_drop: float = Field(0.05, ge=0, description="performance drift: QWK on served "
                                  "photos with expert grades below the champion's test QWK")
    min_expert_items: int = Field(30, ge=1, description="expert grades needed to judge kappa")
    cooldown_hours: float = Field(6, ge=0, description="an ongoing incident alerts again only "
                                  "after this long")
    sheet_images: int = Field(8, ge=1, description="most drifted served photos on the sheet")
    detector_days: float = Field(30, gt=0, description="history of the detector's precision "
                                 "and recall per class against reviewed boxes")
    detector_period: str = Field("1D", description="one point of that history per this span "
                                 "(a pandas offset: 1D, 12h, 7D)")
