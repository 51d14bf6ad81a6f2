"""Images that stay on disk: some rows of a folder's decode cache, read memory-mapped.

A split of an image folder holds a `MappedImages` instead of a copy of its images. Indexing
reads only the rows asked for (a subset never touches the others); `np.asarray` copies the
selection out, which the device loader does when the split fits the device. Every process on a
machine maps the same file, so its trials share one copy in the page cache.

Pickled (into Ray's object store, to a trial on another node, to DataLoader workers) it is the
folder's identity and the row numbers, a few bytes per image; it is reopened where it lands.
A node without the cache decodes the folder on first use (once per node: `decode_folder` holds
a lock), and refuses if its copy of the folder differs from the one the rows refer to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainable.errors import DataError


@dataclass(frozen=True)
class CacheRef:
    """Which decoded array: the folder, its decode size and content key, and the file."""

    root: str
    image_size: int
    key: str
    name: str  # train_x or test_x


class MappedImages:
    """uint8 (N, H, W, 3) images: rows `rows` of the cache file `ref` names."""

    def __init__(self, ref: CacheRef, rows: np.ndarray, array: np.ndarray | None = None) -> None:
        self.ref, self.rows = ref, np.asarray(rows, dtype=np.int64)
        self._array = array

    @property
    def array(self) -> np.ndarray:
        """The whole cache file, memory-mapped (opened on first use, after unpickling)."""
        if self._array is None:
            self._array = _open(self.ref)
        return self._array

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), self.ref.image_size, self.ref.image_size, 3)

    dtype = np.dtype(np.uint8)
    ndim = 4

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> np.ndarray:
        """Rows (an int, a slice or an index array), then optionally pixels: `x[:, 8, 8, 0]`."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        rows = self.rows[first]
        out = self.array[rows]
        if not rest:
            return out
        return out[rest] if np.ndim(rows) == 0 else out[(slice(None), *rest)]

    def take(self, index: np.ndarray, axis: int = 0) -> MappedImages:
        """A selection of these rows, still on disk (`ndarray.take`'s signature, axis 0 only)."""
        if axis != 0:
            raise ValueError("MappedImages.take selects rows only (axis=0)")
        return MappedImages(self.ref, self.rows[index], self._array)

    def gather(self, index: np.ndarray, out: np.ndarray) -> None:
        """Rows `index` of this selection into `out`, read straight from the mapped file."""
        np.take(self.array, self.rows[index], axis=0, out=out)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.array[self.rows]
        return out if dtype is None else out.astype(dtype)

    def __reduce__(self) -> tuple[Any, ...]:
        return (MappedImages, (self.ref, self.rows))

    def __repr__(self) -> str:
        return f"MappedImages({self.ref.name} of {self.ref.root}, {len(self.rows):,} rows)"


def concat(a: np.ndarray | MappedImages, b: np.ndarray | MappedImages) -> Any:
    """`np.concatenate([a, b])`, kept on disk when both are rows of the same cache file."""
    if isinstance(a, MappedImages) and isinstance(b, MappedImages) and a.ref == b.ref:
        return MappedImages(a.ref, np.concatenate([a.rows, b.rows]), a._array)
    return np.concatenate([np.asarray(a), np.asarray(b)])


def gather(images: np.ndarray | MappedImages, index: np.ndarray, out: np.ndarray) -> None:
    """Rows `index` of in-memory or mapped images into the preallocated `out`."""
    if isinstance(images, MappedImages):
        images.gather(index, out)
    else:
        np.take(images, index, axis=0, out=out)


def in_memory_bytes(images: np.ndarray | MappedImages) -> int:
    """What pickling the images copies: all of an array, nothing of a mapped selection."""
    return 0 if isinstance(images, MappedImages) else int(images.nbytes)


def _open(ref: CacheRef) -> np.ndarray:
    from trainable.data.folder import DecodedFolder, decode_folder

    folder = DecodedFolder(Path(ref.root), ref.image_size, ref.key, ())
    if not folder.ready():  # a machine that has not decoded this folder yet
        here = decode_folder(folder.root, ref.image_size)
        if here.key != ref.key:
            raise DataError(
                f"this machine's copy of the image folder {ref.root} differs from the one the "
                f"search decoded (cache key {here.key}, expected {ref.key}); put the folder on "
                "shared storage, copy it with its modification times (rsync -a), or point "
                "HPSEARCH_CACHE at a cache folder every node shares"
            )
    return np.load(folder.path(ref.name), mmap_mode="r")
