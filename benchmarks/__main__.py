"""`make bench`: card factory throughput, centering accuracy per camera, and ingest speed, as a
table or JSON.

    python -m benchmarks [--cards 1000] [--centering-cards 300] [--ingest 2000 10000] [--json]

Targets: at least 100 cards/s on 2 cores and centering within 1 percentage point on clean
studio images (foundation); at least 500 card images/s validated end to end through the ingest
flow, Prefect overhead included (ingest).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from components.cards import CAMERAS, synthesize_batch
from components.centering import centering_accuracy


def bench_factory(workdir: Path, cards: int) -> list[dict[str, object]]:
    """Cards per second on one worker and on every core."""
    rows = []
    for workers in sorted({1, os.cpu_count() or 1}):
        summary = synthesize_batch(workdir / f"factory-{workers}", n=cards, seed=1,
                                   workers=workers)
        rows.append({"workers": workers, "cards": cards, "seconds": summary.seconds,
                     "cards_per_s": summary.cards_per_s})
    return rows


def bench_centering(workdir: Path, cards: int) -> list[dict[str, object]]:
    """Centering error against the factory's truth, per camera."""
    rows = []
    for camera in CAMERAS:
        batch = workdir / f"centering-{camera}"
        synthesize_batch(batch, n=cards, seed=11, camera=camera)
        rows.append({"camera": camera, **centering_accuracy(batch).as_dict()})
    return rows


def bench_ingest(workdir: Path, sizes: list[int]) -> list[dict[str, object]]:
    """The ingest flow on fresh factory batches, one new dataset each: validation throughput
    (flow start to the suite's verdict), the item checks alone, and what follows the verdict
    (Data Docs, quarantine, copy, dvc add and push)."""
    from components.ingest import TASKS, AcceptedIndex, IngestParams, check_batch, read_batch
    from components.settings import load_settings

    load_settings(home=workdir / "home").activate()
    from flows.ingest import ingest  # Prefect reads PREFECT_HOME at import: after activate()

    limits = IngestParams().image_limits
    rows = []
    for number, size in enumerate(sizes):
        batch = workdir / f"ingest-{size}"
        synthesize_batch(batch, n=size, seed=40 + number)
        started = time.perf_counter()
        check_batch(read_batch(batch, needs_boxes=False), TASKS["grade"], AcceptedIndex(), limits,
                    max_bits=20)
        checks_only = size / (time.perf_counter() - started)
        summary = ingest(str(batch), task="grade", dataset=f"bench-{size}")
        seconds, verdict = summary["seconds"], summary["validation_seconds"]
        rows.append({"images": size, "status": summary["status"],
                     "images_per_s": summary["images_per_s"],
                     "validation_s": summary["validation_seconds"],
                     "checks_only_per_s": round(checks_only, 1),
                     "after_verdict_s": round(seconds - verdict, 2),
                     "total_s": summary["seconds"]})
    return rows


def _table(rows: list[dict[str, object]]) -> str:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=1000, help="cards for the factory bench")
    parser.add_argument("--centering-cards", type=int, default=300, help="cards per camera")
    parser.add_argument("--ingest", type=int, nargs="*", default=[2000, 10000],
                        help="batch sizes for the ingest bench")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradeline-bench-") as tmp:
        results = {"factory": bench_factory(Path(tmp), args.cards),
                   "centering": bench_centering(Path(tmp), args.centering_cards),
                   "ingest": bench_ingest(Path(tmp), args.ingest)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("card factory (target: >= 100 cards/s on this machine's cores)")
    print(_table(results["factory"]))
    print("\ncentering vs truth, percentage points (target: studio max_abs <= 1.0)")
    print(_table(results["centering"]))
    print("\ningest flow (target: images_per_s >= 500 through the flow, Prefect included)")
    print(_table(results["ingest"]))


if __name__ == "__main__":
    main()
