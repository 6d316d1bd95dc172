"""Table 1: test accuracy of every shipped checkpoint beside the paper's.

    python -m benchmarks.table1        # writes results/paper/table1.csv and table1.md

Rows come from the manifests under results/paper/checkpoints/. A model the paper reports
but nobody has trained here yet shows "not trained yet" with the command that trains it; a
pretrained one whose ImageNet weights are not in torch's hub cache (this suite never
downloads them) shows where to put them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import pandas as pd

from benchmarks.files import write_atomically
from benchmarks.paths import RESULTS_DIR, SHIPPED_CHECKPOINTS
from signed_saliency.models.imagenet import PRETRAINED_WEIGHTS, cached_weights_path

DATASET_LABELS = {"cifar10": "CIFAR-10 (JPEG copy)", "imagenette": "Imagenette"}
# (model, dataset) -> the paper's test accuracy
PAPER = {
    ("cnn", "cifar10"): 0.6307,
    ("cnn", "imagenette"): 0.6205,
    ("resnet18", "cifar10"): 0.7569,
    ("resnet18", "imagenette"): 0.8357,
    ("resnet18-pretrained", "imagenette"): 0.9733,
    ("convnext-tiny-pretrained", "imagenette"): 0.9932,
}
PRETRAINED_SUFFIX = "-pretrained"
COLUMNS = ["model", "dataset", "image_size", "epochs", "precision", "paper_accuracy", "accuracy", "difference", "status"]
# Manifests of one-off training runs (other seeds, other precisions) cited beside Table 1.
CHECKS = RESULTS_DIR / "paper" / "checks"


def row_model(manifest: dict) -> str:
    """A checkpoint's model as Table 1 names it: a pretrained one is its own row."""
    return manifest["model"] + (PRETRAINED_SUFFIX if manifest.get("pretrained") else "")


def training_precision(manifest: dict) -> str:
    """The paper trained in float32; bf16 autocast learns another model (Table 1's Imagenette CNN)."""
    return "bf16" if manifest.get("bf16_autocast") else "float32"


def table(checkpoints: Path = SHIPPED_CHECKPOINTS) -> pd.DataFrame:
    manifests = {}
    for path in sorted(checkpoints.glob("*.json")):
        manifest = json.loads(path.read_text())
        manifests[(row_model(manifest), manifest["dataset"])] = manifest
    rows = []
    for key in [*PAPER, *(k for k in manifests if k not in PAPER)]:
        model, dataset = key
        manifest = manifests.get(key)
        paper = PAPER.get(key)
        row = {"model": model, "dataset": DATASET_LABELS.get(dataset, dataset), "paper_accuracy": paper}
        if manifest is not None:
            accuracy = manifest["test_accuracy"]
            row |= {
                "image_size": manifest["image_size"],
                "epochs": manifest["epochs"],
                "precision": training_precision(manifest),
                "accuracy": accuracy,
                "difference": None if paper is None else round(accuracy - paper, 4),
                "status": "trained here",
            }
        else:
            row["status"] = missing_status(model, dataset)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS).astype({"image_size": "Int64", "epochs": "Int64"})


def accuracy_by_epoch(folders: tuple[Path, ...] = (SHIPPED_CHECKPOINTS, CHECKS)) -> pd.DataFrame:
    """Tidy rows (run, model, dataset, epoch, accuracy, paper_accuracy) from every manifest
    in ``folders`` that recorded its test accuracy after each epoch (``--track-test-accuracy``)."""
    rows = []
    for folder in folders:
        for path in sorted(folder.glob("*.json")):
            manifest = json.loads(path.read_text())
            model = row_model(manifest)
            run = f"seed {manifest['seed']}, {training_precision(manifest)} ({path.stem})"
            for epoch, accuracy in manifest.get("test_accuracy_by_epoch", {}).items():
                rows.append({"run": run, "model": model, "dataset": manifest["dataset"], "epoch": int(epoch),
                             "accuracy": accuracy, "paper_accuracy": PAPER.get((model, manifest["dataset"]))})
    return pd.DataFrame(rows, columns=["run", "model", "dataset", "epoch", "accuracy", "paper_accuracy"])


def missing_status(model: str, dataset: str) -> str:
    """Why a row of the paper has no number here, and what gives it one."""
    architecture = model.removesuffix(PRETRAINED_SUFFIX)
    pretrained = architecture != model
    if pretrained:
        weights = cached_weights_path(PRETRAINED_WEIGHTS[architecture])
        if not weights.is_file():
            return f"not run: ImageNet weights not in the torch cache ({weights.name}, under $TORCH_HOME/hub/checkpoints)"
    command = f"python -m benchmarks.train --dataset {dataset} --model {architecture}" + (" --pretrained" if pretrained else "")
    return f"not trained yet: `{command}`"


def markdown(frame: pd.DataFrame) -> str:
    def number(value, fmt: str) -> str:
        return "-" if pd.isna(value) else format(value, fmt)

    header = ["Model", "Dataset", "Image size", "Epochs", "Training precision", "Paper", "Here", "Difference", "Status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in frame.itertuples(index=False):
        cells = [
            row.model,
            row.dataset,
            number(row.image_size, ".0f"),
            number(row.epochs, ".0f"),
            number(row.precision, "s"),
            number(row.paper_accuracy, ".4f"),
            number(row.accuracy, ".4f"),
            number(row.difference, "+.4f"),
            row.status,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    note = (
        "\nTop-1 accuracy on the test split (Imagenette: val) after the final epoch. CIFAR-10 here is "
        "a JPEG re-encoding of the official images, which moves pixel values slightly. The paper "
        "trained in float32; a model trained with bf16 autocast (a CPU speed setting) is a deviation.\n"
    )
    return "# Table 1: test accuracy\n\n" + "\n".join(lines) + "\n" + note


def write(out: Path, frame: pd.DataFrame) -> str:
    """``frame`` (:func:`table`) as ``out``/table1.csv and table1.md; return the markdown."""
    text = markdown(frame)
    write_atomically(out / "table1.csv", lambda temporary: frame.to_csv(temporary, index=False))
    write_atomically(out / "table1.md", lambda temporary: temporary.write_text(text))
    return text


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.table1", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "paper")
    args = parser.parse_args(argv)
    print(write(args.out, table()))


if __name__ == "__main__":
    main()
