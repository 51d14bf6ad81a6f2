"""Statistics of a training split, computed once per process for the same images.

Every run on the same training images computes the same channel mean and std, and the same
whitening-patch covariance: the trials a search runs one after another in a reused process
(Ray Tune's reused actors), the final training's seeds, a probe and the training after it.
Recomputing them cost ~0.6 s a trial on `quick.yaml`'s 8,000 images, against ~3 s epochs.

`images_key` names a split by its content: the cache file and rows of a memory-mapped split
(a decode cache never changes under its key: a changed folder gets a new one), or a hash of
an in-memory array's bytes (a few ms per 10 MB; an array's address says nothing, since Ray
hands each trial a new view, and memory is reused). `memoised` keeps the last few values.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np

from trainable.data.loaders import channel_stats
from trainable.data.mapped import MappedImages

T = TypeVar("T")

_KEPT = 16  # values: a few splits' statistics, each a few numbers or a small matrix
_values: OrderedDict[Hashable, Any] = OrderedDict()


def images_key(images: np.ndarray | MappedImages) -> tuple[Any, ...]:
    """A key equal for two splits exactly when they hold the same images in the same order."""
    if isinstance(images, MappedImages):
        rows = hashlib.blake2b(np.ascontiguousarray(images.rows).data, digest_size=16)
        return ("mapped", images.ref, rows.hexdigest())
    data = np.ascontiguousarray(images)
    digest = hashlib.blake2b(data.data, digest_size=16).hexdigest()
    return ("array", data.shape, str(data.dtype), digest)


def memoised(key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, or the value it returned for `key` earlier in this process."""
    if key in _values:
        _values.move_to_end(key)
        return _values[key]
    value = compute()
    _values[key] = value
    while len(_values) > _KEPT:
        _values.popitem(last=False)
    return value


def channel_stats_of(
    images: np.ndarray | MappedImages, key: Hashable
) -> tuple[list[float], list[float]]:
    """`loaders.channel_stats(images)`, once per `key` (`images_key(images)`)."""
    mean, std = memoised(
        ("channel_stats", key), lambda: tuple(tuple(v) for v in channel_stats(images))
    )
    return list(mean), list(std)  # fresh lists: a caller may keep and change its own


def forget() -> None:
    """Drop every memoised value (tests; a process that wants its memory back)."""
    _values.clear()
