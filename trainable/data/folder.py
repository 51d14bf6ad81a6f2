"""An image-folder tree decoded once into a uint8 cache on disk, in bounded memory.

`root/{train,test}/<class>/*` (or a layout `trainable.data.scan` reads) is decoded, resized to `image_size`, into
`<cache>/<key>/{train,test}_{x,y}.npy`, where the key hashes every file's relative path, size
and modification time (the quick check `make` and `rsync` use) plus the size: an edited folder
is decoded again (and its earlier cache removed), an unchanged one never. Decoding writes block
by block through a plain file (about `_DECODE_BLOCK_BYTES` in flight, and none of the file
mapped into the process), under a per-key lock so a node's trials decode a folder once, and
publishes the cache atomically.
`DecodedFolder` owns the cache folder's file names.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainable.data.datasize import decoded_bytes, human, require_disk
from trainable.data.decode import decode
from trainable.data.scan import Samples, scan_folder
from trainable.errors import DataError

_CACHE_VERSION = 2  # 2: 16-bit images scaled, undecodable files skipped
_META = "meta.json"  # written last: a cache folder without it is not (fully) decoded
# A split with more undecodable files than this is refused instead of skipped.
MAX_SKIPPED_FRACTION = 0.05
# Images decoded per step of the cache writer: about this many bytes in flight, whatever the
# set's size, so decoding runs in constant memory.
_DECODE_BLOCK_BYTES = 64 * 1024 * 1024


def cache_root() -> Path:
    """This project's caches; outside the repo and outside (read-only) data folders."""
    return Path(os.environ.get("HPSEARCH_CACHE", Path.home() / ".cache" / "hpsearch"))


def cache_dir() -> Path:
    """Decoded-dataset cache."""
    return cache_root() / "datasets"


@dataclass(frozen=True)
class DecodedFolder:
    """A folder's decode cache: where it is, and what was decoded into it."""

    root: Path
    image_size: int
    key: str
    classes: tuple[str, ...]
    split_note: str = ""  # where the test split came from, when it was carved

    @property
    def directory(self) -> Path:
        return cache_dir() / self.key

    def path(self, name: str) -> Path:
        """`name` is one of train_x, train_y, test_x, test_y."""
        return self.directory / f"{name}.npy"

    def skipped(self) -> dict[str, list[int]]:
        """Rows of each split whose file could not be decoded (in no split)."""
        meta = json.loads((self.directory / _META).read_text())
        return {k: list(v) for k, v in meta.get("skipped", {}).items()}

    def skipped_files(self) -> dict[str, list[str]]:
        meta = json.loads((self.directory / _META).read_text())
        return {k: list(v) for k, v in meta.get("skipped_files", {}).items()}

    def ready(self) -> bool:
        """Decoded and published (`meta.json` is written last, then the folder renamed)."""
        return (self.directory / _META).is_file()

    def provenance(self) -> str:
        text = f"image folder {self.root.resolve()}"
        note = self.root / "PROVENANCE.md"
        if note.is_file():
            lines = note.read_text(errors="replace").splitlines()
            first = next((ln for ln in lines if ln.strip()), "")
            text += f" ({first.lstrip('# ').strip()})"
        text = f"{text}; {self.split_note}" if self.split_note else text
        files = [f for fs in self.skipped_files().values() for f in fs] if self.ready() else []
        if files:
            shown = ", ".join(files[:20]) + (
                f" and {len(files) - 20} more" if len(files) > 20 else ""
            )
            text += f"; {len(files)} undecodable file(s) skipped: {shown}"
        return text


def decode_folder(root: Path, image_size: int) -> DecodedFolder:
    """The folder's cache, decoded first if this machine has none for its current content."""
    scan = scan_folder(root)
    samples, classes = scan.samples, scan.classes
    key = _folder_key(root, samples, image_size)
    folder = DecodedFolder(root, image_size, key, classes, scan.note())
    if not folder.ready():
        count = sum(len(v) for v in samples.values())
        require_disk(count, image_size, cache_dir())
        print(
            f"image folder {root}: {count:,} images, {human(decoded_bytes(count, image_size))} "
            f"at {image_size}x{image_size}; decoding once to {folder.directory}",
            file=sys.stderr,
            flush=True,
        )
        with _locked(folder.directory.with_suffix(".lock")):  # a node's trials decode it once
            if not folder.ready():
                _decode_to_cache(root, samples, classes, image_size, folder.directory)
                _drop_superseded(folder)
    return folder


def _drop_superseded(folder: DecodedFolder) -> None:
    """Remove this machine's earlier caches of the same folder at the same size: the folder
    changed since (or was copied again with new modification times), so no run of its current
    content can use them, and each would hold its whole decoded size on disk for ever. A
    process still reading one keeps its open mapping (the files go when it closes them)."""
    freed, dropped = 0, 0
    root = str(folder.root.resolve())
    for meta_file in cache_dir().glob(f"*/{_META}"):
        old = meta_file.parent
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            continue
        same = meta.get("root") == root and meta.get("image_size") == folder.image_size
        if old == folder.directory or not same:
            continue
        freed += sum(f.stat().st_size for f in old.iterdir() if f.is_file())
        shutil.rmtree(old, ignore_errors=True)
        old.with_suffix(".lock").unlink(missing_ok=True)
        dropped += 1
    if dropped:
        print(
            f"removed {dropped} earlier decode cache(s) of {folder.root} ({human(freed)}): the "
            "folder changed since",
            file=sys.stderr,
            flush=True,
        )


def _folder_key(root: Path, samples: Samples, image_size: int) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION}:{image_size}".encode())
    for split, items in samples.items():
        for path, label in items:
            st = os.stat(path)
            h.update(
                f"{split}|{os.path.relpath(path, root)}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode()
            )
    return h.hexdigest()[:24]


@contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        yield


def _decode_one(args: tuple[str, int]) -> np.ndarray | None:
    return decode(*args)


def _decode_to_cache(
    root: Path,
    samples: Samples,
    classes: tuple[str, ...],
    image_size: int,
    where: Path,
) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=where.parent, prefix=".tmp-"))
    try:
        skipped: dict[str, list[int]] = {}
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for split, items in samples.items():
                if not items:
                    raise DataError(f"no images found in the '{split}' split of the image folder")
                paths = [path for path, _ in items]
                skipped[split] = _decode_split(pool, split, paths, image_size, tmp)
                _check_skipped(root, split, paths, skipped[split])
                np.save(tmp / f"{split}_y.npy", np.array([lbl for _, lbl in items], dtype=np.int64))
        meta = {
            "classes": classes,
            "image_size": image_size,
            "root": str(root.resolve()),
            # Rows whose file could not be decoded (zeros in the cache, in no split).
            "skipped": skipped,
            "skipped_files": {
                split: [os.path.relpath(samples[split][i][0], root) for i in rows]
                for split, rows in skipped.items()
            },
        }
        (tmp / _META).write_text(json.dumps(meta))
        # Atomic publish: a concurrent or interrupted run never sees a half-written cache.
        try:
            tmp.rename(where)
        except OSError:
            if not (where / _META).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_skipped(root: Path, split: str, paths: list[str], skipped: list[int]) -> None:
    """Broken files are skipped and counted; past `MAX_SKIPPED_FRACTION` of a split (or a
    class left empty) the folder is refused in one line: something is wrong with it, not
    with a few files."""
    if not skipped:
        return
    first = os.path.relpath(paths[skipped[0]], root)
    if len(skipped) > MAX_SKIPPED_FRACTION * len(paths):
        raise DataError(
            f"{len(skipped):,} of the {len(paths):,} files in the '{split}' split of {root} "
            f"cannot be decoded as images (e.g. {first}), more than "
            f"{MAX_SKIPPED_FRACTION:.0%}: fix or remove them"
        )
    print(
        f"warning: skipped {len(skipped):,} file(s) of the '{split}' split that cannot be "
        f"decoded as images (e.g. {first}); the list is in the manifest's data provenance",
        file=sys.stderr,
        flush=True,
    )


def _decode_split(
    pool: ProcessPoolExecutor, split: str, paths: list[str], size: int, tmp: Path
) -> list[int]:
    """Decode into a .npy file block by block: only one block is ever in memory. Plain writes,
    not a memory map: a written map's dirty pages count as the process's resident memory
    (9.0 GB for a 10.4 GB cache: BENCHMARKS.md), where written file pages are page cache."""
    shape = (len(paths), size, size, 3)
    block = max(1, _DECODE_BLOCK_BYTES // decoded_bytes(1, size))
    chunk = max(1, block // (4 * (os.cpu_count() or 1)))
    step = max(block, len(paths) // 10)  # progress about every 10%
    shown = 0
    skipped: list[int] = []
    with open(tmp / f"{split}_x.npy", "wb") as fh:
        header = {"descr": "|u1", "fortran_order": False, "shape": shape}
        np.lib.format.write_array_header_1_0(fh, header)
        for start in range(0, len(paths), block):
            jobs = [(path, size) for path in paths[start : start + block]]
            images = np.empty((len(jobs), *shape[1:]), np.uint8)
            for i, image in enumerate(pool.map(_decode_one, jobs, chunksize=chunk)):
                if image is None:  # its row stays zeros and is left out of every split
                    skipped.append(start + i)
                    images[i] = 0
                else:
                    images[i] = image
            fh.write(images.data)
            done = start + len(jobs)
            if done - shown >= step or done == len(paths):
                print(
                    f"decoding {split}: {done:,}/{len(paths):,} images", file=sys.stderr, flush=True
                )
                shown = done
    return skipped
