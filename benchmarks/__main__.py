"""`make bench`: card factory throughput and centering accuracy per camera, as a table or JSON.

    python -m benchmarks [--cards 1000] [--centering-cards 300] [--json]

Targets (issue: foundation): at least 100 cards/s on 2 cores; centering within 1 percentage
point on clean studio images.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
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
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gradeline-bench-") as tmp:
        results = {"factory": bench_factory(Path(tmp), args.cards),
                   "centering": bench_centering(Path(tmp), args.centering_cards)}
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print("card factory (target: >= 100 cards/s on this machine's cores)")
    print(_table(results["factory"]))
    print("\ncentering vs truth, percentage points (target: studio max_abs <= 1.0)")
    print(_table(results["centering"]))


if __name__ == "__main__":
    main()
