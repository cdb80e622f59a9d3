"""The models the service answers with, read from the registry's aliases and kept current.

    source = ModelSource(tracking_uri, cache_dir)
    served = source.refresh()          # champion, challenger and its canary share, detector
    served.champion.grade(...)

`refresh` is called on a timer by the service: when promotion or rollback moves an alias, the next
refresh downloads the new version's graph, verifies its checksum and swaps it in, while requests
keep being answered by the snapshot they started with. A version that fails to download or verify
is not served; the one before it stays, and `problems` says why.

A guarded source (`releases` given, as the service always runs) serves what the release audit
log says the aliases and the canary share are, not what the registry says: a hand-moved alias or
tag is never served, and once two refreshes in a row have seen it, it is handed to `on_tamper`
(the service puts the registry back and counts it for on-call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from components.vision.models import SERVED_MODELS, OnnxDetector, OnnxGrader
from components.vision.tasks import plugin_for
from model_registry.guard import GuardReport, check_release
from model_registry.names import (
    ALIAS_CHALLENGER,
    ALIAS_CHAMPION,
    DETECTOR,
    GRADER,
    TAG_CANARY_SHARE,
)
from model_registry.releases import Releases
from model_registry.serving import alias_versions, download_graph, graph_checksum
from model_registry.versions import RegisteredVersion

Model = TypeVar("Model", OnnxGrader, OnnxDetector)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModels:
    """What answers requests right now; a request keeps the snapshot it started with."""

    champion: OnnxGrader | None = None
    challenger: OnnxGrader | None = None
    canary_share: float = 0.0  # 0: the challenger scores in shadow, off the response path
    detector: OnnxDetector | None = None

    def loaded(self) -> dict[str, dict[str, object]]:
        """Name, version and data version of each loaded model, by role."""
        roles = {"champion": self.champion, "challenger": self.challenger,
                 "detector": self.detector}
        return {role: {"model": m.model, "version": m.version,
                       "data_version": getattr(m, "data_version", None)}
                for role, m in roles.items() if m is not None}


@dataclass
class _Loaded(Generic[Model]):
    """The models of one task type already loaded, by version, so a challenger crowned
    champion is not loaded twice; a version of another task type is refused."""

    task: str
    by_version: dict[int, Model] = field(default_factory=dict)

    @property
    def load(self) -> Callable[[Path, str | None, str, int], Model]:
        return plugin_for(SERVED_MODELS, self.task, "serving").load

    def get(self, tracking_uri: str, cache: Path, version: RegisteredVersion) -> Model:
        task = version.tags.get("task", self.task)
        if task != self.task:
            raise ValueError(f"it is a {task} model, and this place serves {self.task} models")
        if version.version not in self.by_version:
            graph = download_graph(tracking_uri, version,
                                   cache / f"{version.name}-{version.version}")
            self.by_version[version.version] = self.load(graph, graph_checksum(version),
                                                         version.name, version.version)
        return self.by_version[version.version]

    def keep_only(self, versions: set[int]) -> None:
        self.by_version = {v: m for v, m in self.by_version.items() if v in versions}


def _canary_share(tag: str | None) -> float:
    """A canary share tag's value; anything unreadable counts as shadow (0)."""
    try:
        share = float(tag) if tag is not None else 0.0
    except ValueError:
        return 0.0
    return min(max(share, 0.0), 1.0) if share == share else 0.0


class ModelSource:
    """Follows the `champion` and `challenger` aliases of the grader and the detector's
    `champion`, loading each new version once its graph's checksum is verified."""

    def __init__(self, tracking_uri: str, cache_dir: Path, grader: str = GRADER,
                 detector: str = DETECTOR, releases: Releases | None = None,
                 on_tamper: Callable[[GuardReport], None] | None = None) -> None:
        self.tracking_uri, self.cache_dir = tracking_uri, cache_dir
        self.grader_name, self.detector_name = grader, detector
        self.graders: _Loaded[OnnxGrader] = _Loaded("grade")
        self.detectors: _Loaded[OnnxDetector] = _Loaded("detect")
        self.current = ServedModels()
        self.problems: dict[str, str] = {}
        self.releases, self.on_tamper = releases, on_tamper
        self._unexplained: dict[str, str] = {}  # by model: what the last refresh found

    def _resolve(self, loaded: _Loaded[Model], role: str, version: RegisteredVersion | None,
                 previous: Model | None) -> Model | None:
        """The model for `version`, or the previous one (with a problem noted) if it fails."""
        if version is None:
            self.problems.pop(role, None)
            return None
        try:
            model = loaded.get(self.tracking_uri, self.cache_dir, version)
        except Exception as error:  # a bad version must not take down the one serving
            message = f"{version.name} version {version.version}: {error}"
            if self.problems.get(role) != message:
                logger.error("not serving %s as %s: %s", version.name, role, message)
            self.problems[role] = message
            return previous
        self.problems.pop(role, None)
        return model

    def refresh(self) -> ServedModels:
        """Read the aliases, load what changed, and return the new snapshot."""
        graders, share = self._released(self.grader_name, (ALIAS_CHAMPION, ALIAS_CHALLENGER))
        detectors, _ = self._released(self.detector_name, (ALIAS_CHAMPION,))
        champion = self._resolve(self.graders, "champion", graders.get(ALIAS_CHAMPION),
                                 self.current.champion)
        challenger = self._resolve(self.graders, "challenger", graders.get(ALIAS_CHALLENGER),
                                   None)
        detector = self._resolve(self.detectors, "detector", detectors.get(ALIAS_CHAMPION),
                                 self.current.detector)
        self.graders.keep_only({m.version for m in (champion, challenger) if m is not None})
        self.detectors.keep_only({detector.version} if detector else set())
        self.current = ServedModels(champion, challenger, share if challenger else 0.0, detector)
        return self.current

    def _released(self, name: str, aliases: tuple[str, ...]
                  ) -> tuple[dict[str, RegisteredVersion], float]:
        """The versions to serve as `aliases` of model `name`, and the challenger's canary
        share: as the registry says, or as the audit log says when the source is guarded."""
        if self.releases is None:
            found = alias_versions(self.tracking_uri, name, aliases)
            challenger = found.get(ALIAS_CHALLENGER)
            return found, _canary_share(challenger.tags.get(TAG_CANARY_SHARE)
                                        if challenger else None)
        report = check_release(self.releases, name)
        problem, text = f"release of {name}", "; ".join(report.findings)
        if not text:
            self.problems.pop(problem, None)
        elif self._unexplained.get(name) == text and self.problems.get(problem) != text:
            # Seen on two refreshes in a row: a release step writes its audit line, then its
            # registry writes, so one sighting alone may be a step in progress.
            self.problems[problem] = text
            logger.error("%s changed outside the release flow: %s", name, text)
            try:
                if self.on_tamper is not None:
                    self.on_tamper(report)
            except Exception:  # the audited state is served whether or not it is put back
                logger.exception("could not put the release of %s back", name)
        self._unexplained[name] = text
        expected = report.expected
        found = {alias: self.releases.version(name, expected.aliases[alias])
                 for alias in aliases if alias in expected.aliases}
        share = expected.canary_shares.get(expected.challenger) if expected.challenger else None
        return found, _canary_share(share)
