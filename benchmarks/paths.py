"""Where the suite reads and writes: the repository, the data root, the caches."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "results"
SHIPPED_CHECKPOINTS = RESULTS_DIR / "paper" / "checkpoints"

DATA_ROOT_VARIABLE = "SIGNED_SALIENCY_DATA"
CACHE_VARIABLE = "SIGNED_SALIENCY_CACHE"


def default_data_root() -> Path:
    """$SIGNED_SALIENCY_DATA, else ../shared/data beside the repository (this project's
    machines), else ~/.cache/signed-saliency/data (where downloads go)."""
    if os.environ.get(DATA_ROOT_VARIABLE):
        return Path(os.environ[DATA_ROOT_VARIABLE]).expanduser()
    beside = REPO_ROOT.parent / "shared" / "data"
    if beside.is_dir():
        return beside
    return cache_dir() / "data"


def portable(path: Path) -> str:
    """``path`` as a manifest records it: relative to the repository where it lies inside
    (the shipped weights), else with the home folder as ``~``, so a committed manifest or
    plan reads the same from every clone."""
    path = Path(path).resolve()
    if path.is_relative_to(REPO_ROOT):
        return path.relative_to(REPO_ROOT).as_posix()
    home = Path.home().resolve()
    return f"~/{path.relative_to(home).as_posix()}" if path.is_relative_to(home) else str(path)


def cache_dir() -> Path:
    """$SIGNED_SALIENCY_CACHE, else ~/.cache/signed-saliency: decoded images, trained-on-first-use models."""
    return Path(os.environ.get(CACHE_VARIABLE) or Path.home() / ".cache" / "signed-saliency").expanduser()
