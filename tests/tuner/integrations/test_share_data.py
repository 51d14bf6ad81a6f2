"""tuner.integrations.cluster.share_data: the splits go to Ray's object store only if they fit it."""

from __future__ import annotations

import numpy as np
import pytest

from trainable.data.datasets import ArrayDataset, Splits
from trainable.data.mapped import CacheRef, MappedImages
from trainable.errors import DataError
from tuner.integrations.cluster import share_data


def _splits(n_train: int, size: int) -> Splits:
    # broadcast_to: an array of the full shape (and nbytes) that takes no memory
    images = np.broadcast_to(np.zeros((1, 1, 1, 3), np.uint8), (n_train, size, size, 3))
    train = ArrayDataset(images, np.zeros(n_train, np.int64))
    small = ArrayDataset(np.zeros((2, size, size, 3), np.uint8), np.zeros(2, np.int64))
    return Splits(train, small, small, ("a",), "test")


def test_splits_that_fit_are_shared(ray_session: None) -> None:
    import ray

    splits = _splits(10, 8)
    back = ray.get(share_data(splits))
    assert back.train.images.shape == (10, 8, 8, 3) and back.classes == ("a",)


def test_splits_bigger_than_the_object_store_are_refused_before_the_put(
    ray_session: None,
) -> None:
    import ray

    store = ray.cluster_resources()["object_store_memory"]
    n = int(store // (224 * 224 * 3)) + 1  # just over the whole store at 224x224
    with pytest.raises(DataError, match=r"does not fit 80% of Ray's object store"):
        share_data(_splits(n, 224))


def test_an_image_folders_splits_travel_as_row_numbers(ray_session: None) -> None:
    """Splits in the decode cache pass whatever their decoded size: only rows are put."""
    import ray

    store = ray.cluster_resources()["object_store_memory"]
    n = int(store // (224 * 224 * 3)) + 1  # decoded, more than the whole store
    ref = CacheRef("/data/folder", 224, "0123456789abcdef01234567", "train_x")
    images = MappedImages(ref, np.arange(n))
    small = ArrayDataset(np.zeros((2, 224, 224, 3), np.uint8), np.zeros(2, np.int64))
    splits = Splits(ArrayDataset(images, np.zeros(n, np.int64)), small, small, ("a",), "test")
    back = ray.get(share_data(splits)).train.images
    assert isinstance(back, MappedImages) and back.ref == ref and len(back) == n
    assert back.nbytes > store  # never opened: the cache is mapped on first use
