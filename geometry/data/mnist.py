"""``mnist``: the 28×28 MNIST idx files in torchvision's layout ``<root>/MNIST/raw/``.

``*.gz`` or uncompressed, parsed directly (nothing is written, so a read-only root works). On a
machine with internet access and no local copy, torchvision downloads them into the cache.
"""

from __future__ import annotations

import gzip
import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import cache_dir
from ..errors import InvalidInputError
from .common import DATA_ENV, Dataset, _first_line, _labels_tensor, _not_found, _search_roots, _uint8_to_float

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read_exact(f: io.BufferedIOBase, n: int, path: Path) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise InvalidInputError(f"{path} is truncated: expected {n} more bytes of data, got {got}")
        got += k
    return buf


def _read_idx(path: Path, *, ndim: int, limit: int | None) -> np.ndarray:
    """Parse an idx file (``.gz`` or plain) of unsigned bytes into a uint8 array.

    Only the first ``limit`` items are read when ``limit`` is given; otherwise the whole file is
    read and, for ``.gz``, its CRC checked.
    """
    opener: Callable[..., Any] = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
                raise InvalidInputError(
                    f"{path} is not an MNIST idx file of {ndim}-d unsigned bytes (header {magic.hex() or 'empty'})"
                )
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            n = dims[0] if limit is None else min(dims[0], limit)
            item = int(np.prod(dims[1:], dtype=np.int64)) if ndim > 1 else 1
            buf = _read_exact(f, n * item, path)
            if limit is None and f.read(1):
                raise InvalidInputError(f"{path} has trailing data after {dims[0]} items")
    except (OSError, EOFError, zlib.error, struct.error) as e:
        raise InvalidInputError(f"could not read MNIST file {path}: {_first_line(e)}") from e
    return np.frombuffer(buf, dtype=np.uint8).reshape((n, *dims[1:]))


def _find_file(folder: Path, stem: str) -> Path | None:
    for cand in (folder / stem, folder / f"{stem}.gz"):
        if cand.is_file():
            return cand
    return None


def _mnist_from(folder: Path, split: str, limit: int | None) -> Dataset | None:
    image_stem, label_stem = _MNIST_FILES[split]
    image_path, label_path = _find_file(folder, image_stem), _find_file(folder, label_stem)
    if image_path is None or label_path is None:
        return None
    images = _read_idx(image_path, ndim=3, limit=limit)
    labels = _read_idx(label_path, ndim=1, limit=limit)
    if images.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"MNIST {split} files disagree: {image_path} has {images.shape[0]} images, {label_path} has {labels.shape[0]} labels"
        )
    if labels.size and labels.max() > 9:
        raise InvalidInputError(f"{label_path} holds labels above 9 (max {int(labels.max())}): not MNIST")
    return Dataset(
        images=_uint8_to_float(images, channels_last=False),
        labels=_labels_tensor(labels),
        class_names=tuple(str(i) for i in range(10)),
        name="mnist",
        split=split,
        source=f"MNIST idx files {image_path.name}, {label_path.name} in {folder}",
    )


def _mnist_folders(root: Path) -> list[Path]:
    # root contains MNIST/ (torchvision layout), or root is MNIST/ itself, or root is MNIST/raw/
    return [root / "MNIST" / "raw", root / "raw", root]


def _load_mnist(root: str | os.PathLike | None, split: str, limit: int | None) -> Dataset:
    roots, may_download = _search_roots(root)
    looked: list[str] = []
    for r in roots:
        for folder in _mnist_folders(r):
            looked.append(str(folder))
            found = _mnist_from(folder, split, limit)
            if found is not None:
                return found
    problems: list[str] = []
    dest = cache_dir("datasets") if may_download else None
    if dest is not None:
        try:
            from torchvision.datasets import MNIST

            MNIST(str(dest), train=(split == "train"), download=True)
        except Exception as e:  # no network, mirror down, disk full …
            problems.append(f"torchvision download into {dest} failed: {_first_line(e)}")
        else:
            found = _mnist_from(dest / "MNIST" / "raw", split, limit)
            if found is not None:
                return found
    stems = " and ".join(f"{s}[.gz]" for s in _MNIST_FILES[split])
    how = [
        f"pass root= or set {DATA_ENV} to a folder containing MNIST/raw/ with {stems} "
        "(torchvision's layout; .gz or uncompressed; a read-only folder is fine)",
    ]
    if dest is None:
        how.append(
            "or leave root unset on a machine with internet access: torchvision then downloads MNIST (≈ 11 MB) into the cache"
        )
    else:
        how.append(f"or run once on a machine with internet access: torchvision downloads MNIST (≈ 11 MB) into {dest}")
    raise _not_found(f"MNIST ({split} split; looked for {stems})", looked, how, problems)
