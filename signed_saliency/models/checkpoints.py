"""Trained weights on disk: ``<stem>.pt`` (a state dict) beside ``<stem>.json`` (its manifest).

The manifest records what the weights are (dataset, model, classes, image size), how they
were made (protocol, seed, library versions) and the sha256 of the .pt file, so a loaded
model is known to be the one that was asked for. Writing happens in ``benchmarks.train``.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from signed_saliency import models
from signed_saliency.errors import CheckpointError

REQUIRED_FIELDS = ("dataset", "model", "num_classes", "image_size", "sha256")


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights, manifest) for a stem or either of its two files."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def half_state_dict(model: nn.Module) -> dict:
    """The state dict with floating tensors in fp16: half the bytes, and the accuracy moves
    by less than one test image in our runs (it is measured on these rounded weights)."""
    return {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu() for k, v in model.state_dict().items()}


def versions() -> dict:
    import torchvision

    from signed_saliency import __version__

    return {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "signed_saliency": __version__,
        "python": platform.python_version(),
    }


def read_manifest(path: str | Path) -> dict:
    weights, manifest_path = checkpoint_paths(path)
    for file in (weights, manifest_path):
        if not file.is_file():
            raise CheckpointError(
                f"checkpoint file {file} not found: train it with `python -m benchmarks.train` "
                "or point to an existing <stem>.pt with its <stem>.json beside it"
            )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"manifest {manifest_path} is not valid JSON ({error}): retrain or restore it") from None
    missing = [field for field in REQUIRED_FIELDS if field not in manifest]
    if missing:
        raise CheckpointError(f"manifest {manifest_path} lacks {', '.join(missing)}: retrain or restore it")
    return manifest


def load_checkpoint(path: str | Path, expect: Optional[dict] = None) -> tuple[nn.Module, dict]:
    """(model in eval mode with float32 weights, manifest), after checking the .pt file's
    sha256 against the manifest and every ``expect`` field (e.g. ``{"dataset": "cifar10"}``)."""
    weights, manifest_path = checkpoint_paths(path)
    manifest = read_manifest(path)
    actual = sha256_file(weights)
    if actual != manifest["sha256"]:
        raise CheckpointError(
            f"{weights} does not match its manifest {manifest_path} (sha256 {actual[:12]}..., "
            f"manifest says {manifest['sha256'][:12]}...): the file was changed or truncated; retrain or restore it"
        )
    wrong = {k: (manifest.get(k), v) for k, v in (expect or {}).items() if manifest.get(k) != v}
    if wrong:
        details = "; ".join(f"{k} is {got!r}, expected {want!r}" for k, (got, want) in wrong.items())
        raise CheckpointError(f"checkpoint {weights} is not the one asked for: {details}")
    model = models.get(manifest["model"]).build(num_classes=manifest["num_classes"])
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as error:
        raise CheckpointError(f"{weights} does not fit model {manifest['model']!r}: {error}") from None
    return model.eval(), manifest
