"""``cifar10``: 32×32 RGB, official class order (airplane … truck, which is also alphabetical).

Either torchvision's python batches (``cifar-10-batches-py/``, lossless) or the JPEG image-folder
export of the project's offline data (``cifar10/test/<class>/*.jpg``, ``cifar10/train.zip`` or
``cifar10/train/<class>/*.jpg``; lossy). JPEGs are decoded once, straight out of the zip, and the
decoded pixels are cached in ``cache_dir("datasets")``. Order: official (the batches, or the
export's ``<split>_labels.csv``), else sorted by class then file name.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import cache_dir
from ..errors import InvalidInputError
from .common import (
    DATA_ENV,
    Dataset,
    _Collection,
    _decode_cached,
    _first_line,
    _images_dataset,
    _is_image_name,
    _labels_tensor,
    _list_class_folders,
    _listing_fingerprint,
    _not_found,
    _search_roots,
    _stat_fingerprint,
    _uint8_to_float,
)

__all__ = ["CIFAR10_CLASSES"]

#: CIFAR-10 class names in the official label order (0 … 9); also alphabetical.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_CIFAR_BATCH_FILES = ("batches.meta", "test_batch", *(f"data_batch_{i}" for i in range(1, 6)))


def _cifar_batches_folder(r: Path) -> Path | None:
    """``r/cifar-10-batches-py`` (or ``r`` itself when so named) holding all seven python batch files."""
    for folder in (r / "cifar-10-batches-py", r):
        if folder.name == "cifar-10-batches-py" and all((folder / f).is_file() for f in _CIFAR_BATCH_FILES):
            return folder
    return None


def _cifar_from_batches(folder: Path, split: str, limit: int | None) -> Dataset:
    from torchvision.datasets import CIFAR10

    try:  # torchvision checks the md5 of every batch file
        ds = CIFAR10(str(folder.parent), train=(split == "train"), download=False)
    except (RuntimeError, OSError, ValueError, EOFError) as e:
        raise InvalidInputError(f"CIFAR-10 python batches in {folder} are damaged: {_first_line(e)}") from e
    data = ds.data.transpose(0, 3, 1, 2)  # back to the stored (N, 3, 32, 32): contiguous, no copy
    if limit is not None:
        data = data[:limit]
    return Dataset(
        images=_uint8_to_float(np.ascontiguousarray(data), channels_last=False),
        labels=_labels_tensor(np.asarray(ds.targets, dtype=np.int64)[: data.shape[0]]),
        class_names=CIFAR10_CLASSES,
        name="cifar10",
        split=split,
        source=f"CIFAR-10 python batches (lossless, official order) in {folder}",
    )


def _official_order(csv_path: Path, keys: Sequence[str]) -> list[int] | None:
    """Permutation of ``keys`` into the official CIFAR-10 order listed by ``csv_path`` (column
    ``jpg_path``), or None when that file is missing, unreadable or does not match ``keys`` exactly."""
    if not csv_path.is_file():
        return None
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            paths = [row["jpg_path"] for row in csv.DictReader(fh)]
    except (OSError, KeyError, csv.Error, UnicodeDecodeError):
        return None
    pos = {k: i for i, k in enumerate(keys)}
    if len(paths) != len(pos) or len(set(paths)) != len(paths) or any(p not in pos for p in paths):
        return None
    return [pos[p] for p in paths]


def _zip_split_members(zf: zipfile.ZipFile, split: str) -> dict[str, str]:
    """``{"<split>/<class>/<file>": member name}`` for every image ``…/<split>/<class>/<file>``."""
    members: dict[str, str] = {}
    for info in zf.infolist():
        parts = info.filename.split("/")
        if not info.is_dir() and len(parts) >= 3 and parts[-3] == split and _is_image_name(parts[-1]):
            members[f"{split}/{parts[-2]}/{parts[-1]}"] = info.filename
    return members


def _cifar_from_jpeg_export(folder: Path, split: str, limit: int | None) -> Dataset | None:
    """CIFAR-10 from ``folder/<split>/<class>/*.jpg`` or ``folder/<split>.zip``; None if absent.

    Order: the official one when ``folder/<split>_labels.csv`` (column ``jpg_path``) lists exactly
    the files found, else sorted by class then file name.
    """
    split_dir, split_zip = folder / split, folder / f"{split}.zip"
    csv_path = folder / f"{split}_labels.csv"
    csv_fingerprint = _stat_fingerprint(csv_path) if csv_path.is_file() else None

    def finish(
        classes: Sequence[str],
        entries: list[tuple[str, int]],
        src: Path,
        open_bytes: Callable[[str], Any],
        describe: Callable[[str], str],
    ) -> _Collection:
        if tuple(classes) != CIFAR10_CLASSES:
            raise InvalidInputError(
                f"{src} does not hold the 10 CIFAR-10 classes {', '.join(CIFAR10_CLASSES)}; its classes are "
                f"{', '.join(classes) or 'none'}. Load other image folders with load_dataset('imagefolder', root=...)"
            )
        keys = [k for k, _ in entries]
        labels = [lab for _, lab in entries]
        order = _official_order(csv_path, keys)
        if order is None:
            return _Collection(keys, labels, open_bytes, describe, "sorted by class then file name")
        return _Collection(
            [keys[i] for i in order],
            [labels[i] for i in order],
            open_bytes,
            describe,
            f"official order from {csv_path.name}",
        )

    if split_dir.is_dir():
        src = split_dir
        classes, rel_entries = _list_class_folders(split_dir)
        if not rel_entries:
            return None
        entries = [(f"{split}/{rel}", k) for rel, k in rel_entries]
        fingerprint = [_listing_fingerprint(folder, [k for k, _ in entries]), csv_fingerprint]

        def prepare(stack: contextlib.ExitStack) -> _Collection:
            return finish(classes, entries, split_dir, lambda k: folder / k, lambda k: str(folder / k))
    elif split_zip.is_file():
        src = split_zip
        fingerprint = [_stat_fingerprint(split_zip), csv_fingerprint]

        def prepare(stack: contextlib.ExitStack) -> _Collection:
            try:
                zf = stack.enter_context(zipfile.ZipFile(split_zip))
            except (OSError, zipfile.BadZipFile) as e:
                raise InvalidInputError(f"could not open {split_zip}: {_first_line(e)}") from e
            members = _zip_split_members(zf, split)
            if not members:
                raise InvalidInputError(f"{split_zip} holds no images named {split}/<class>/<file>")
            classes = sorted({k.split("/")[1] for k in members})
            index = {c: i for i, c in enumerate(classes)}
            entries = [(k, index[k.split("/")[1]]) for k in sorted(members, key=lambda k: tuple(k.split("/")))]
            return finish(
                classes,
                entries,
                split_zip,
                lambda k: io.BytesIO(zf.read(members[k])),
                lambda k: f"{split_zip}:{members[k]}",
            )
    else:
        return None
    images, labels, note = _decode_cached("cifar10-jpeg", split, fingerprint, prepare, force_rgb=True, limit=limit)
    if images.shape[1:] != (32, 32, 3):
        raise InvalidInputError(f"CIFAR-10 images in {src} must be 32×32 RGB, got {images.shape[2]}×{images.shape[1]}")
    return _images_dataset(
        images, labels, CIFAR10_CLASSES, "cifar10", split, f"CIFAR-10 JPEG export (lossy) {src}, {note}"
    )


def _load_cifar10(root: str | os.PathLike | None, split: str, limit: int | None) -> Dataset:
    roots, may_download = _search_roots(root)
    looked: list[str] = []

    def search(r: Path) -> Dataset | None:
        batches = _cifar_batches_folder(r)
        looked.append(f"{r / 'cifar-10-batches-py'} (python batches)")
        if batches is not None:
            return _cifar_from_batches(batches, split, limit)
        for folder in (r / "cifar10", r):
            looked.append(f"{folder}/{split}/<class>/*.jpg, {folder}/{split}.zip")
            found = _cifar_from_jpeg_export(folder, split, limit)
            if found is not None:
                return found
        return None

    for r in roots:
        found = search(r)
        if found is not None:
            return found
    problems: list[str] = []
    dest = cache_dir("datasets") if may_download else None
    if dest is not None:
        try:
            from torchvision.datasets import CIFAR10

            CIFAR10(str(dest), train=(split == "train"), download=True)
        except Exception as e:  # no network, disk full …
            problems.append(f"torchvision download into {dest} failed: {_first_line(e)}")
        else:
            batches = _cifar_batches_folder(dest)
            if batches is not None:
                return _cifar_from_batches(batches, split, limit)
    how = [
        f"pass root= or set {DATA_ENV} to a folder containing cifar-10-batches-py/ (torchvision's python "
        f"version) or cifar10/ with {split}/<class>/*.jpg or {split}.zip holding {split}/<class>/*.jpg "
        "(image-folder export); root may also be that cifar10/ folder itself",
    ]
    if dest is None:
        how.append(
            "or leave root unset on a machine with internet access: torchvision then downloads CIFAR-10 (≈ 170 MB) into the cache"
        )
    else:
        how.append(
            f"or run once on a machine with internet access: torchvision downloads CIFAR-10 (≈ 170 MB) into {dest}"
        )
    raise _not_found(f"CIFAR-10 ({split} split)", looked, how, problems)
