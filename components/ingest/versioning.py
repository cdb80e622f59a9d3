"""Version accepted datasets with DVC: one DVC project (no git) in the data folder, one tracked
folder per dataset, pushed to the configured remote (a local folder by default, S3 when set).
DVC runs in-process through its Python API (`dvc add` and `dvc push` as a library): starting
the `dvc` command costs ~2 s each time.

    repo = DataRepo(settings.data_dir, remote=settings.dvc_remote)
    version = repo.commit("grade")   # dvc add + dvc push; the folder's DVC hash

The data version that training and lineage cite is the DVC md5 of the dataset folder; a copy of
each version's `.dvc` file is kept as `versions/<dataset>/<version>.dvc.yaml`: copied back to
`<dataset>.dvc`, `dvc checkout` restores that version.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml
from dvc.exceptions import DvcException
from dvc.repo import Repo

REMOTE_NAME = "gradeline"


@contextmanager
def _dvc_quiet() -> Iterator[None]:
    """DVC's own info lines ("Initialized DVC repository.") off, warnings on: in-process they
    would reach whatever handler the host installed, stdout included, and spoil --json."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class VersioningError(RuntimeError):
    """DVC could not add or push a dataset; the message holds DVC's own words."""


@dataclass(frozen=True)
class DataRepo:
    """The DVC project under `root`; `remote` is a folder or s3:// URL."""

    root: Path
    remote: str
    endpoint_url: str | None = None
    region: str | None = None

    def ensure(self) -> Repo:
        """Open the project, creating it on first use, with its default remote pointed at
        `remote` every time so that a changed setting takes effect."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if (self.root / ".dvc").is_dir():
                repo = Repo(str(self.root))
            else:
                with _dvc_quiet():
                    repo = Repo.init(str(self.root), no_scm=True)
            with repo.config.edit() as config:
                config.setdefault("core", {}).update({"analytics": False, "check_update": False,
                                       "remote": REMOTE_NAME})
                remote = {"url": self.remote}
                if self.remote.startswith("s3://"):
                    remote |= {k: v for k, v in (("endpointurl", self.endpoint_url),
                                                  ("region", self.region)) if v}
                config.setdefault("remote", {})[REMOTE_NAME] = remote
        except DvcException as error:
            raise VersioningError(f"DVC project {self.root}: {error}") from error
        return repo

    def version_of(self, dataset: str) -> str | None:
        """The DVC hash the dataset's `.dvc` file records, None before its first commit."""
        path = self.root / f"{dataset}.dvc"
        if not path.is_file():
            return None
        return str(yaml.safe_load(path.read_text())["outs"][0]["md5"]).removesuffix(".dir")

    def commit(self, dataset: str) -> str:
        """Track the dataset folder's current content, push it, and return its data version."""
        repo = self.ensure()
        try:
            with repo, _dvc_quiet():
                repo.add([str(self.root / dataset)])
                repo.push(targets=[str(self.root / f"{dataset}.dvc")])
        except (DvcException, OSError) as error:  # a remote folder that cannot be written
            raise VersioningError(f"DVC could not version {dataset}: {error}") from error
        version = self.version_of(dataset)
        assert version is not None  # dvc add just wrote the file
        # Not named *.dvc: DVC would take every copy for a stage tracking the same folder.
        kept = self.root / "versions" / dataset / f"{version}.dvc.yaml"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / f"{dataset}.dvc", kept)
        return version

    def versions(self, dataset: str) -> list[str]:
        """Every version of `dataset` committed here, oldest first."""
        kept = sorted((self.root / "versions" / dataset).glob("*.dvc.yaml"),
                      key=lambda path: path.stat().st_mtime)
        return [path.name.removesuffix(".dvc.yaml") for path in kept]

    def materialize(self, dataset: str, version: str, folder: Path) -> Path:
        """A working copy of one past version of `dataset` in `folder/<version>/<dataset>`,
        made by `dvc pull` in a scratch DVC project that shares this project's cache and
        remote: files come from the local cache when there, else from the remote. Made once;
        the working copy of the dataset itself is never touched."""
        kept = self.root / "versions" / dataset / f"{version}.dvc.yaml"
        if not kept.is_file():
            known = ", ".join(self.versions(dataset)) or "none"
            raise VersioningError(f"dataset {dataset!r} has no version {version!r} "
                                  f"(known: {known})")
        done = folder / version
        if done.is_dir():
            return done / dataset
        scratch = folder / f".{version}.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        repo = DataRepo(scratch, self.remote, self.endpoint_url, self.region).ensure()
        try:
            with repo.config.edit() as config:
                config["cache"] = {"dir": str(self.root / ".dvc" / "cache"),
                                   "type": "reflink,hardlink,copy"}
            shutil.copyfile(kept, scratch / f"{dataset}.dvc")
            with repo, _dvc_quiet():
                repo.pull(targets=[str(scratch / f"{dataset}.dvc")])
        except DvcException as error:
            raise VersioningError(f"DVC could not restore {dataset} {version}: {error}") from error
        scratch.rename(done)
        return done / dataset

