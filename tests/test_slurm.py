"""benchmarks/slurm/array.sh: its slices' command lines, run on CPU, merge into the whole run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from benchmarks import run
from benchmarks.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "slurm" / "array.sh"


def script(*args: str, **env: str) -> str:
    return subprocess.run(["bash", str(SCRIPT), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=REPO_ROOT).stdout


def test_the_array_scripts_slices_and_report_equal_one_run(workspace):
    tmp, config = workspace
    assert run.main(["--config", config(), "--batch-size", "4", "--out", str(tmp / "whole"), "--quiet"]) == 0
    lines = script(config(), "2", str(tmp / "sliced"), "--batch-size", "4", DRY_RUN="1").splitlines()
    assert [line.split("--shard ")[-1] for line in lines[:2]] == ["0/2", "1/2"]
    assert lines[2].startswith("python -m benchmarks.report ")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for line in lines:
        command = shlex.split(line)
        assert command[0] == "python"
        subprocess.run([sys.executable, *command[1:]], check=True, env=env, cwd=REPO_ROOT, capture_output=True)
    for name in ["scores.csv", "summary.csv", "significance.csv"]:
        assert (tmp / "sliced" / name).read_bytes() == (tmp / "whole" / name).read_bytes(), name


def test_the_array_script_submits_the_slices_then_the_report_after_them(tmp_path):
    calls = tmp_path / "calls"
    fake = tmp_path / "bin" / "sbatch"
    fake.parent.mkdir()
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" >> {calls}\necho ---- >> {calls}\necho 4242\n')
    fake.chmod(0o755)
    out = script("paper-suite", "8", "results/paper", "--device", "cuda",
                 PATH=f"{fake.parent}:{os.environ['PATH']}", SBATCH_ARGS="--partition=gpu")
    slices, report, _ = calls.read_text().split("----\n")
    assert "--array=0-7" in slices and "--gres=gpu:1" in slices and "--partition=gpu" in slices
    assert ("--wrap=python -m benchmarks.run --config paper-suite --out results/paper --device cuda --quiet "
            "--shard $SLURM_ARRAY_TASK_ID/8") in slices
    assert "--dependency=afterok:4242" in report and "--wrap=python -m benchmarks.report results/paper" in report
    assert "job 4242" in out
