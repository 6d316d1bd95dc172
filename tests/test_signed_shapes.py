import torch

from signed_saliency import datasets
from signed_saliency.datasets import signed_shapes


def _load(split="test", n=300, **options):
    return datasets.get("signed-shapes").load(split, n=n, **options)


def test_registered_with_ten_signed_classes():
    spec = datasets.get("signed-shapes")
    assert spec.num_classes == 10 and spec.has_ground_truth and spec.evaluation_split == "test"
    assert spec.class_names[:2] == ("bright-circle", "dark-circle")
    assert len(set(spec.class_names)) == 10


def test_deterministic_and_independent_of_n():
    first, again = _load(), _load()
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert torch.equal(first.ground_truth.mask, again.ground_truth.mask)
    shorter = _load(n=37)
    assert torch.equal(shorter.images, first.images[:37]) and torch.equal(shorter.labels, first.labels[:37])
    assert not torch.equal(_load("train").images, first.images)
    assert not torch.equal(_load(seed=1).images, first.images)


def test_shapes_and_types():
    images = _load(n=20, image_size=48)
    assert images.images.dtype == torch.uint8 and images.images.shape == (20, 3, 48, 48)
    assert images.ground_truth.mask.shape == (20, 48, 48) and images.ground_truth.mask.dtype == torch.bool
    assert images.ground_truth.polarity.dtype == torch.long
    assert len(datasets.get("signed-shapes").load("train")) == 5000


def test_mask_is_where_the_image_leaves_the_background():
    images = _load()
    x, truth = images.floats(), images.ground_truth
    # The background stays within 0.5 +- (TEXTURE + GRAIN) = 0.08 and the object at least
    # MIN_CONTRAST = 0.2 beyond the background it covers, so 0.1 separates them.
    departs = (x - signed_shapes.BACKGROUND).abs() > 0.1
    assert torch.equal(departs.all(dim=1), truth.mask) and torch.equal(departs.any(dim=1), truth.mask)
    assert (truth.mask.flatten(1).sum(dim=1) >= 10).all()


def test_polarity_is_the_object_brightness_and_the_class():
    images = _load()
    grey, truth = images.floats().mean(dim=1), images.ground_truth
    inside = (grey * truth.mask).flatten(1).sum(1) / truth.mask.flatten(1).sum(1)
    outside = (grey * ~truth.mask).flatten(1).sum(1) / (~truth.mask).flatten(1).sum(1)
    assert torch.equal((inside - outside).sign().long(), truth.polarity)
    names = [images.class_names[label] for label in images.labels]
    assert [1 if name.startswith("bright") else -1 for name in names] == truth.polarity.tolist()
    assert set(images.labels.tolist()) == set(range(10))
