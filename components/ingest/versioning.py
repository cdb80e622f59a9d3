"""Version accepted datasets with DVC: one DVC project (no git) in the data folder, one tracked
folder per dataset, pushed to the configured remote (a local folder by default, S3 when set).

    repo = DataRepo(settings.data_dir, remote=settings.dvc_remote)
    version = repo.commit("grade")   # dvc add + dvc push; the folder's DVC hash

The data version that training and lineage cite is the DVC md5 of the dataset folder; a copy of
each version's `.dvc` file is kept under `versions/`, so any version can be checked out again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REMOTE_NAME = "gradeline"


class VersioningError(RuntimeError):
    """A DVC command failed; the message holds DVC's own words."""


@dataclass(frozen=True)
class DataRepo:
    """The DVC project under `root`; `remote` is a folder or s3:// URL."""

    root: Path
    remote: str
    endpoint_url: str | None = None
    region: str | None = None

    def dvc(self, *args: str) -> str:
        """Run one DVC command in the project and return its output; VersioningError if it fails."""
        env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
        done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=self.root, env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise VersioningError(f"dvc {' '.join(args)} failed: "
                                  f"{(done.stderr or done.stdout).strip()}")
        return done.stdout

    def ensure(self) -> None:
        """Create the project on first use; point its default remote at `remote` every time, so
        a changed setting takes effect."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".dvc").is_dir():
            self.dvc("init", "--no-scm", "--quiet")
            self.dvc("config", "core.analytics", "false")
            self.dvc("config", "core.check_update", "false")
        self.dvc("remote", "add", "--force", "--default", REMOTE_NAME, self.remote)
        for option, value in (("endpointurl", self.endpoint_url), ("region", self.region)):
            if value and self.remote.startswith("s3://"):
                self.dvc("remote", "modify", REMOTE_NAME, option, value)

    def version_of(self, dataset: str) -> str | None:
        """The DVC hash the dataset's `.dvc` file records, None before its first commit."""
        path = self.root / f"{dataset}.dvc"
        if not path.is_file():
            return None
        return str(yaml.safe_load(path.read_text())["outs"][0]["md5"]).removesuffix(".dir")

    def commit(self, dataset: str) -> str:
        """Track the dataset folder's current content, push it, and return its data version."""
        self.ensure()
        self.dvc("add", "--quiet", dataset)
        self.dvc("push", "--quiet", f"{dataset}.dvc")
        version = self.version_of(dataset)
        assert version is not None  # dvc add just wrote the file
        kept = self.root / "versions" / dataset / f"{version}.dvc"
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.root / f"{dataset}.dvc", kept)
        return version
