"""Your own images: folder:PATH reads an ImageFolder tree, labels from its folder names."""

import pytest
import torch
from torchvision.io import write_png

from signed_saliency import datasets, evaluate
from signed_saliency.errors import DatasetNotFoundError, UserError

CLASSES = ("cat", "dog", "fox")


def write_tree(root, per_class=2, size=(20, 12)):
    """PNGs of distinct flat colours: class k, image i is grey level 40 * k + 10 * i."""
    for label, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            level = 40 * label + 10 * i
            write_png(torch.full((3, *size), level, dtype=torch.uint8), str(root / name / f"{i}.png"))
    (root / "cat" / "notes.txt").write_text("not an image")
    return root


def test_a_folder_of_pngs_loads_with_labels_from_its_folder_names(tmp_path):
    root = write_tree(tmp_path / "pets")
    spec = datasets.get(f"folder:{root}")
    assert spec.name == f"folder:{root}" and spec.class_names == CLASSES and spec.num_classes == 3
    images = spec.load(image_size=16)
    assert images.images.shape == (6, 3, 16, 16) and images.images.dtype == torch.uint8
    assert images.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert images.images[:, 0, 8, 8].tolist() == [0, 10, 40, 50, 80, 90]
    assert images.split == "all" and images.dataset == spec.name and images.indices.tolist() == list(range(6))
    assert spec.load().image_size == 224


def test_a_folder_dataset_runs_end_to_end(tmp_path, tiny_cnn):
    images = datasets.get(f"folder:{write_tree(tmp_path / 'pets')}").load(image_size=16)
    scores = evaluate(tiny_cnn, images.floats(), methods=["saliency"], metrics=["deletion"],
                      settings={"deletion": {"steps": 4}})
    assert set(scores["image"]) == set(range(6)) and scores["value"].notna().all()


def test_a_relative_path_is_read_from_the_working_directory(tmp_path, monkeypatch):
    write_tree(tmp_path / "pets")
    monkeypatch.chdir(tmp_path)
    assert len(datasets.get("folder:pets").load(image_size=8)) == 6


def test_folder_mistakes_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="is not a folder"):
        datasets.get(f"folder:{tmp_path / 'missing'}")
    (tmp_path / "flat").mkdir()
    write_png(torch.zeros(3, 4, 4, dtype=torch.uint8), str(tmp_path / "flat" / "a.png"))
    with pytest.raises(UserError, match=r"has no class folders: put each class's images in .*/flat/<class>/"):
        datasets.get(f"folder:{tmp_path / 'flat'}")
    write_tree(tmp_path / "splits" / "train")
    write_tree(tmp_path / "splits" / "val")
    with pytest.raises(UserError, match=r"train has no .* images; it holds folders: is .* a folder of splits\?"):
        datasets.get(f"folder:{tmp_path / 'splits'}").load(image_size=8)
    with pytest.raises(UserError, match=r"valid: cifar10, .*folder:PATH"):
        datasets.get("foldr:pets")


def test_the_runners_image_cache_follows_the_folders_content(tmp_path, monkeypatch):
    from benchmarks.data import load_images

    monkeypatch.setenv("SIGNED_SALIENCY_CACHE", str(tmp_path / "cache"))
    root = write_tree(tmp_path / "pets")
    assert len(load_images(f"folder:{root}", image_size=8)) == 6
    write_png(torch.zeros(3, 5, 5, dtype=torch.uint8), str(root / "dog" / "new.png"))
    assert len(load_images(f"folder:{root}", image_size=8)) == 7
    assert all("/" not in p.name for p in (tmp_path / "cache").rglob("*.pt"))
