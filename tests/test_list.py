"""`--list`: what a user plans a run from, costs included."""

from __future__ import annotations

import re

from benchmarks import run
from signed_saliency import methods, metrics
from signed_saliency.metrics import quantus_adapter


def test_list_shows_costs_libraries_and_the_quantus_names(capsys):
    assert run.main(["--list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    for method in methods.registry:
        fields = lines[method.name].split()
        assert fields[1:6] == [method.direction, method.score, method.family, method.cost, method.library or "(own)"]
    assert lines["lime"].split()[4] == "slow" and lines["saliency"].split()[4] == "quick"
    for metric in metrics.registry:
        assert metric.cost_ms is not None, metric.name
        assert re.search(rf"{metric.family} +(higher|lower) +[\d.,]+ ms ", lines[metric.name]), lines[metric.name]
    for name in quantus_adapter.supported_names():
        assert re.search(r" [\d,]+ ms", lines[name]), name
    assert "3,615 ms" in lines["quantus:MonotonicityCorrelation"] and "re-explains" in lines["quantus:MaxSensitivity"]
    # one column per field: the family column is as wide as the longest family
    starts = {line.index(" quick ") if " quick " in line else line.index(" slow ")
              for name, line in lines.items() if name in methods.names()}
    assert len(starts) == 1
