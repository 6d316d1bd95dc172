"""``python -m benchmarks.speed NAME``: see :mod:`benchmarks.speed`."""

from benchmarks.speed import main

main()
