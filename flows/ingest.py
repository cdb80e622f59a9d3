"""The Prefect flow `ingest`: one labeled batch from a folder or S3 into the versioned dataset.

    gradeline ingest incoming/batch-7 --task grade --json

It reads the step list of DESIGN.md's cycle, one task each: stage the source, recognise a batch
already ingested, check every item, run the batch suite, quarantine what failed, version what
passed. A batch that fails its suite is rejected as a whole and the dataset stays as it was.
Import this module only after `settings.activate()`: Prefect reads PREFECT_HOME once.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from components.ingest import (
    TASKS,
    CheckedBatch,
    DatasetStore,
    IngestError,
    IngestParams,
    Problem,
    Reason,
    batch_fingerprint,
    check_batch,
    quarantine_items,
    read_batch,
    reference_labels,
)
from components.ingest.s3 import StagedSource, s3_client, stage_s3
from components.ingest.suite import SuiteResult, build_data_docs, validate_batch
from components.params import load_params
from components.settings import GradelineSettings, find_project_root, load_settings
from components.vision.tasks import plugin_for

_PROGRESS_STEPS = 10


@dataclass
class IngestSummary:
    """What one ingest did; `received == accepted + quarantined` always, per reason too."""

    source: str
    dataset: str
    task: str
    status: str  # accepted | rejected | already_ingested
    batch_id: str = ""
    format: str = ""
    received: int = 0
    accepted: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    data_version: str | None = None
    previous_data_version: str | None = None
    images_per_s: float = 0.0
    seconds: float = 0.0
    validation_seconds: float = 0.0
    data_docs: str = ""
    quarantine_dir: str = ""
    suite_failures: list[str] = field(default_factory=list)
    label_divergence: float | None = None
    message: str = ""
    repaired: str | None = None  # what an interrupted earlier ingest left, put back first

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def lines(self) -> list[str]:
        """The summary for a person: outcome, counts by reason, version, where to look."""
        lines = [f"{self.status}: {self.message}"]
        if self.repaired:
            lines.insert(0, f"repaired first: {self.repaired}")
        if self.status != "already_ingested":
            lines.append(f"received {self.received} = accepted {self.accepted} + quarantined "
                         f"{self.quarantined}  ({self.format}, batch {self.batch_id})")
        lines += [f"  quarantined {reason}: {count}"
                  for reason, count in self.quarantined_by_reason.items()]
        lines.append(f"data version {self.data_version} (was {self.previous_data_version})")
        if self.images_per_s:
            lines.append(f"validated {self.images_per_s} images/s; {self.seconds}s in all")
        lines += [f"  suite failed: {failure}" for failure in self.suite_failures]
        lines += [f"{name}: {path}" for name, path in (("data docs", self.data_docs),
                                                       ("quarantine", self.quarantine_dir)) if path]
        return lines


def _not_ingest_error(task, task_run, state) -> bool:
    """Retry transient failures only: a source that is not a batch stays one."""
    return not isinstance(state.result(raise_on_failure=False), IngestError)


@task(retries=3, retry_delay_seconds=[1, 4, 10], retry_condition_fn=_not_ingest_error)
def stage_source(source: str, staging: Path) -> StagedSource:
    """A local folder as it is; an s3:// prefix downloaded to `staging` first."""
    if source.startswith("s3://"):
        staged = stage_s3(source, staging, s3_client(load_settings()))
        get_run_logger().info("staged %s: %d unreadable objects", source, len(staged.unreadable))
        return staged
    root = Path(source).expanduser().resolve()
    if not root.exists():
        raise IngestError(f"{source} does not exist")
    return StagedSource(root=root)


# Tasks that take a whole checked batch are not cached: hashing thousands of items for a cache
# key costs seconds, and re-checking is what a rerun should do anyway. Results still persist.
@task(persist_result=True, cache_policy=NO_CACHE)
def check_items(staged: StagedSource, task_name: str, store: DatasetStore,
                params: IngestParams) -> CheckedBatch:
    """Read the batch and run every item check (images in parallel), logging progress."""
    logger = get_run_logger()
    kind = plugin_for(TASKS, task_name, "ingest")
    batch = read_batch(staged.root, needs_boxes=kind.needs_boxes, masks=kind.masks)
    total, done, shown = len(batch.items), 0, 0

    def progress(finished: int) -> None:
        nonlocal done, shown
        done += finished
        if done * _PROGRESS_STEPS >= (shown + 1) * total:
            shown = done * _PROGRESS_STEPS // total
            logger.info("images checked: %d/%d", done, total)

    checked = check_batch(batch, kind, store.index(), params.image_limits,
                          params.near_duplicate_bits, staged.unreadable, params.workers, progress,
                          min_similarity=params.near_duplicate_similarity)
    logger.info("%s batch of %d items: %d pass the item checks", batch.format, checked.received,
                len(checked.candidates))
    return checked


@task(persist_result=True, cache_policy=NO_CACHE)
def run_suite(checked: CheckedBatch, task_name: str, store: DatasetStore, params: IngestParams,
              gx_root: Path) -> SuiteResult:
    """The Great Expectations batch suite: its verdict, failures in words, and result ids."""
    kind = plugin_for(TASKS, task_name, "ingest")
    fallback = find_project_root() / params.reference if params.reference else None
    reference = reference_labels(kind, store.manifest(), fallback)
    result = validate_batch(gx_root, store.dataset, kind, checked, params.suite,
                            params.image_limits, reference)
    for failure in result.failures:
        get_run_logger().warning("suite: %s", failure)
    return result


@task(cache_policy=NO_CACHE)
def publish_data_docs(suite: SuiteResult, gx_root: Path) -> str:
    """Render the batch's validation results as Data Docs HTML."""
    return build_data_docs(gx_root, suite)


@task(cache_policy=NO_CACHE)
def quarantine(checked: CheckedBatch, folder: Path) -> dict[str, int]:
    """Copy every rejected item with its reason file."""
    counts = quarantine_items(folder, checked.batch.root, checked.rejected)
    if counts:
        get_run_logger().info("quarantined %s in %s", counts, folder)
    return counts


@task(retries=2, retry_delay_seconds=[2, 10], cache_policy=NO_CACHE)
def version_batch(store: DatasetStore, checked: CheckedBatch, task_name: str,
                  entry: dict[str, object], source: str) -> str:
    """Add the accepted items to the dataset and commit and push it with DVC."""
    version = store.add_batch(checked.batch, checked.candidates, task_name, checked.classes, entry,
                              source)
    get_run_logger().info("dataset %s is now data version %s", store.dataset, version)
    return version


def _batch_id(fingerprint: str) -> str:
    """Named by content, not by folder: the same batch from S3 or a local copy is one batch."""
    return f"batch-{fingerprint[:12]}"


@flow(name="ingest", persist_result=True)
def ingest(source: str, task: str = "grade", dataset: str | None = None) -> dict[str, object]:
    """Ingest one labeled batch; returns the IngestSummary as a dict."""
    plugin_for(TASKS, task, "ingest")  # an unknown task fails here, before any file is read
    started = time.perf_counter()
    settings = load_settings()
    settings.activate()  # DVC and boto3 read the endpoint, region and keys from the environment
    params = load_params("ingest", IngestParams)
    dataset = dataset or task
    store = DatasetStore.of(settings, dataset)
    summary = IngestSummary(source=source, dataset=dataset, task=task, status="accepted")
    home = settings.ensure_dirs().home
    with store.locked(), tempfile.TemporaryDirectory(prefix="stage-", dir=home) as staging:
        summary.repaired = store.repair_interrupted()
        if summary.repaired:
            get_run_logger().warning("repaired: %s", summary.repaired)
        summary.previous_data_version = store.version()
        staged = stage_source(source, Path(staging))
        fingerprint = batch_fingerprint(staged.root)
        summary.batch_id = _batch_id(fingerprint)
        earlier = store.find_batch(fingerprint)
        if earlier is not None:
            summary.status, summary.data_version = "already_ingested", summary.previous_data_version
            summary.message = (f"batch already ingested as {earlier['batch_id']} "
                               f"({earlier['accepted']} items accepted); nothing changed")
            get_run_logger().info(summary.message)
            return _finish(summary, started)
        checked = check_items(staged, task, store, params)
        # quote(): Prefect would otherwise walk every item looking for futures (seconds).
        suite = run_suite(quote(checked), task, store, params, settings.home / "gx")
        summary.validation_seconds = round(time.perf_counter() - started, 2)
        summary.images_per_s = round(checked.received / summary.validation_seconds, 1)
        summary.data_docs = publish_data_docs(quote(suite), settings.home / "gx")
        if not suite.success:
            checked.reject_candidates(Problem(Reason.BATCH_FAILED_SUITE, "; ".join(suite.failures)))
        folder = settings.quarantine_dir / dataset / summary.batch_id
        summary.quarantined_by_reason = quarantine(quote(checked), folder)
        accepted = checked.candidates
        summary.format, summary.received = checked.batch.format, checked.received
        summary.accepted, summary.quarantined = len(accepted), checked.received - len(accepted)
        summary.suite_failures = suite.failures
        summary.label_divergence = suite.label_divergence
        summary.quarantine_dir = str(folder) if summary.quarantined else ""
        if checked.refusals or not accepted:
            summary.status, summary.data_version = "rejected", summary.previous_data_version
            summary.message = "; ".join(checked.refusals or suite.failures) or "nothing accepted"
            return _finish(summary, started)
        entry = {"batch_id": summary.batch_id, "fingerprint": fingerprint,
                 "received": summary.received, "accepted": summary.accepted}
        summary.data_version = version_batch(store, quote(checked), task, entry, source)
        summary.message = f"{summary.accepted} of {summary.received} items accepted"
        return _finish(summary, started)


def _finish(summary: IngestSummary, started: float) -> dict[str, object]:
    summary.seconds = round(time.perf_counter() - started, 2)
    return summary.as_dict()


def run_ingest(settings: GradelineSettings, source: str, task: str = "grade",
               dataset: str | None = None) -> IngestSummary:
    """Run the flow on these settings' home and return its summary."""
    settings.activate()  # before the flow starts: Prefect reads PREFECT_HOME once
    return IngestSummary(**ingest(source, task, dataset))
