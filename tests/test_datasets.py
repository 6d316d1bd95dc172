import pytest
import torch

from benchmarks import data
from signed_saliency import datasets
from signed_saliency.datasets import _folder, cifar10, imagenette
from signed_saliency.errors import DatasetNotFoundError


def test_sample_split_loads_with_no_root():
    sample = datasets.get("cifar10").load("sample")
    assert sample.images.shape == (256, 3, 32, 32) and sample.images.dtype == torch.uint8
    assert sample.labels.bincount().tolist() == [26] * 6 + [25] * 4
    assert sample.class_names == cifar10.CLASS_NAMES
    assert sample.indices.unique().numel() == 256 and int(sample.indices.max()) < 10_000


def test_sample_is_small_enough_to_ship():
    assert cifar10.source_path("sample", None).stat().st_size < 400 * 1024


@pytest.mark.parametrize("name, split", [("cifar10", "test"), ("imagenette", "val")])
def test_missing_root_names_where_and_how(tmp_path, name, split):
    with pytest.raises(DatasetNotFoundError) as error:
        datasets.get(name).load(split, root=tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere") in message and "SIGNED_SALIENCY_DATA" in message and "--download" in message


@pytest.mark.parametrize("name, split, fetch, label", [
    ("cifar10", "test", "CIFAR10.download", "CIFAR-10"), ("imagenette", "val", "Imagenette._download", "Imagenette"),
])  # fmt: skip
def test_failed_download_is_a_clear_error(tmp_path, monkeypatch, name, split, fetch, label):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    owner, method = fetch.split(".")
    monkeypatch.setattr(getattr(torchvision.datasets, owner), method, offline)
    with pytest.raises(DatasetNotFoundError, match=f"could not download {label}"):
        data.load_images(name, split, root=tmp_path, download=True)


def test_only_the_benchmarks_download(tmp_path, monkeypatch):
    """The library's loaders only read: they have no download option and never call
    torchvision's download; ``benchmarks.data`` does, and only for what is missing."""
    import torchvision.datasets

    fetched = []
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", lambda self: fetched.append(self.train))
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(TypeError, match="download"):
        datasets.get("cifar10").load("test", root=tmp_path, download=True)
    with pytest.raises(DatasetNotFoundError):
        datasets.get("cifar10").load("test", root=tmp_path)
    data.download_split("cifar10", "sample", tmp_path)  # shipped
    (tmp_path / cifar10.JPEG_FOLDER / "train").mkdir(parents=True)
    data.download_split("cifar10", "train", tmp_path)  # read from the JPEG copy
    data.download_split("signed-shapes", "train", tmp_path)  # generated
    assert fetched == []
    with pytest.raises(RuntimeError):  # the stand-in download fetched nothing to read
        data.load_images("cifar10", "test", root=tmp_path, download=True)
    assert fetched == [False]


def test_cifar10_folder(data_root):
    images = datasets.get("cifar10").load("test", root=data_root, per_class=3)
    assert images.images.shape == (30, 3, 32, 32) and images.images.dtype == torch.uint8
    assert images.labels.tolist() == [label for label in range(10) for _ in range(3)]
    assert images.indices[:4].tolist() == [0, 1, 2, 1000]  # positions in the whole split
    assert images.class_names[0] == "airplane" and images.class_names[-1] == "truck"


def test_sample_matches_the_test_split(data_root):
    sample = datasets.get("cifar10").load("sample")
    listing = _folder.list_folder(data_root / cifar10.JPEG_FOLDER / "test")
    some = sample.indices[:8]
    decoded, _ = _folder.decode_files([listing.paths[i] for i in some], 32)
    assert torch.equal(decoded, sample.images[:8])
    assert torch.equal(listing.labels[some], sample.labels[:8])


def test_imagenette_folder_resizes_and_converts_greyscale(data_root):
    images = datasets.get("imagenette").load("val", root=data_root, image_size=64, per_class=2)
    assert images.images.shape == (20, 3, 64, 64)
    assert images.labels.tolist() == [label for label in range(10) for _ in range(2)]
    assert images.class_names == imagenette.CLASS_NAMES and images.class_names[0] == "tench"
    listing = _folder.list_folder(data_root / imagenette.COPY_FOLDER / "val")
    assert listing.class_folders == imagenette.WNIDS


def test_imagenette_greyscale_is_rgb_and_can_be_dropped(data_root):
    listing = _folder.list_folder(data_root / imagenette.COPY_FOLDER / "val")
    images, greyscale = _folder.decode_files(listing.paths[125:140], 224)
    assert greyscale.tolist() == [i == 132 for i in range(125, 140)], "val image 132 (a tench) is greyscale"
    grey = images[greyscale]
    assert images.shape[1] == 3 and torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    kept = datasets.get("imagenette").load("val", root=data_root, image_size=32, per_class=140, drop_greyscale=True)
    assert 132 not in kept.indices.tolist() and 131 in kept.indices.tolist() and len(kept) < 1400


def test_cache_reuses_decoded_images(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path))
    first = data.load_images("cifar10", "sample")
    files = list((tmp_path / "images").iterdir())
    assert len(files) == 1

    def decode_again(*args, **kwargs):
        raise AssertionError("decoded again: the cache was not read")

    # the second load must come from the cache file, not from the dataset's loader
    monkeypatch.setattr(type(datasets.get("cifar10")), "load", decode_again)
    again = data.load_images("cifar10", "sample")
    assert list((tmp_path / "images").iterdir()) == files
    assert torch.equal(first.images, again.images) and torch.equal(first.indices, again.indices)
    assert again.class_names == first.class_names


def test_cache_key_follows_options_and_source(tmp_path, monkeypatch, data_root):
    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path))
    data.load_images("cifar10", "test", root=data_root, per_class=1)
    data.load_images("cifar10", "test", root=data_root, per_class=2)
    assert len(list((tmp_path / "images").iterdir())) == 2
    assert data.load_images("cifar10", "test", root=data_root, per_class=2).images.shape[0] == 20
    fingerprint = data.source_fingerprint(data_root / cifar10.JPEG_FOLDER / "test")
    assert fingerprint["files"] == 10_000
