"""``.npz`` files (a user's dataset, e.g. an upload): arrays ``images``, ``labels`` and optionally
``class_names``, loaded with ``allow_pickle=False`` after each array's ``.npy`` header has been
checked against the limits of :mod:`geometry.data.limits` (read at call time)."""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from ..errors import InvalidInputError
from . import limits
from .archive import _ZIP_READ_ERRORS, _open_zip
from .common import Dataset, _check_limit, _check_split, _first_line, _gib, _labels_tensor, _not_found, _uint8_to_float

__all__ = ["load_npz"]


def _npz_pixels_per_image(shape: tuple[int, ...]) -> int:
    """H·W of one image for the layouts :func:`load_npz` accepts (0 when the shape is none of them)."""
    if len(shape) == 3:
        return shape[1] * shape[2]
    if len(shape) == 4 and shape[-1] in (1, 3):
        return shape[1] * shape[2]
    if len(shape) == 4 and shape[1] in (1, 3):
        return shape[2] * shape[3]
    return 0


def _check_npz_headers(fh: BinaryIO, source: str) -> None:
    """Check the ``.npy`` header of each array :func:`load_npz` reads, before ``np.load`` allocates.

    The declared shape and dtype are read from the zip member (``np.lib.format.read_magic`` and
    ``read_array_header_1_0`` / ``_2_0``); object dtypes, arrays declaring more data than the member
    holds, and sizes over :data:`MAX_DECODED_BYTES` / :data:`MAX_IMAGES` / :data:`MAX_IMAGE_PIXELS`
    / :data:`MAX_CLASSES` are refused with InvalidInputError.
    """
    fmt = np.lib.format
    with _open_zip(fh, source, ".npz (a zip of .npy arrays)") as zf:
        members = {info.filename: info for info in zf.infolist()}
        for key in ("images", "labels", "class_names"):
            info = members.get(key) or members.get(f"{key}.npy")  # np.load's NpzFile looks them up so
            if info is None:
                continue
            try:
                with zf.open(info) as f:
                    version = fmt.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = fmt.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = fmt.read_array_header_2_0(f)
                    else:
                        raise ValueError(
                            f".npy format version {version[0]}.{version[1]} is not supported (use 1.0 / 2.0)"
                        )
                    header = f.tell()
            except (*_ZIP_READ_ERRORS, SyntaxError) as e:
                raise InvalidInputError(f"could not read array {key!r} of {source}: {_first_line(e)}") from e
            shape = tuple(int(s) for s in shape)
            declared = f"array {key!r} of {source} declares shape {shape} dtype {dtype}"
            if dtype.hasobject:
                raise InvalidInputError(
                    f"{declared}: Python objects (pickles) are not allowed; save plain numeric or string arrays"
                )
            count = math.prod(shape)
            nbytes = max(count * dtype.itemsize, count * 4 if key == "images" else 0)  # images become float32
            if nbytes > limits.MAX_DECODED_BYTES:
                raise InvalidInputError(
                    f"{declared}: it would take {nbytes:,} bytes ({_gib(nbytes)}) in memory, over the limit of "
                    f"{limits.MAX_DECODED_BYTES:,} bytes ({_gib(limits.MAX_DECODED_BYTES)}, MAX_DECODED_BYTES)"
                )
            n = shape[0] if shape else 1
            if key in ("images", "labels") and n > limits.MAX_IMAGES:
                raise InvalidInputError(
                    f"{declared}: {n:,} images, over the limit of {limits.MAX_IMAGES:,} (MAX_IMAGES)"
                )
            if key == "images" and _npz_pixels_per_image(shape) > limits.MAX_IMAGE_PIXELS:
                raise InvalidInputError(
                    f"{declared}: {_npz_pixels_per_image(shape):,} pixels per image, over the limit of "
                    f"{limits.MAX_IMAGE_PIXELS:,} (MAX_IMAGE_PIXELS)"
                )
            if key == "class_names" and count > limits.MAX_CLASSES:
                raise InvalidInputError(
                    f"{declared}: {count:,} names, over the limit of {limits.MAX_CLASSES:,} classes (MAX_CLASSES)"
                )
            if count * dtype.itemsize > info.file_size - header:
                raise InvalidInputError(
                    f"{declared} ({count * dtype.itemsize:,} bytes of data) but holds only "
                    f"{max(info.file_size - header, 0):,}: the file is truncated or damaged"
                )


def load_npz(path: str | os.PathLike | BinaryIO, *, split: str = "train", limit: int | None = None) -> Dataset:
    """Load a user's dataset from an ``.npz`` file (e.g. an upload).

    Parameters
    ----------
    path : path-like or binary file object
        The ``.npz`` with arrays ``images`` and ``labels`` and optionally ``class_names`` (str).
        ``images``: (N, H, W) grayscale, (N, H, W, C) or (N, C, H, W) with C = 1 or 3.
        uint8 / integer values 0..255 are divided by 255; floats must already be in [0, 1].
        ``labels``: (N,) non-negative integers below :data:`MAX_CLASSES`. Loaded with
        ``allow_pickle=False``, after each array's ``.npy`` header has been checked against the
        limits (:data:`MAX_DECODED_BYTES` for the array, as float32 for ``images``;
        :data:`MAX_IMAGES`; :data:`MAX_IMAGE_PIXELS`; :data:`MAX_CLASSES` names).
    split : {"train", "test"}
        Only labels the result.
    limit : int, optional
        Keep only the first ``limit`` images (the limits apply to the whole file).

    Returns
    -------
    Dataset
        ``name="npz"``; images (N, C, H, W) float32 in [0, 1]; labels (N,) int64; class names
        from ``class_names`` or ``"0" … "L-1"``.

    Raises
    ------
    DatasetNotFoundError
        ``path`` does not exist.
    InvalidInputError
        Not an ``.npz``, missing arrays, wrong shapes / dtypes, object (pickled) arrays, an array
        declaring more data than it holds, a limit exceeded (the message names it and what was
        declared), NaN / inf, values out of range.
    """
    split = _check_split(split)
    limit = _check_limit(limit)
    if isinstance(path, (str, os.PathLike)):
        p = Path(path).expanduser()
        if not p.is_file():
            raise _not_found(
                f"npz file {p}", [str(p)], ["pass the path of an existing .npz with arrays images and labels"]
            )
        where: Any = p
        source = str(p)
    else:
        where = path
        source = str(getattr(path, "name", "uploaded .npz"))
    if isinstance(where, Path):
        try:
            with open(where, "rb") as fh:
                _check_npz_headers(fh, source)
        except OSError as e:
            raise InvalidInputError(f"could not read {source}: {_first_line(e)}") from e
    else:
        try:
            start = where.tell()
        except (AttributeError, OSError, ValueError) as e:
            raise InvalidInputError(f"could not read {source}: not a seekable binary file ({_first_line(e)})") from e
        try:
            _check_npz_headers(where, source)
        finally:
            where.seek(start)
    try:
        with np.load(where, allow_pickle=False) as z:
            files = set(z.files)
            missing = {"images", "labels"} - files
            if missing:
                raise InvalidInputError(
                    f"{source} must hold arrays 'images' and 'labels'; missing {', '.join(sorted(missing))} "
                    f"(found: {', '.join(sorted(files)) or 'none'})"
                )
            images = z["images"]
            labels = z["labels"]
            names = z["class_names"] if "class_names" in files else None
    except InvalidInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise InvalidInputError(
            f"could not read {source} as .npz (no pickled objects allowed): {_first_line(e)}"
        ) from e
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    elif not (images.ndim == 4 and images.shape[1] in (1, 3)):
        raise InvalidInputError(
            f"images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3, got shape {images.shape}"
        )
    n = images.shape[0]
    if labels.ndim != 1 or labels.shape[0] != n or not (np.issubdtype(labels.dtype, np.integer) or n == 0):
        raise InvalidInputError(f"labels must be ({n},) integers, got shape {labels.shape} dtype {labels.dtype}")
    if n and labels.min() < 0:
        raise InvalidInputError(f"labels must be non-negative, got min {int(labels.min())}")
    if n and labels.max() >= limits.MAX_CLASSES:  # the class count is max + 1: refuse before building names
        raise InvalidInputError(
            f"labels of {source} go up to {int(labels.max()):,}, but at most {limits.MAX_CLASSES:,} classes are "
            f"supported (labels 0 … {limits.MAX_CLASSES - 1:,}, MAX_CLASSES); labels must be class indices 0 … K-1"
        )
    num_classes = int(labels.max()) + 1 if n else 0
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        if images.dtype == np.bool_:
            x = torch.from_numpy(np.ascontiguousarray(images)).to(torch.float32)
        else:
            if images.size and (images.min() < 0 or images.max() > 255):
                raise InvalidInputError(
                    f"integer images must be in 0..255, got {int(images.min())}..{int(images.max())}"
                )
            x = _uint8_to_float(np.ascontiguousarray(images, dtype=np.uint8), channels_last=False)
    elif np.issubdtype(images.dtype, np.floating):
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        if not bool(torch.isfinite(x).all()):
            raise InvalidInputError("images contain NaN or inf")
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise InvalidInputError(
                f"float images must be in [0, 1], got {float(x.min()):g}..{float(x.max()):g} (divide by 255?)"
            )
    else:
        raise InvalidInputError(f"images must be integer or float, got dtype {images.dtype}")
    if names is not None:
        class_names = tuple(str(c) for c in np.asarray(names).reshape(-1))
        if len(class_names) < num_classes:
            raise InvalidInputError(f"class_names has {len(class_names)} names but labels go up to {num_classes - 1}")
    else:
        class_names = tuple(str(i) for i in range(num_classes))
    return Dataset(
        images=x.contiguous(),
        labels=_labels_tensor(labels),
        class_names=class_names,
        name="npz",
        split=split,
        source=f"npz file {source}",
    )
