"""Write the CIFAR-10 test sample shipped inside the package (the ``cifar10`` split ``sample``).

    python -m benchmarks.make_sample [--data-root DIR]

256 test images, 26 of six classes and 25 of the other four, drawn with seed 0. The JPEG
files are stored as they are (about 230 KB in all), so the sample decodes to exactly the
pixels the full test split gives for the same images.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from benchmarks.files import write_atomically
from benchmarks.paths import default_data_root
from signed_saliency.datasets import cifar10
from signed_saliency.datasets._folder import list_folder

SIZE, SEED = 256, 0


def choose(labels: torch.Tensor, size: int = SIZE, seed: int = SEED) -> torch.Tensor:
    """Sorted positions of ``size`` images spread as evenly over the classes as they go."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    per_class = [size // len(classes) + (i < size % len(classes)) for i in range(len(classes))]
    chosen = []
    for label, count in zip(classes, per_class):
        members = torch.nonzero(labels == label).squeeze(1)
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def main(argv: Optional[list[str]] = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.make_sample", description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None)
    args = parser.parse_args(argv)
    folder = (args.data_root or default_data_root()) / cifar10.JPEG_FOLDER / "test"
    if not folder.is_dir():
        print(
            f"error: {folder} not found: the sample is cut from CIFAR-10's JPEG copy; "
            "set --data-root or $SIGNED_SALIENCY_DATA to the folder holding cifar10-jpg/",
            file=sys.stderr,
        )
        raise SystemExit(2)
    listing = list_folder(folder)
    indices = choose(listing.labels)
    blobs = [listing.paths[i].read_bytes() for i in indices]
    buffer = io.BytesIO()
    np.savez(
        buffer,
        jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8),
        offsets=np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64),
        labels=listing.labels[indices].numpy().astype(np.uint8),
        indices=indices.numpy().astype(np.int32),
    )
    target = cifar10.source_path("sample", None)
    write_atomically(target, lambda temporary: temporary.write_bytes(buffer.getvalue()))
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KB, {len(indices)} images)")
    return target


if __name__ == "__main__":
    main()
