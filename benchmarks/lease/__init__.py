"""Spending a short GPU lease: the tree that travels, the data staged in chunks, one job.

A lent GPU machine takes at most 64 MiB of working tree per command, returns at most 8
files of 16 MiB, runs a command for at most 10 minutes and stays warm 30 s between
commands. docs/device.md says how the pieces fit:

- :mod:`benchmarks.lease.travel`: measure what would travel, move ``results/`` aside for the
  lease and back after;
- :mod:`benchmarks.lease.stage`: cut Imagenette into chunks (the JPEG bytes unchanged, with
  sha256 sums), take each carried chunk in on the device, verify and assemble them;
- :mod:`benchmarks.lease.job` (``job.sh`` wraps it): train, score, archive and pack the
  results into ``$OUT``, through the suite's command lines;
- :mod:`benchmarks.lease.land`: check the returned files and put them into ``results/paper``;
- :mod:`benchmarks.lease.rehearse`: the whole lease on this machine's CPU, tiny.
"""
