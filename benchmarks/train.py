"""Train a model with the paper's protocol; killed runs resume from their last epoch.

    python -m benchmarks.train --dataset cifar10 --model cnn          # 50 epochs, as in the paper
    python -m benchmarks.train --dataset cifar10 --model cnn --epochs 1 --limit 512 --dest /tmp/x.pt
    python -m benchmarks.train --dataset imagenette --model cnn --seed 43 --track-test-accuracy
    python -m benchmarks.train --dataset imagenette --model convnext-tiny --pretrained   # ImageNet weights in the torch cache
    python -m benchmarks.train --dataset imagenette --model resnet18 --device cuda --channels-last   # on a GPU

The paper: AdamW, lr 1e-3, batch 128, 50 epochs, seed 42, no augmentation, accuracy of the
final epoch on the test split; a pretrained model trains its final linear layer alone, from
ImageNet weights found in torch's hub cache (never downloaded); float32, as the paper
trained (``--bf16`` is faster on CPU but learns another model). A resume checkpoint is
written (atomically) after every epoch in the run folder; at the end the weights go out in
fp16 with a JSON manifest. Only a run of the paper's protocol on the whole training set at
the dataset's image size replaces the shipped weights; any other run (another seed, fewer
epochs, a subset, bf16, another --image-size) writes into its run folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch
from tqdm import tqdm

from benchmarks.files import write_atomically
from benchmarks.data import load_images
from benchmarks.paths import SHIPPED_CHECKPOINTS, cache_dir
from signed_saliency import datasets, models
from signed_saliency.errors import UserError
from signed_saliency.models.checkpoints import checkpoint_paths, half_state_dict, sha256_file, versions
from signed_saliency.training import TrainConfig, Trainer, accuracy, build_model, permuted_labels

RESUME_FILE = "resume.pt"
def train_model(
    dataset: str,
    model: str,
    *,
    config: Optional[TrainConfig] = None,
    image_size: Optional[int] = None,
    device: str = "cpu",
    limit: Optional[int] = None,
    pretrained: bool = False,
    permute_labels: bool = False,
    track_test_accuracy: bool = False,
    root: Optional[str | Path] = None,
    download: bool = False,
    out: Optional[Path] = None,
    dest: Optional[Path] = None,
    progress: bool = True,
) -> Path:
    """Train (or resume) one run and write ``dest`` (.pt + .json); returns the .pt path.

    ``config`` defaults to the paper's protocol (:class:`TrainConfig`).
    ``out`` holds the resume checkpoint (default: a folder under the cache named after the
    run's settings); ``dest`` defaults to the shipped checkpoints for a run of the paper's
    protocol on the whole training set at the dataset's image size, and to ``out`` for any
    other run (a seed, a subset, permuted labels, another image size), which must not
    replace those. ``pretrained`` starts from the ImageNet weights and trains the head
    alone (:func:`signed_saliency.training.build_model`).
    ``track_test_accuracy`` scores the test split after every epoch, in the training's
    precision, as the paper's code did: the manifest's ``test_accuracy_by_epoch`` shows how
    far the final epoch's accuracy, which Table 1 reports, moves from one epoch to the next.
    """
    spec = datasets.get(dataset)
    image_size = image_size or spec.default_image_size
    config = config or TrainConfig()
    network = build_model(model, spec.num_classes, config.seed, pretrained)  # before the data: missing weights fail fast
    train = load_images(dataset, "train", root=root, image_size=image_size, download=download)
    if limit is not None:
        # a seeded subset rather than the first files, which would all be one class
        chosen = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))[:limit]
        train = train.subset(chosen.sort().values)
    if permute_labels:
        train = replace(train, labels=permuted_labels(train.labels, config.seed))

    run = {
        "dataset": dataset,
        "model": model,
        "image_size": image_size,
        "limit": limit,
        "permuted_labels": permute_labels,
        # only when set, so the run folders of runs begun before this option keep their names
        **({"pretrained": True} if pretrained else {}),
        **{k: v for k, v in config.as_dict().items() if k != "epochs"},
    }
    stem = f"{dataset}-{model}" + ("-pretrained" if pretrained else "") + ("-permuted" if permute_labels else "")
    run_name = f"{stem}-{hashlib.sha256(json.dumps(run, sort_keys=True).encode()).hexdigest()[:10]}"
    out = Path(out) if out is not None else cache_dir() / "train" / run_name
    # the shipped weights are the paper's: its protocol, every training image, its image size
    shipped = (
        limit is None and not permute_labels and image_size == spec.default_image_size and is_paper_protocol(config)
    )
    default_dest = SHIPPED_CHECKPOINTS if shipped else out
    dest = Path(dest) if dest is not None else default_dest / f"{stem}.pt"

    described = device_description(device)  # read before training: a failure here must not cost the run
    trainer = Trainer(network, train, config, device)
    resume = out / RESUME_FILE
    seconds = 0.0  # training time over every session of this run
    accuracy_by_epoch: dict[str, float] = {}  # str keys: they go to JSON
    if resume.is_file():
        state = torch.load(resume, map_location=device, weights_only=True)
        trainer.load_state_dict(state)
        seconds = state.get("train_seconds", 0.0)
        accuracy_by_epoch = dict(state.get("test_accuracy_by_epoch", {}))
    test = load_images(dataset, spec.evaluation_split, root=root, image_size=image_size, download=download)
    bar = tqdm(
        total=config.epochs * len(train),
        initial=min(trainer.epoch, config.epochs) * len(train),
        unit="img",
        desc=stem,
        disable=not progress,
        smoothing=0.05,
    )
    if trainer.epoch:
        bar.write(f"resumed {resume} after epoch {trainer.epoch}")
    loss = float("nan")
    while not trainer.finished:
        epoch_start = time.perf_counter()
        loss = trainer.train_epoch(lambda n, value: (bar.update(n), bar.set_postfix(loss=f"{value:.3f}")))
        epoch_seconds = time.perf_counter() - epoch_start
        seconds += epoch_seconds
        scored = ""
        if track_test_accuracy:
            accuracy_by_epoch[str(trainer.epoch)] = accuracy(trainer.model, test, device=device, bf16=config.bf16)
            scored = f" test accuracy {accuracy_by_epoch[str(trainer.epoch)]:.4f}"
        state = {**trainer.state_dict(), "train_seconds": seconds, "test_accuracy_by_epoch": accuracy_by_epoch}
        write_atomically(resume, lambda temporary: torch.save(state, temporary))
        bar.write(f"epoch {trainer.epoch}/{config.epochs} loss {loss:.4f} ({epoch_seconds:.1f} s){scored}")
    bar.close()

    # measure the accuracy of the weights as shipped: rounded to fp16, loaded back as float32
    rounded = half_state_dict(trainer.model)
    trainer.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in rounded.items()})
    test_accuracy = accuracy(trainer.model, test, device=device)
    manifest = {
        "dataset": dataset,
        "model": model,
        "num_classes": spec.num_classes,
        "class_names": list(spec.class_names),
        "image_size": image_size,
        "pretrained": pretrained,
        "epochs": config.epochs,
        "batch_size": config.batch_size,
        "optimizer": "AdamW",
        "lr": config.lr,
        "seed": config.seed,
        "augmentation": None,
        "bf16_autocast": config.bf16,
        "channels_last": config.channels_last,
        "train_images": len(train),
        "limit": limit,
        "permuted_labels": permute_labels,
        "final_train_loss": None if loss != loss else round(loss, 6),
        "test_split": spec.evaluation_split,
        "test_images": len(test),
        "test_accuracy": test_accuracy,
        **({"test_accuracy_by_epoch": accuracy_by_epoch} if accuracy_by_epoch else {}),
        "weights_dtype": "float16",
        "device": device,
        **described,
        "threads": torch.get_num_threads(),
        "train_seconds": round(seconds, 1),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
    }
    write_checkpoint(rounded, manifest, dest)
    return checkpoint_paths(dest)[0]


def device_description(device: str) -> dict:
    """The GPU's name and how it did float32 arithmetic, for the manifest; nothing on a CPU.

    PyTorch's defaults are kept, not set: cuDNN may run float32 convolutions in TF32 while
    matrix products stay IEEE float32 (``float32_matmul_precision`` "highest"). The paper
    trained in float32 with a GPU's defaults; which of these a run had is part of what it is.
    """
    if torch.device(device).type != "cuda":
        return {}
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    math = {
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cuda_matmul_allow_tf32": matmul.allow_tf32,
        "cudnn_allow_tf32": cudnn.allow_tf32,
        "cudnn_benchmark": cudnn.benchmark,
        "cudnn_deterministic": cudnn.deterministic,
    }
    # torch >= 2.9 says the same per backend as "ieee" or "tf32"
    for name, backend in (("cuda_matmul_fp32_precision", matmul), ("cudnn_conv_fp32_precision", getattr(cudnn, "conv", None))):
        if hasattr(backend, "fp32_precision"):
            math[name] = backend.fp32_precision
    return {"device_name": torch.cuda.get_device_name(device), "float32_math": math}


def is_paper_protocol(config: TrainConfig) -> bool:
    """The paper's epochs, batch size, lr, seed and float32; ``channels_last`` alone is a
    memory layout, but bf16 changes what is learnt (the Imagenette CNN: +0.055 accuracy)."""
    speed = ("channels_last",)
    ours, papers = ({k: v for k, v in c.as_dict().items() if k not in speed} for c in (config, TrainConfig()))
    return ours == papers


def write_checkpoint(state: dict, manifest: dict, dest: Path) -> None:
    """``<stem>.pt`` then ``<stem>.json`` (with the .pt's sha256), each replaced atomically."""
    weights, manifest_path = checkpoint_paths(dest)
    write_atomically(weights, lambda temporary: torch.save(state, temporary))
    text = json.dumps({**manifest, "sha256": sha256_file(weights)}, indent=2) + "\n"
    write_atomically(manifest_path, lambda temporary: temporary.write_text(text))


def main(argv: Optional[list[str]] = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, choices=datasets.names())
    parser.add_argument("--model", required=True, choices=models.names())
    defaults = TrainConfig()
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--image-size", type=int, help="resize images to this square size (default: the dataset's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--bf16",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="bf16 autocast + channels_last: on a CPU with AMX 1.6-3.5x faster (not resnet18 at 32 px), "
        "but not the paper's float32 training (the Imagenette CNN ends 0.055 more accurate); default: off",
    )
    parser.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="store activations NHWC: the same float32 training, faster on a GPU's tensor cores "
        "(default: on with --bf16, else off)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch CPU threads (default 2; on a CPU shared with other jobs 1 can be much faster, "
        "as two threads that wait on each other stall whenever either is descheduled)",
    )
    parser.add_argument("--limit", type=int, help="train on a seeded subset of N training images")
    parser.add_argument("--pretrained", action="store_true",
                        help="start from the ImageNet weights in torch's hub cache ($TORCH_HOME) and train the head alone")
    parser.add_argument("--permuted-labels", action="store_true", help="shuffle training labels (sanity check)")
    parser.add_argument(
        "--track-test-accuracy",
        action="store_true",
        help="score the test split after every epoch (in the manifest's test_accuracy_by_epoch)",
    )
    parser.add_argument("--data-root", help="folder holding cifar10-jpg/ and imagenette2-224/ ($SIGNED_SALIENCY_DATA)")
    parser.add_argument("--download", action="store_true", help="download the dataset with torchvision")
    parser.add_argument("--out", type=Path, help="run folder for the resume checkpoint (default: under the cache)")
    parser.add_argument(
        "--dest", type=Path, help="final <stem>.pt (default: results/paper/checkpoints/ for the paper's protocol, else --out)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    image_size = args.image_size or datasets.get(args.dataset).default_image_size
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         bf16=args.bf16, channels_last=args.bf16 if args.channels_last is None else args.channels_last)
    try:
        path = train_model(
            args.dataset,
            args.model,
            config=config,
            image_size=image_size,
            device=args.device,
            limit=args.limit,
            pretrained=args.pretrained,
            permute_labels=args.permuted_labels,
            track_test_accuracy=args.track_test_accuracy,
            root=args.data_root,
            download=args.download,
            out=args.out,
            dest=args.dest,
        )
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {path} and its manifest")
    return path


if __name__ == "__main__":
    main()
