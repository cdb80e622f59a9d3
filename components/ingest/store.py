"""The accepted dataset: one folder per dataset in the data folder, versioned with DVC.

    <data_dir>/<dataset>/images/<batch_id>/<sha256[:16]>.<ext>   accepted images, upright RGB,
                                                                 without metadata (EXIF, XMP)
    <data_dir>/<dataset>/labels/<batch_id>/<sha256[:16]>.txt     YOLO boxes (detect) or YOLO-seg
                                                                 outlines (segment); their
                                                                 severities, one per line, in
                                                                 the manifest's `severities`
    <data_dir>/<dataset>/manifest.csv                            one row per accepted item
    <data_dir>/<dataset>/dataset.json                            task and class names
    <data_dir>/<dataset>/batches.jsonl                           one line per accepted batch
    <data_dir>/versions.jsonl                                    each data version: batch, source,
                                                                 time

Adding a batch is all or nothing: if copying, `dvc add` or `dvc push` fails, or the process is
killed, every file written is removed and the manifest, ledger and `.dvc` file are put back as
they were (by the next ingest of the dataset, from the journal, after a kill).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from components.ingest.checks import AcceptedIndex
from components.ingest.duplicates import Fingerprints
from components.ingest.images import ImageFacts
from components.ingest.metadata import strip_metadata
from components.ingest.model import Box, IngestError, SourceBatch, SourceItem
from components.ingest.versioning import DataRepo
from components.settings import GradelineSettings
from components.splits import SPLIT_NAMES, stable_split
from components.vision.labels import yolo_seg_line
from components.vision.photos import upright_rgb

MANIFEST, INFO, LEDGER, VERSIONS = "manifest.csv", "dataset.json", "batches.jsonl", "versions.jsonl"
_LOCK_POLL_S = 0.2


def batch_fingerprint(root: Path) -> str:
    """sha256 over every file's relative path and content: the same batch, wherever it comes
    from, has the same fingerprint."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in Path(relative).parts):
            continue
        digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _label_line(box: Box, classes: tuple[str, ...]) -> str:
    """A box's line in the dataset: YOLO-seg where it has an outline, a YOLO box otherwise."""
    class_id = classes.index(box.class_name)
    if box.outline:
        return yolo_seg_line(class_id, box.outline)
    return (f"{class_id} {(box.x0 + box.x1) / 2:.6f} {(box.y0 + box.y1) / 2:.6f} "
            f"{box.x1 - box.x0:.6f} {box.y1 - box.y0:.6f}")


class DatasetError(ValueError):
    """A dataset cannot give what was asked of it: no data yet, or labels of another task."""


@dataclass(frozen=True)
class DataSnapshot:
    """The dataset folder holding exactly one data version."""

    dataset: str
    version: str
    root: Path
    classes: tuple[str, ...]


@dataclass(frozen=True)
class DatasetStore:
    """One accepted dataset under the DVC project `repo`."""

    repo: DataRepo
    dataset: str
    restored_in: Path | None = None  # where past versions are restored; None: refused

    @classmethod
    def of(cls, settings: GradelineSettings, dataset: str) -> DatasetStore:
        """The dataset in this home's data folder, versioned to its DVC remote, with past
        versions restored in its cache."""
        repo = DataRepo(settings.data_dir, settings.dvc_remote, settings.s3_endpoint_url,
                        settings.aws_region)
        return cls(repo, dataset, settings.cache_dir / "datasets" / dataset)

    @property
    def root(self) -> Path:
        return self.repo.root / self.dataset

    def manifest(self) -> pd.DataFrame:
        path = self.root / MANIFEST
        return pd.read_csv(path, dtype={"item_id": str}) if path.is_file() else pd.DataFrame()

    def classes(self) -> tuple[str, ...]:
        path = self.root / INFO
        return tuple(json.loads(path.read_text())["classes"]) if path.is_file() else ()

    def index(self) -> AcceptedIndex:
        """Ids, hashes and classes of everything accepted so far."""
        manifest = self.manifest()
        if manifest.empty:
            return AcceptedIndex(classes=self.classes())
        return AcceptedIndex(
            item_ids=frozenset(manifest["item_id"]),
            fingerprints=Fingerprints(list(manifest["item_id"]), list(manifest["sha256"]),
                                      list(manifest["phash"]),
                                      [str(self.root / path) for path in manifest["image_path"]]),
            classes=self.classes(),
        )

    def find_batch(self, fingerprint: str) -> dict | None:
        """The ledger entry of an accepted batch with this fingerprint, if any."""
        path = self.root / LEDGER
        if not path.is_file():
            return None
        entries = (json.loads(line) for line in path.read_text().splitlines() if line)
        return next((entry for entry in entries if entry["fingerprint"] == fingerprint), None)

    def version(self) -> str | None:
        return self.repo.version_of(self.dataset)

    def snapshot(self, task: str, version: str | None = None) -> DataSnapshot:
        """The dataset at `version` for a `task`: the working copy when `version` is None or
        current, else that past version restored in `restored_in` with DVC (made once)."""
        current = self.version()
        if current is None:
            raise DatasetError(f"dataset {self.dataset!r} has no data yet: `gradeline ingest` a "
                               f"batch with --task {task} first")
        held = json.loads((self.root / INFO).read_text()).get("task")
        if held != task:
            raise DatasetError(f"dataset {self.dataset!r} holds {held!r} labels, not {task!r}")
        if version in (None, current):
            return DataSnapshot(self.dataset, current, self.root, self.classes())
        if self.restored_in is None:
            raise DatasetError(f"dataset {self.dataset!r} is at {current[:12]}; restoring "
                               f"version {version[:12]} needs a folder to restore it in")
        root = self.repo.materialize(self.dataset, version, self.restored_in)
        classes = tuple(json.loads((root / INFO).read_text())["classes"])
        return DataSnapshot(self.dataset, version, root, classes)

    def items_at(self, version: str) -> int:
        """How many items the dataset held at `version`: the manifest only grows, so they are
        its first rows (what a model trained on that version has seen)."""
        path = self.repo.root / VERSIONS
        entries = [json.loads(line) for line in path.read_text().splitlines() if line] \
            if path.is_file() else []
        found = [entry["items"] for entry in entries
                 if entry["dataset"] == self.dataset and entry["data_version"] == version]
        if not found:
            raise IngestError(f"dataset {self.dataset!r} has no record of version {version!r} "
                              f"in {path}")
        return int(found[-1])

    @contextmanager
    def locked(self, timeout_s: float = 600.0) -> Iterator[None]:
        """Hold the dataset for one ingest: a second one at the same time would check for
        duplicates against an index that is about to change. Waits up to `timeout_s`."""
        self.repo.root.mkdir(parents=True, exist_ok=True)
        path = self.repo.root / f".{self.dataset}.lock"
        with path.open("a") as handle:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise IngestError(f"another ingest of dataset {self.dataset!r} is still "
                                          f"running (lock {path}); try again when it has "
                                          "finished") from None
                    time.sleep(_LOCK_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def add_batch(
        self,
        batch: SourceBatch,
        accepted: list[tuple[SourceItem, ImageFacts]],
        task: str,
        classes: tuple[str, ...],
        ledger_entry: dict[str, object],
        source: str,
    ) -> str:
        """Copy the accepted items in, extend the manifest and ledger, commit and push with
        DVC, and return the new data version; on any failure leave everything as it was.

        The files it changes are journalled first (`_journal`): a process killed half way
        leaves the journal, and the next ingest of the dataset puts them back before anything
        else (`repair_interrupted`), so an interrupted batch is never taken as ingested.
        Only `ledger_entry` enters the versioned folder, so the same batches give the same data
        version on any machine; where they came from and when goes to versions.jsonl."""
        batch_id = str(ledger_entry["batch_id"])
        self._write_journal(batch_id)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            rows = [self._store_item(batch, item, facts, batch_id, classes)
                    for item, facts in accepted]
            manifest = pd.concat([self.manifest(), pd.DataFrame(rows)], ignore_index=True)
            _replace(self.root / MANIFEST, manifest.to_csv(index=False).encode())
            _replace(self.root / INFO, (json.dumps({"task": task, "classes": list(classes)},
                                                   indent=2) + "\n").encode())
            with (self.root / LEDGER).open("a") as ledger:
                ledger.write(json.dumps(ledger_entry) + "\n")
            version = self.repo.commit(self.dataset)
            with (self.repo.root / VERSIONS).open("a") as versions:
                versions.write(json.dumps({"dataset": self.dataset, "data_version": version,
                                           "batch_id": batch_id, "items": len(manifest),
                                           "source": source,
                                           "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
                               + "\n")
        except BaseException:
            self._roll_back()
            raise
        shutil.rmtree(self._journal)  # the commit point: the batch is in
        return version

    def repair_interrupted(self) -> str | None:
        """Put the dataset back as it was before an ingest that was killed half way (its
        journal is still there); says what was repaired, None when nothing was. Call it with
        the dataset locked."""
        state = self._journal / "state.json"
        if not state.is_file():
            shutil.rmtree(self._journal, ignore_errors=True)  # killed before it changed a file
            return None
        batch_id = json.loads(state.read_text())["batch_id"]
        self._roll_back()
        return (f"an earlier ingest of {batch_id} into {self.dataset} was interrupted before "
                f"its data version was committed and pushed; its files were removed and the "
                f"manifest, ledger and .dvc file put back as they were")

    def _journalled(self) -> dict[str, Path]:
        """The files an ingest rewrites, by the name their copy has in the journal."""
        return {MANIFEST: self.root / MANIFEST, INFO: self.root / INFO,
                LEDGER: self.root / LEDGER, "dvc": self.repo.root / f"{self.dataset}.dvc"}

    @property
    def _journal(self) -> Path:
        return self.repo.root / f".{self.dataset}.ingest-journal"

    def _write_journal(self, batch_id: str) -> None:
        """Copies of the files an ingest changes, then (last, atomically) what it will add."""
        shutil.rmtree(self._journal, ignore_errors=True)
        self._journal.mkdir(parents=True)
        kept = {}
        for name, path in self._journalled().items():
            kept[name] = path.is_file()
            if path.is_file():
                shutil.copyfile(path, self._journal / name)
        _replace(self._journal / "state.json", json.dumps({
            "batch_id": batch_id, "created_root": not self.root.exists(), "kept": kept,
            "versions_lines": _line_count(self.repo.root / VERSIONS)}).encode())

    def _roll_back(self) -> None:
        """Undo what the journalled ingest wrote, then drop the journal."""
        state = json.loads((self._journal / "state.json").read_text())
        if state["created_root"]:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            for folder in ("images", "labels"):
                shutil.rmtree(self.root / folder / state["batch_id"], ignore_errors=True)
            for name, path in self._journalled().items():
                if state["kept"][name]:
                    _replace(path, (self._journal / name).read_bytes())
                else:
                    path.unlink(missing_ok=True)
        if not self.root.exists():
            (self.repo.root / f"{self.dataset}.dvc").unlink(missing_ok=True)
        _truncate_lines(self.repo.root / VERSIONS, state["versions_lines"])
        shutil.rmtree(self._journal)

    def _store_item(self, batch: SourceBatch, item: SourceItem, facts: ImageFacts,
                    batch_id: str, classes: tuple[str, ...]) -> dict[str, object]:
        """Copy one accepted item into the dataset and return its manifest row."""
        source = item.path
        assert source is not None  # candidates passed the path check
        suffix = ".png" if facts.needs_normalising else source.suffix.lower()
        image = Path("images") / batch_id / f"{facts.sha256[:16]}{suffix}"
        (self.root / image).parent.mkdir(parents=True, exist_ok=True)
        if facts.needs_normalising:
            upright_rgb(source).save(self.root / image)
        else:  # the same compressed pixels, without the camera's metadata
            (self.root / image).write_bytes(strip_metadata(source.read_bytes(), facts.format))
        regions: dict[str, object] = {}
        if item.boxes is not None:
            label = Path("labels") / batch_id / f"{facts.sha256[:16]}.txt"
            (self.root / label).parent.mkdir(parents=True, exist_ok=True)
            (self.root / label).write_text("".join(f"{_label_line(b, classes)}\n"
                                                   for b in item.boxes))
            if any(b.severity is not None for b in item.boxes):
                regions["severities"] = " ".join(
                    "nan" if b.severity is None else f"{b.severity:.4f}" for b in item.boxes)
        split = item.labels.get("split")
        return {**item.labels, **regions, "item_id": item.item_id, "image_path": image.as_posix(),
                "split": split if split in SPLIT_NAMES else stable_split(item.item_id),
                "batch_id": batch_id, "sha256": facts.sha256, "phash": facts.phash,
                "n_boxes": len(item.boxes or ()), "width": facts.width, "height": facts.height,
                "aspect": facts.aspect, "brightness": facts.brightness,
                "contrast": facts.contrast, "sharpness": facts.sharpness}


def _replace(path: Path, content: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, then one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_bytes(content)
    os.replace(temporary, path)


def _line_count(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.is_file() else 0


def _truncate_lines(path: Path, lines: int) -> None:
    """Keep the first `lines` lines of `path` (a line appended by an undone ingest goes)."""
    if path.is_file() and _line_count(path) > lines:
        kept = path.read_bytes().splitlines(keepends=True)[:lines]
        _replace(path, b"".join(kept))
