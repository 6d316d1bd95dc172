"""What a dataset is here: a registry entry that loads a split as in-memory tensors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor

from signed_saliency.errors import UserError
from signed_saliency.registry import Registry, describe


@dataclass(frozen=True)
class GroundTruth:
    """What is known to be right for a batch of images (signed-shapes only).

    ``mask``: (N,H,W) bool, the object's pixels. ``polarity``: (N,) long, +1 where the
    object is brighter than the background and -1 where it is darker.
    """

    mask: Tensor
    polarity: Tensor

    def select(self, index: slice | Tensor | Sequence[int], device: Optional[torch.device] = None) -> "GroundTruth":
        """The ground truth of images ``index``, on ``device`` (where they are when None)."""
        return GroundTruth(mask=self.mask[index].to(device or self.mask.device),
                           polarity=self.polarity[index].to(device or self.polarity.device))


@dataclass(frozen=True)
class ImageSet:
    """One split of a dataset, decoded: uint8 images in memory, sliced into float batches.

    ``indices`` are each image's position in the source split, so a result row can be
    traced back to the file it came from.
    """

    dataset: str
    split: str
    images: Tensor  # uint8 (N,C,H,W)
    labels: Tensor  # long (N,)
    class_names: tuple[str, ...]
    indices: Tensor  # long (N,)
    ground_truth: Optional[GroundTruth] = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N,C,H,W), got {self.images.dtype} {tuple(self.images.shape)}")
        if not (len(self.labels) == len(self.indices) == len(self.images)):
            raise ValueError("images, labels and indices must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def floats(self, index: slice | Tensor | Sequence[int] = slice(None)) -> Tensor:
        """Images ``index`` as float32 in [0,1]."""
        return self.images[index].float().div_(255.0)

    def subset(self, index: Tensor | Sequence[int]) -> "ImageSet":
        index = torch.as_tensor(index, dtype=torch.long)
        return replace(
            self,
            images=self.images[index],
            labels=self.labels[index],
            indices=self.indices[index],
            ground_truth=self.ground_truth.select(index) if self.ground_truth is not None else None,
        )


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset. ``load(split, ...)`` returns an :class:`ImageSet`.

    The loader function is called as ``fn(split, root=..., image_size=..., **options)``;
    ``root`` is None when the dataset needs no files. Loaders only read: fetching a missing
    dataset writes files, which the library never does, so that step is ``benchmarks.data``'s
    (its ``download=True``, the CLI's ``--download``).
    """

    name: str
    fn: Callable[..., ImageSet] = field(repr=False)
    class_names: tuple[str, ...]
    default_image_size: int
    splits: tuple[str, ...]
    evaluation_split: str
    has_ground_truth: bool = False
    description: str = ""
    # where a split is read from under a root: ``source(split, root) -> path or None`` (None:
    # not there yet); a dataset without it is generated, with no files to fingerprint
    source: Optional[Callable[[str, Optional[Path]], Optional[Path]]] = field(default=None, repr=False)
    # ``download(split, root)`` fetches a missing split; only benchmarks.data calls it (``--download``)
    download: Optional[Callable[[str, Path], None]] = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def load(
        self,
        split: Optional[str] = None,
        *,
        root: Optional[str | Path] = None,
        image_size: Optional[int] = None,
        **options,
    ) -> ImageSet:
        split = split or self.evaluation_split
        if split not in self.splits:
            raise UserError(f"dataset {self.name!r} has no split {split!r}; valid: {', '.join(self.splits)}")
        return self.fn(
            split,
            root=Path(root) if root is not None else None,
            image_size=image_size or self.default_image_size,
            **options,
        )


def _build_dataset(*, name: str, fn: Callable, description: Optional[str] = None, **metadata) -> DatasetSpec:
    metadata["class_names"] = tuple(metadata["class_names"])
    metadata["splits"] = tuple(metadata["splits"])
    return DatasetSpec(name=name, fn=fn, description=describe(fn, description), **metadata)


registry: Registry[DatasetSpec] = Registry("dataset", _build_dataset)
register = registry.register
get = registry.get
names = registry.names
