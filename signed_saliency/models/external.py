"""Your own model: any torchvision or timm classifier, or your weights for an architecture.

    models.get("torchvision:resnet50").build(pretrained=True)  # ImageNet weights from torch's hub cache
    models.get("timm:convnext_small").build(pretrained=True)   # needs timm; weights from the Hugging Face cache
    resolve_model("resnet18", checkpoint="mine.pt", num_classes=10)         # your weights, hash recorded
    resolve_model("torchvision:resnet50", checkpoint="ft.pth", num_classes=37)

Every model here takes images in [0, 1] and carries its input normalisation inside, as its
first module (``normalize``; ImageNet's mean and std for torchvision's weights, the
weights' own for timm's). That is why: gradients are taken with respect to the pixels the
metrics change, so "brighten" and "darken" mean what a signed map says and the
perturbations' black and white baselines are black and white; a model that expected
normalised input would receive gradients and perturbations in another space, and
silently. It also lets one image tensor serve every model.

Weights are read from the local caches and never downloaded (a benchmark that fetches
weights silently is not reproducible, and these machines have no internet); a missing
file is a one-line error saying where it was looked for and how to put it there. Every
weights file is hash-checked: torchvision's by the hash prefix in its file name, as
``torch.hub`` does; the Hugging Face cache's by the sha256 it is stored under; your
checkpoint against its manifest (``<stem>.json``, as the shipped ones), an ``sha256`` you
give, or a ``-<hex>`` suffix in its name; its sha256 is returned either way, so a run can
record it and notice when the file changes.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from signed_saliency.errors import CheckpointError, UserError
from signed_saliency.lazy import lazy_import
from signed_saliency.models.checkpoints import checkpoint_paths, load_checkpoint, sha256_file
from signed_saliency.models.core import ModelSpec, registry
from signed_saliency.models.imagenet import IMAGENET_MEAN, IMAGENET_STD, Normalize, cached_weights_path

torchvision_models = lazy_import("torchvision.models")

# torch.hub's convention: ``name-<first hex digits of the sha256>.ext``
HASH_IN_NAME = re.compile(r"-([a-f0-9]{8,64})\.[^.]+$")


class NormalizedClassifier(nn.Module):
    """``net(normalize(x))``: a classifier that takes [0, 1] images."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(tuple(mean), tuple(std))
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def with_normalization(net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> NormalizedClassifier:
    """Wrap ``net``, which expects ``(x - mean) / std``, into a model taking [0, 1] images."""
    return NormalizedClassifier(net, mean, std)


@dataclass(frozen=True)
class ResolvedModel:
    """A model ready to explain: eval mode, [0, 1] input, and what identifies its weights."""

    name: str
    module: nn.Module
    weights: Optional[Path]  # the file the weights came from; None for an untrained model
    sha256: Optional[str]


def _check_hash(path: Path, actual: str, expected: Optional[str], where: str) -> None:
    if expected is not None and not actual.startswith(expected.lower()):
        raise CheckpointError(
            f"{path} has sha256 {actual[:16]}..., but {where} says {expected[:16]}...: "
            "the file was changed, truncated or is another one"
        )


# --- torchvision ---------------------------------------------------------------------------

def _torchvision_classifiers() -> list[str]:
    # list_models(module=torchvision.models) is the classifiers only, not detection or video
    return torchvision_models.list_models(module=torchvision_models.resolve())


def _check_torchvision_name(name: str) -> None:
    valid = _torchvision_classifiers()
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"torchvision has no classifier {name!r}: {hint}see torchvision.models.list_models(torchvision.models)")


def torchvision_classifier(name: str, num_classes: Optional[int] = None, pretrained: bool = False) -> NormalizedClassifier:
    """torchvision's classifier ``name`` behind ImageNet normalisation; ``pretrained``: its
    default weights, from torch's hub cache (with their own classes: ``num_classes`` must
    be None or match), else untrained with ``num_classes`` outputs (1000 by default)."""
    if pretrained:
        return _pretrained_torchvision(name, num_classes).module
    _check_torchvision_name(name)
    net = torchvision_models.get_model(name, weights=None, num_classes=num_classes or 1000)
    return NormalizedClassifier(net, IMAGENET_MEAN, IMAGENET_STD)


def _pretrained_torchvision(name: str, num_classes: Optional[int]) -> ResolvedModel:
    _check_torchvision_name(name)
    weights = torchvision_models.get_model_weights(name).DEFAULT
    classes = len(weights.meta["categories"])
    if num_classes not in (None, classes):
        raise UserError(
            f"torchvision:{name}'s pretrained weights have {classes} classes, not {num_classes}: evaluate it on its own "
            "classes, or give a checkpoint of your fine-tuned model"
        )
    path = cached_weights_path(weights)
    if not path.is_file():
        raise UserError(
            f"torchvision weights {weights} not found at {path}: this suite never downloads them; copy "
            f"{weights.url} there (or set $TORCH_HOME), or build the model untrained"
        )
    digest = sha256_file(path)
    match = HASH_IN_NAME.search(path.name)
    _check_hash(path, digest, match.group(1) if match else None, "its file name")
    net = torchvision_models.get_model(name, weights=None)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    preprocessing = weights.transforms()
    module = NormalizedClassifier(net, preprocessing.mean, preprocessing.std).eval()
    return ResolvedModel(f"torchvision:{name}", module, path, digest)


# --- timm ----------------------------------------------------------------------------------

def _import(package: str, needed_for: str) -> Any:
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError:
        raise UserError(f"{needed_for} needs the {package} package, which is not installed: pip install {package}") from None


def timm_classifier(name: str, num_classes: Optional[int] = None, pretrained: bool = False) -> NormalizedClassifier:
    """timm's model ``name`` behind its pretrained weights' normalisation; ``pretrained``:
    those weights from the Hugging Face cache (their own classes), else untrained."""
    if pretrained:
        return _pretrained_timm(name, num_classes).module
    timm = _timm(name)
    net = timm.create_model(name, pretrained=False, **({} if num_classes is None else {"num_classes": num_classes}))
    return NormalizedClassifier(net, net.pretrained_cfg["mean"], net.pretrained_cfg["std"])


def _timm(name: str) -> Any:
    timm = _import("timm", f"timm:{name}")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"timm has no model {name!r}: {hint}see timm.list_models()")
    return timm


def _pretrained_timm(name: str, num_classes: Optional[int]) -> ResolvedModel:
    timm = _timm(name)
    config = timm.create_model(name, pretrained=False).pretrained_cfg
    if num_classes not in (None, config.get("num_classes")):
        raise UserError(f"timm:{name}'s pretrained weights have {config.get('num_classes')} classes, not {num_classes}")
    path, digest = _hugging_face_cached_file(name, config)
    net = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    module = NormalizedClassifier(net, config["mean"], config["std"]).eval()
    return ResolvedModel(f"timm:{name}", module, path, digest)


def _hugging_face_cached_file(name: str, config: dict) -> tuple[Path, str]:
    """(path, sha256) of a timm model's cached weights, checked against the sha256 the
    cache stores them under (large files are kept as ``blobs/<sha256>``)."""
    hub = _import("huggingface_hub", f"timm:{name}")
    repo = config.get("hf_hub_id")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = hub.try_to_load_from_cache(repo, filename) if repo else None
        if isinstance(found, str):
            path = Path(found)
            digest, blob = sha256_file(path), path.resolve().name
            _check_hash(path, digest, blob if re.fullmatch(r"[a-f0-9]{64}", blob) else None, "the Hugging Face cache")
            return path, digest
    raise UserError(
        f"pretrained timm:{name} weights ({repo}) are not in the Hugging Face cache: this suite never downloads them; "
        f"run timm.create_model({name!r}, pretrained=True) once on a machine with internet and copy the cache "
        "($HF_HOME, default ~/.cache/huggingface)"
    )


# --- your checkpoint -----------------------------------------------------------------------

def _state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # an unpickling refusal: a whole pickled model, or not torch at all
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path} is not a state dict torch can load safely ({first}): "
                              "save model.state_dict(), not the model") from None
    for key in ("state_dict", "model"):  # Lightning's and many training scripts' wrappers
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a state dict: save model.state_dict()")
    prefix = "module."  # saved from nn.DataParallel
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def load_weights(
    path: str | Path, architecture: str, *, num_classes: Optional[int] = None, sha256: Optional[str] = None
) -> tuple[nn.Module, str]:
    """(model in eval mode, the file's sha256): the state dict at ``path`` loaded into a
    fresh ``architecture`` (a registered name, ``torchvision:NAME`` or ``timm:NAME``) with
    ``num_classes`` outputs. A state dict of the bare torchvision or timm network loads as
    well as one of the normalised model. Checked against its manifest (``<stem>.json``)
    when there is one, else against ``sha256`` (or a prefix of it) or a ``-<hex>`` suffix
    of the file name when given."""
    weights, manifest = checkpoint_paths(path)
    if Path(path).suffix in ("", ".pt", ".json") and manifest.is_file():
        model, fields = load_checkpoint(path, expect={"model": architecture})
        _check_hash(weights, fields["sha256"], sha256, "the sha256 given")
        return model, fields["sha256"]
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found")
    actual = sha256_file(path)
    match = HASH_IN_NAME.search(path.name)
    _check_hash(path, actual, sha256 or (match.group(1) if match else None), "the sha256 given" if sha256 else "its file name")
    model = registry.get(architecture).build(num_classes=num_classes)
    state = _state_dict(path)
    bare = isinstance(model, NormalizedClassifier) and not any(k.startswith(("net.", "normalize.")) for k in state)
    try:
        (model.net if bare else model).load_state_dict(state)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise CheckpointError(f"{path} does not fit {architecture!r} with {num_classes} classes: {detail[:300]}") from None
    return model.eval(), actual


def resolve_model(
    name: str,
    *,
    checkpoint: Optional[str | Path] = None,
    num_classes: Optional[int] = None,
    sha256: Optional[str] = None,
) -> ResolvedModel:
    """What ``--models NAME [--checkpoint PATH]`` asks for: ``checkpoint`` loaded into the
    architecture ``name`` (:func:`load_weights`), or for ``torchvision:``/``timm:`` names
    without one, their pretrained weights from the local cache."""
    if checkpoint is not None:
        module, digest = load_weights(checkpoint, name, num_classes=num_classes, sha256=sha256)
        return ResolvedModel(name, module, Path(checkpoint), digest)
    scheme, _, architecture = name.partition(":")
    pretrained = {"torchvision": _pretrained_torchvision, "timm": _pretrained_timm}.get(scheme)
    if pretrained is not None and architecture:
        return pretrained(architecture, num_classes)
    registry.get(name)  # an unknown name lists the valid ones
    raise CheckpointError(f"model {name!r} needs trained weights: give the checkpoint of one")


def _scheme(library: str, build: Any, architecture: str) -> ModelSpec:
    """The spec of ``library:architecture``, refused at once if the library lacks it."""
    if library == "torchvision":
        _check_torchvision_name(architecture)
    else:
        _timm(architecture)
    return ModelSpec(
        name=f"{library}:{architecture}",
        fn=functools.partial(build, architecture),
        description=f"{library}'s {architecture} behind its input normalisation",
    )


registry.add_resolver(
    "torchvision:", lambda name: _scheme("torchvision", torchvision_classifier, name.partition(":")[2]), "torchvision:NAME"
)
registry.add_resolver("timm:", lambda name: _scheme("timm", timm_classifier, name.partition(":")[2]), "timm:NAME")
