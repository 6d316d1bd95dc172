"""``python -m benchmarks.speed import``: ``import signed_saliency`` against ``import torch``.

Each import runs in a fresh interpreter (nothing cached in the process), alternating the
two so that a machine's load falls on both alike; the fastest of ``--repeats`` runs of
each is compared, in wall time and in the child's CPU time (user + system, steadier when
others load the machine). The target is a ratio of at most 1.3: every one-line CLI error
waits for this import.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.speed import suite_parser

ROOT = Path(__file__).resolve().parents[2]
STATEMENTS = {"torch": "import torch", "signed_saliency": "import signed_saliency"}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_import(statement: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``python -c statement`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    cpu, wall = _children_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=env)
    return time.perf_counter() - wall, _children_cpu() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = suite_parser("python -m benchmarks.speed import", __doc__.splitlines()[0], repeats=5)
    args = parser.parse_args(argv)
    time_import(STATEMENTS["signed_saliency"])  # warm the file cache for both
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in STATEMENTS}
    for _ in range(args.repeats):
        for name, statement in STATEMENTS.items():
            runs[name].append(time_import(statement))
    best = {name: (min(w for w, _ in times), min(c for _, c in times)) for name, times in runs.items()}
    for name, (wall, cpu) in best.items():
        print(f"import {name:<16} wall {wall:6.2f} s   cpu {cpu:6.2f} s   (best of {args.repeats})")
    (torch_wall, torch_cpu), (ours_wall, ours_cpu) = best["torch"], best["signed_saliency"]
    print(f"ratio signed_saliency / torch: wall {ours_wall / torch_wall:.2f}x, cpu {ours_cpu / torch_cpu:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
