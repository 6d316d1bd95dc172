"""Speed benchmarks that print ratios (never run as tests).

    python -m benchmarks.speed methods     # the gradient methods against the paper code's way
    python -m benchmarks.speed metrics     # each metric against its forward-pass floor and quantus
"""

from __future__ import annotations

import argparse
import importlib

SUITES = {"methods": "benchmarks.speed_methods", "metrics": "benchmarks.speed_metrics"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(SUITES))
    args, rest = parser.parse_known_args(argv)
    importlib.import_module(SUITES[args.suite]).main(rest)


if __name__ == "__main__":
    main()
