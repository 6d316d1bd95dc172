"""What a run needs before it plans: the device, the chosen images, the trained models.

A model comes from the shipped checkpoint, else a cached one, else (where the config says
how) is trained now.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from benchmarks.config import DatasetRun, RunConfig
from benchmarks.paths import SHIPPED_CHECKPOINTS, cache_dir, default_data_root, portable
from benchmarks.store import path_component
from benchmarks.provenance import StageTimer
from signed_saliency import datasets
from signed_saliency.datasets.core import ImageSet
from signed_saliency.errors import UserError
from signed_saliency.runtime import forward_model, output_count


class MissingCheckpointError(UserError):
    """No trained weights for a (dataset, model), and the config does not train on first use."""


@dataclass(frozen=True)
class CheckpointChoice:
    """``--checkpoint PATH [--checkpoint-sha256 HEX]``: the weights of the run's one model."""

    path: str
    sha256: Optional[str] = None


@dataclass
class LoadedModel:
    name: str
    module: nn.Module
    checkpoint: Path
    sha256: str
    forward_module: nn.Module  # what the perturbation metrics call: ``module`` or a bf16 copy
    num_classes: int  # the model's outputs: a pretrained ImageNet model has 1000 whatever the dataset


@dataclass
class PreparedDataset:
    run: DatasetRun
    images: ImageSet  # the chosen images only
    models: dict[str, LoadedModel]


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU here")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(f"--device {name}: torch sees {torch.cuda.device_count()} CUDA GPU(s) here, numbered from 0")
    return device


def choose_images(images: ImageSet, n_images: Optional[int], seed: int) -> ImageSet:
    """A seeded choice of ``n_images`` from the split, in the seeded shuffle's order. Not
    sorted back into the split's order: splits are stored class by class, so a run stopped
    early would cover only the first classes. (A whole split keeps its stored order, and
    with it the keys of the shards already archived; :func:`plan.execution_order` runs its
    batches in a seeded order instead.)"""
    if n_images is None or n_images >= len(images):
        return images
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(images), generator=generator)[:n_images]
    return images.subset(chosen)


def load_external_model(
    dataset_run: DatasetRun, model_name: str, num_classes: int, image_size: int, device: torch.device,
    checkpoint: Optional[CheckpointChoice],
) -> LoadedModel:
    """``torchvision:NAME``/``timm:NAME`` with their pretrained weights from the local cache,
    or ``checkpoint`` loaded into the architecture ``model_name`` (hash-checked; its sha256
    keys the shards, so changed weights name new shards)."""
    from signed_saliency.models.external import resolve_model

    resolved = resolve_model(
        model_name, checkpoint=checkpoint.path if checkpoint else None,
        num_classes=num_classes if checkpoint else None, sha256=checkpoint.sha256 if checkpoint else None,
    )
    module = resolved.module.to(device).eval()
    return LoadedModel(
        name=model_name, module=module, checkpoint=resolved.weights, sha256=resolved.sha256,
        forward_module=forward_model(module, dataset_run.precision),
        num_classes=output_count(module, torch.zeros(1, 3, image_size, image_size, device=device)),
    )


def load_model(
    dataset_run: DatasetRun, model_name: str, num_classes: int, image_size: int, device: torch.device, quiet: bool,
    checkpoint: Optional[CheckpointChoice] = None,
) -> LoadedModel:
    """``checkpoint`` or a library's pretrained weights (:func:`load_external_model`); else
    the shipped checkpoint, else a cached one, else (if the config allows) train one now."""
    from signed_saliency.models.checkpoints import load_checkpoint
    from signed_saliency.training import TrainConfig

    if checkpoint is not None or ":" in model_name:
        return load_external_model(dataset_run, model_name, num_classes, image_size, device, checkpoint)
    stem = f"{path_component(dataset_run.name)}-{model_name}"
    candidates = [SHIPPED_CHECKPOINTS / f"{stem}.pt", cache_dir() / "checkpoints" / f"{stem}.pt"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        if dataset_run.train is None:
            raise MissingCheckpointError(
                f"no trained {model_name!r} for {dataset_run.name!r}: looked for {candidates[0]} and {candidates[1]}; "
                + (f"give its weights with --checkpoint PATH, or use a pretrained torchvision:NAME"
                   if dataset_run.name.startswith("folder:") else
                   f"train one with: python -m benchmarks.train --dataset {dataset_run.name} --model {model_name}")
            )
        from benchmarks.train import train_model

        try:
            train_config = TrainConfig(**dataset_run.train)
        except TypeError as error:
            raise UserError(f"bad train settings for {dataset_run.name!r}: {error}") from None
        path = candidates[1]
        train_model(
            dataset_run.name, model_name, config=train_config,
            image_size=image_size, device=str(device), dest=path, progress=not quiet,
        )
    model, manifest = load_checkpoint(path, expect={"dataset": dataset_run.name, "model": model_name, "image_size": image_size})
    if manifest.get("num_classes", num_classes) != num_classes:
        raise UserError(f"checkpoint {path} has {manifest['num_classes']} classes, dataset has {num_classes}")
    model = model.to(device).eval()
    return LoadedModel(
        name=model_name, module=model, checkpoint=path, sha256=manifest["sha256"],
        forward_module=forward_model(model, dataset_run.precision), num_classes=num_classes,
    )


def prepare(
    config: RunConfig, device: torch.device, timer: StageTimer, quiet: bool, checkpoint: Optional[CheckpointChoice] = None
) -> list[PreparedDataset]:
    """Every dataset's chosen images and its models that have (or may train) weights;
    ``checkpoint`` holds the weights of a run's one model."""
    from benchmarks.data import load_images

    root = Path(config.data_root) if config.data_root else default_data_root()
    prepared = []
    for run in config.datasets:
        spec = datasets.get(run.name)
        with timer("load data"):
            images = load_images(
                run.name, run.split or spec.evaluation_split, root=root, image_size=run.image_size,
                download=config.download, **run.options,
            )
            images = choose_images(images, run.n_images, config.seed)
        loaded = {}
        for name in run.models:
            try:
                with timer("load models"):
                    loaded[name] = load_model(run, name, spec.num_classes, images.image_size, device, quiet,
                                              checkpoint)
            except MissingCheckpointError as error:
                if config.missing_models != "skip":
                    raise
                print(f"warning: skipped: {error}", file=sys.stderr)
        if loaded:
            prepared.append(PreparedDataset(run=run, images=images, models=loaded))
    if not prepared:
        raise UserError("no (dataset, model) of this config has trained weights yet; see the warnings above")
    return prepared


def checkpoints(prepared: list[PreparedDataset]) -> dict[str, dict[str, str]]:
    """Each (dataset, model)'s weights, as plan.json and the manifest record them."""
    return {
        f"{item.run.name}-{model.name}": {"path": portable(model.checkpoint), "sha256": model.sha256}
        for item in prepared for model in item.models.values()
    }
