"""The batch suite: Great Expectations over the whole batch, after the item checks, with Data Docs.

    result = validate_batch(gx_root, "grade", kind, checked, limits, image_limits, reference)
    result.success, result.failures
    index_html = build_data_docs(gx_root, result)

Three tables of one batch are validated by one checkpoint, one suite each:
- `<dataset>.items`: every received item; the shares quarantined and duplicated are bounded.
- `<dataset>.manifest`: the candidates' labels: unique ids and hashes, value types and ranges,
  and the label distribution against the reference (a G-test bound on the KL divergence).
- `<dataset>.images`: the candidates' image properties: size, aspect, brightness, contrast,
  sharpness within plausible ranges for most images.
The results are kept in the GE project under `gx_root`, and `build_data_docs` renders them as
HTML Data Docs there.
Great Expectations takes seconds to import: `components.ingest` leaves this module out, so
only the flow that runs a suite pays for it, when it loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import great_expectations as gx
import pandas as pd
from great_expectations.data_context.types.base import ProgressBarsConfig
from scipy import stats

from components.ingest.checks import CheckedBatch
from components.ingest.images import ImageLimits
from components.ingest.model import Reason
from components.ingest.params import SuiteLimits
from components.ingest.tasks import TaskKind

DUPLICATE_REASONS = (Reason.DUPLICATE.value, Reason.NEAR_DUPLICATE.value,
                     Reason.ALREADY_ACCEPTED.value)
# Laplace smoothing of the reference counts: a grade the reference never saw is rare, not
# impossible, so one such card does not make the divergence infinite.
_SMOOTHING = 0.5


@dataclass
class SuiteResult:
    """Whether the batch passed, which expectations failed (in words), and the identifiers of
    its validation results, from which `build_data_docs` renders their pages."""

    success: bool
    failures: list[str] = field(default_factory=list)
    label_divergence: float | None = None
    result_ids: list = field(default_factory=list)


def label_threshold(n: int, categories: int, limits: SuiteLimits,
                    reference_n: int | None = None) -> float:
    """The largest KL divergence of n labels over `categories` values still consistent with
    the reference: under the reference, 2 n KL follows chi-square with categories - 1 dof.
    A reference that is itself a sample of `reference_n` labels is noisy too: both samples
    count, through the effective size n m / (n + m) of a two-sample test."""
    effective = n if reference_n is None else n * reference_n / (n + reference_n)
    chi2 = stats.chi2.ppf(limits.label_confidence, max(categories - 1, 1))
    bound = chi2 / (2 * max(effective, 1))
    return float(max(bound, limits.label_kl_floor))


def reference_partition(kind: TaskKind, reference: pd.Series) -> dict[str, list]:
    """The smoothed reference distribution of the task's label as a GE partition object."""
    values = (list(range(kind.label_range[0], kind.label_range[1] + 1))
              if kind.label_range is not None
              else sorted(reference.dropna().astype(str).unique()))
    counts = reference.value_counts()
    weights = [float(counts.get(v, 0)) + _SMOOTHING for v in values]
    return {"values": values, "weights": [w / sum(weights) for w in weights]}


def _expectations(kind: TaskKind, checked: CheckedBatch, limits: SuiteLimits,
                  image_limits: ImageLimits, reference: pd.Series | None) -> dict[str, list]:
    e = gx.expectations
    items = [
        e.ExpectColumnValuesToBeInSet(column="quarantined", value_set=[False],
                                      mostly=1 - limits.max_quarantined_share),
        e.ExpectColumnValuesToNotBeInSet(column="reason", value_set=list(DUPLICATE_REASONS),
                                         mostly=1 - limits.max_duplicate_share,
                                         meta={"hint": _DUPLICATES_HINT}),
    ]
    manifest = [
        e.ExpectTableRowCountToBeBetween(min_value=1),
        e.ExpectColumnValuesToBeUnique(column="item_id"),
        e.ExpectColumnValuesToBeUnique(column="sha256"),
        e.ExpectColumnValueLengthsToEqual(column="phash", value=48),
    ]
    column = kind.label_column
    if column is not None:
        manifest.append(e.ExpectColumnValuesToNotBeNull(column=column))
    if column is not None and kind.label_range is not None:  # ordinal labels: whole, in range
        low, high = kind.label_range
        manifest += [e.ExpectColumnValuesToBeInTypeList(column=column, type_list=["int", "int64"]),
                     e.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high)]
    elif column is not None and checked.classes:  # class labels: among the dataset's classes
        manifest.append(e.ExpectColumnValuesToBeInSet(column=column,
                                                      value_set=list(checked.classes)))
    if column is not None and reference is not None and len(reference):
        partition = reference_partition(kind, reference)
        threshold = label_threshold(len(checked.candidates), len(partition["values"]), limits,
                                    int(reference.notna().sum()))
        manifest.append(e.ExpectColumnKLDivergenceToBeLessThan(
            column=column, partition_object=partition, threshold=threshold))
    lo, hi = limits.brightness
    images = [
        e.ExpectColumnValuesToBeBetween(column="width", min_value=image_limits.min_width),
        e.ExpectColumnValuesToBeBetween(column="height", min_value=image_limits.min_height),
        e.ExpectColumnValuesToBeBetween(column="aspect", min_value=limits.aspect[0],
                                        max_value=limits.aspect[1]),
        e.ExpectColumnValuesToBeBetween(column="brightness", min_value=lo, max_value=hi,
                                        mostly=limits.mostly),
        e.ExpectColumnValuesToBeBetween(column="contrast", min_value=limits.min_contrast,
                                        mostly=limits.mostly),
        e.ExpectColumnValuesToBeBetween(column="sharpness", min_value=limits.min_sharpness,
                                        mostly=limits.mostly),
    ]
    return {"items": items, "manifest": manifest, "images": images}


def _context(gx_root: Path):
    """The file-backed GE project under `gx_root`, quiet: no analytics, no progress bars."""
    context = gx.get_context(mode="file", project_root_dir=str(gx_root))
    if context.config.analytics_enabled is not False:
        context.enable_analytics(False)  # saved in the project: these machines may be offline
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _batch_definition(context, asset_name: str):
    """The whole-frame batch definition of the named asset, made on first use."""
    try:
        source = context.data_sources.get("gradeline")  # by key: comes bound to the context
    except KeyError:
        source = context.data_sources.add_pandas("gradeline")
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        asset = source.add_dataframe_asset(asset_name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


_DUPLICATES_HINT = (
    "each quarantined item's reason file names the item it repeats; if those are distinct "
    "photos, not copies, raise ingest.near_duplicate_similarity (thumbnails' correlation) or "
    "lower ingest.near_duplicate_bits in params.yaml; ingest.suite.max_duplicate_share bounds "
    "the share of copies a batch may hold")


def _describe(result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items()
              if k not in ("batch_id", "partition_object", "value_set") and v is not None}
    observed = result.result.get("observed_value", result.result.get("unexpected_percent"))
    shown = f"{observed:.3g}" if isinstance(observed, float) else observed
    hint = (config.meta or {}).get("hint")
    return (f"{config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())}): observed {shown}"
            + (f" ({hint})" if hint else ""))


def validate_batch(
    gx_root: Path,
    dataset: str,
    kind: TaskKind,
    checked: CheckedBatch,
    limits: SuiteLimits,
    image_limits: ImageLimits,
    reference: pd.Series | None = None,
) -> SuiteResult:
    """Run the batch suite on `checked` and keep its results in the GE project; `reference`
    holds the label values the batch's distribution is compared with (None: no comparison).
    Rendering the Data Docs is left to `build_data_docs`: the verdict does not wait for HTML."""
    context = _context(gx_root)
    # One checkpoint per frame: a checkpoint hands the same frame to each of its validations.
    frames = {"items": checked.items_table(), "candidates": checked.candidates_table()}
    tables = {"items": "items", "manifest": "candidates", "images": "candidates"}
    definitions: dict[str, list] = {frame: [] for frame in frames}
    expectations_by_table = _expectations(kind, checked, limits, image_limits, reference)
    for table, expectations in expectations_by_table.items():
        name = f"{dataset}.{table}"
        suite = context.suites.add_or_update(gx.ExpectationSuite(name=name,
                                                                 expectations=expectations))
        definitions[tables[table]].append(context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=_batch_definition(context, name),
                                    suite=suite)))
    outcome = SuiteResult(success=True)
    for frame_name, frame in frames.items():
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"{dataset}.{frame_name}", validation_definitions=definitions[frame_name],
            result_format="SUMMARY"))
        # An empty frame has no columns to check; the row-count expectation reports it.
        data = frame if not frame.empty else pd.DataFrame({"item_id": []})
        runs = checkpoint.run(batch_parameters={"dataframe": data}).run_results
        for result_id, run in runs.items():
            outcome.result_ids.append(result_id)
            table = run.suite_name.rsplit(".", 1)[1]
            for expectation in run.results:
                if expectation.expectation_config.type == \
                        "expect_column_kl_divergence_to_be_less_than":
                    divergence = expectation.result.get("observed_value")
                    outcome.label_divergence = None if divergence is None else round(divergence, 4)
                if not expectation.success:
                    outcome.failures.append(f"{table}: {_describe(expectation)}")
    outcome.success = not outcome.failures
    return outcome


def build_data_docs(gx_root: Path, result: SuiteResult) -> str:
    """Render the pages of `result`'s validations and the index; return the index's path.
    Only these pages are rendered, however many batches came before."""
    _context(gx_root).build_data_docs(resource_identifiers=result.result_ids)
    return str(gx_root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html")
