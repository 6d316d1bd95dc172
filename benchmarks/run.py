"""``python -m benchmarks.run``: every registered method under every registered metric.

With no arguments it runs the quick suite offline (the shipped CIFAR-10 sample and CNN,
plus signed-shapes and its shipped CNN) and writes ``results/quick/``.

    python -m benchmarks.run --list                      # what is registered
    python -m benchmarks.run --config paper              # the paper suite
    python -m benchmarks.run --plugin my_methods         # compare your own method
    python -m benchmarks.run --shard 0/4                 # one slice; rerun unsliced to report

A run is split into shards written atomically as they finish: a rerun with the same config
skips finished shards, so a kill loses at most the metric call in flight. The report archives
every finished shard's rows in <out>/archive/ (see benchmarks.store.archive): commit it, and a
rerun on another machine skips those shards too.

The rooms, each importing only those below it: cli (flags) -> pipeline (the stages) ->
report and figures -> execute -> plan -> prepare -> provenance and store (the disk).
"""

import sys

from benchmarks.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
