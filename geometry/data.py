"""Datasets as tensors in pixel space: images ``(N, C, H, W)`` float32 in [0, 1], labels int64.

Every dataset of the atlas comes back as a :class:`Dataset` in *pixel space* (DESIGN §3): no
mean/std normalisation (that lives inside the :class:`~geometry.classifier.Classifier`), so
distances ‖r(x)‖ are measured on pixel values in [0, 1] and ``d = C·H·W``.

Datasets (:data:`DATASETS`):

``digits``
    scikit-learn's ``load_digits``: 1,797 real 8×8 handwritten digits (UCI optdigits, values
    0..16, divided by 16). It ships inside scikit-learn, so it is always available: the embedded
    default. Split: a fixed permutation (``numpy.random.default_rng(0)``), first 1,397 images =
    ``train``, last 400 = ``test`` (not stratified: 30–51 test images per class).
``mnist``
    The 28×28 MNIST idx files in torchvision's layout ``<root>/MNIST/raw/`` (``*.gz`` or
    uncompressed). They are parsed directly (nothing is written, so a read-only root works). On a
    machine with internet access and no local copy, torchvision downloads them into the cache.
``cifar10``
    32×32 RGB, official class order (airplane … truck, which is also alphabetical). Either
    torchvision's python batches (``cifar-10-batches-py/``, lossless) or the JPEG image-folder
    export of the project's offline data (``cifar10/test/<class>/*.jpg``, ``cifar10/train.zip``
    or ``cifar10/train/<class>/*.jpg``; lossy). JPEGs are decoded once, straight out of the zip,
    and the decoded pixels are cached in ``cache_dir("datasets")``. Order: official (the batches,
    or the export's ``<split>_labels.csv``), else sorted by class then file name.
``imagefolder``
    Any folder of class sub-folders (``root/<class>/*.png`` or ``root/<split>/<class>/*.png``).

Roots: the ``root`` argument, else ``$BOUNDARY_ATLAS_DATA``, else the project's offline data
(``<repo>/../shared/data``) and the download cache. See :func:`load_dataset`.

Uploads (:func:`load_zip_upload`, :func:`load_npz`) are hostile input: a 39 KB zip of blank
6000×6000 PNGs decodes to ~4 GiB, a 654-byte ``.npz`` can hold the label 300,000,000, an ``.npz``
header can declare 93 GiB. The limits :data:`MAX_IMAGE_PIXELS`, :data:`MAX_IMAGES`,
:data:`MAX_DECODED_BYTES`, :data:`MAX_CLASSES`, :data:`MAX_ZIP_ENTRIES` and
:data:`MAX_ZIP_UNPACKED_BYTES` are checked from headers (image headers, ``.npy`` headers, zip
records) *before* anything is decoded or allocated; the error names the limit and what was found.
They apply to image folders (local or uploaded) and ``.npz`` files, not to MNIST / CIFAR-10.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import math
import operator
import os
import shutil
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
import torch

from .cache import atomic_write, cache_dir, cache_key, discard_damaged, load_tensors, save_tensors
from .errors import AtlasError, DatasetNotFoundError, InvalidInputError, UnknownNameError

__all__ = [
    "Dataset",
    "DATASETS",
    "SPLITS",
    "DATA_ENV",
    "CIFAR10_CLASSES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "MAX_IMAGES",
    "MAX_DECODED_BYTES",
    "MAX_CLASSES",
    "MAX_ZIP_ENTRIES",
    "MAX_ZIP_UNPACKED_BYTES",
    "load_dataset",
    "load_npz",
    "load_zip_upload",
    "data_root",
    "shared_data_root",
]

#: Environment variable naming the folder that holds ``MNIST/``, ``cifar10/`` … (the data root).
DATA_ENV = "BOUNDARY_ATLAS_DATA"
#: Valid dataset names for :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "imagefolder")
#: Valid splits.
SPLITS: tuple[str, ...] = ("train", "test")
#: CIFAR-10 class names in the official label order (0 … 9); also alphabetical.
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
#: File name endings read as images by the image-folder readers (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".webp",
)

# Limits for image folders (local or zip uploads) and .npz files; read at call time, so a caller (or a
# test) may change them. Each is checked from headers before anything is decoded or allocated.
#: Most pixels (width × height) one image may have: 4096 × 4096 = 16,777,216. Larger images are
#: refused from their header (PIL reads only the header); PIL's own DecompressionBombError (raised
#: above ~179 Mpx at open) is reported with this limit too.
MAX_IMAGE_PIXELS: int = 4096 * 4096
#: Most images (N) one dataset split may hold.
MAX_IMAGES: int = 100_000
#: Most bytes the decoded images may take as float32, N·C·H·W·4 (C = 3 as soon as one image is
#: in colour): 1 GiB. For an ``.npz`` also the bytes of each stored array.
MAX_DECODED_BYTES: int = 1 << 30
#: Most classes: labels must be < MAX_CLASSES (the class count is ``max(label) + 1``), and an
#: ``.npz``'s ``class_names`` may hold at most this many names.
MAX_CLASSES: int = 10_000
#: Most entries (files and folders) in an uploaded zip or ``.npz``; read from the zip's end record
#: before the listing is parsed.
MAX_ZIP_ENTRIES: int = 250_000
#: Most bytes the image files of an uploaded zip may declare uncompressed (all together): 1 GiB.
MAX_ZIP_UNPACKED_BYTES: int = 1 << 30

_DIGITS_SEED = 0
_DIGITS_N_TEST = 400
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CACHE_FORMAT = 2  # bump when the decoded-cache content changes (2: verified safetensors files)
_GRAY_MODES = ("1", "L", "LA")


# ---------------------------------------------------------------------------------------- result
@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled image dataset in pixel space.

    Attributes
    ----------
    images : torch.Tensor
        (N, C, H, W) float32, pixel values in [0, 1] (no mean/std normalisation).
    labels : torch.Tensor
        (N,) int64, class indices in ``0 … len(class_names) - 1``.
    class_names : tuple of str
        Name of each class index.
    name : str
        ``"digits"``, ``"mnist"``, ``"cifar10"``, ``"imagefolder"`` (or ``"npz"`` from
        :func:`load_npz`).
    split : str
        ``"train"`` or ``"test"``.
    source : str
        Human-readable description of where the data was read from (files, format, order).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str
    split: str
    source: str

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = (int(s) for s in self.images.shape[1:])
        return (c, h, w)

    @property
    def num_classes(self) -> int:
        """Number of classes, ``len(class_names)``."""
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"input_shape={self.input_shape}, classes={len(self.class_names)}, source={self.source!r})"
        )


# ----------------------------------------------------------------------------------------- roots
def data_root(root: str | os.PathLike | None = None) -> Path | None:
    """The data root: ``root`` if given, else ``$BOUNDARY_ATLAS_DATA``, else ``None``.

    Parameters
    ----------
    root : path-like or None
        Explicit data folder. ``None`` or an empty string means "not given".

    Returns
    -------
    Path or None
        ``~`` expanded; existence is not checked.
    """
    if root is not None and str(root).strip():
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV, "").strip()
    return Path(env).expanduser() if env else None


def _repo_shared_data() -> Path:
    # repo = parent of the geometry package; the offline data lies next to it in ../shared/data
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def shared_data_root() -> Path | None:
    """The project's offline data folder, if it can be found.

    ``$BOUNDARY_ATLAS_DATA`` when set (and an existing folder), else ``<repo>/../shared/data``
    when it exists (``<repo>`` = the folder that contains the ``geometry`` package). A set but
    missing ``$BOUNDARY_ATLAS_DATA`` gives ``None``: an explicit setting is never silently
    replaced by the default.

    Returns
    -------
    Path or None
    """
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        return path if path.is_dir() else None
    default = _repo_shared_data()
    return default if default.is_dir() else None


def _search_roots(root: str | os.PathLike | None) -> tuple[list[Path], bool]:
    """Folders to look in, and whether a torchvision download into the cache is allowed.

    An explicit ``root`` argument is the only place looked at (and nothing is downloaded).
    Otherwise: ``$BOUNDARY_ATLAS_DATA`` (or the project's offline data), then the download cache.
    """
    if root is not None and str(root).strip():
        return [Path(root).expanduser()], False
    roots: list[Path] = []
    env_root = data_root()
    if env_root is not None:
        roots.append(env_root)
    else:
        default = _repo_shared_data()
        if default.is_dir():
            roots.append(default)
    roots.append(cache_dir("datasets"))
    return roots, True


# ------------------------------------------------------------------------------------ validation
def _check_name(name: Any) -> str:
    key = name.strip().lower().replace("-", "").replace("_", "") if isinstance(name, str) else None
    if key not in DATASETS:
        raise UnknownNameError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def _check_split(split: Any) -> str:
    key = split.strip().lower() if isinstance(split, str) else None
    if key not in SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    return key


def _check_limit(limit: Any) -> int | None:
    if limit is None:
        return None
    try:
        if isinstance(limit, bool):
            raise TypeError
        value = operator.index(limit)
    except TypeError:
        raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}") from None
    if value < 1:
        raise InvalidInputError(f"limit must be a positive integer or None, got {limit!r}")
    return value


def _not_found(what: str, looked: Sequence[str], how: Sequence[str], problems: Sequence[str] = ()) -> DatasetNotFoundError:
    lines = [f"{what} not found. Looked in:"]
    lines += [f"  - {x}" for x in looked] or ["  - (nowhere: no data root given)"]
    if problems:
        lines.append("Problems met:")
        lines += [f"  - {p}" for p in problems]
    lines.append("To provide it:")
    lines += [f"  - {h}" for h in how]
    return DatasetNotFoundError("\n".join(lines))


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------- conversions
def _uint8_to_float(arr: np.ndarray, *, channels_last: bool) -> torch.Tensor:
    """uint8 (N, H, W), (N, H, W, C) or (N, C, H, W) → float32 (N, C, H, W) / 255, one copy."""
    t = torch.from_numpy(arr)
    if t.ndim == 3:
        t = t.unsqueeze(1)
    elif channels_last:
        t = t.permute(0, 3, 1, 2)
    out = torch.empty(tuple(t.shape), dtype=torch.float32)
    out.copy_(t)
    return out.div_(255.0)


def _labels_tensor(labels: np.ndarray | Sequence[int]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(labels, dtype=np.int64)).clone()


# ---------------------------------------------------------------------------------------- digits
def _load_digits(split: str, limit: int | None) -> Dataset:
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), integers 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    n = images.shape[0]
    perm = np.random.default_rng(_DIGITS_SEED).permutation(n)
    idx = perm[: n - _DIGITS_N_TEST] if split == "train" else perm[n - _DIGITS_N_TEST:]
    if limit is not None:
        idx = idx[:limit]
    x = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).unsqueeze(1)
    return Dataset(
        images=x.contiguous(),
        labels=torch.from_numpy(labels[idx].copy()),
        class_names=tuple(str(i) for i in range(10)),
        name="digits",
        split=split,
        source=(
            f"scikit-learn {sklearn.__version__} load_digits (UCI optdigits, 8×8, values 0..16 / 16); "
            f"{split} = {'first' if split == 'train' else 'last'} "
            f"{n - _DIGITS_N_TEST if split == 'train' else _DIGITS_N_TEST} of a seed-{_DIGITS_SEED} permutation"
        ),
    )


# ----------------------------------------------------------------------------------------- MNIST
def _read_exact(f: BinaryIO, n: int, path: Path) -> bytearray:
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
        how.append("or leave root unset on a machine with internet access: torchvision then downloads MNIST (≈ 11 MB) into the cache")
    else:
        how.append(f"or run once on a machine with internet access: torchvision downloads MNIST (≈ 11 MB) into {dest}")
    raise _not_found(f"MNIST ({split} split; looked for {stems})", looked, how, problems)


# ------------------------------------------------------------------------------- image decoding
def _is_image_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(".") and base.lower().endswith(IMAGE_EXTENSIONS)


def _list_class_folders(folder: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """Class names (sorted non-hidden sub-folders) and ``(relative path, class index)`` of every
    image below them, sorted by class then relative path (``/``-separated)."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    entries: list[tuple[str, int]] = []
    for k, cls in enumerate(classes):
        base = folder / cls
        rels = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            sub = Path(dirpath).relative_to(base).as_posix()
            for fn in filenames:
                if _is_image_name(fn):
                    rels.append(fn if sub == "." else f"{sub}/{fn}")
        entries.extend((f"{cls}/{rel}", k) for rel in sorted(rels))
    return classes, entries


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def _check_image_budget(
    keys: Sequence[str], open_bytes: Callable[[str], Any], describe: Callable[[str], str], *, force_rgb: bool, what: str
) -> None:
    """Refuse, from the image headers alone, a collection that is over the limits.

    Each image is opened lazily (PIL reads only the header: ``im.size``, ``im.mode``); no pixel is
    decoded. Raises InvalidInputError naming the limit and what was found when there are more than
    :data:`MAX_IMAGES` images, one image has more than :data:`MAX_IMAGE_PIXELS` pixels (or trips
    PIL's DecompressionBombError), or the decoded float32 total N·C·H·W·4 exceeds
    :data:`MAX_DECODED_BYTES` (C = 3 as soon as one image is in colour, as :func:`_decode_images`
    does). ``what`` names the dataset in messages.
    """
    from PIL import Image

    n = len(keys)
    if n > MAX_IMAGES:
        raise InvalidInputError(
            f"{what} holds {n:,} images, over the limit of {MAX_IMAGES:,} images per dataset (MAX_IMAGES)"
        )
    pixels, channels = 0, 1
    for i, key in enumerate(keys):
        try:
            with Image.open(open_bytes(key)) as im:  # header only
                (w, h), mode = im.size, im.mode
        except Image.DecompressionBombError as e:
            raise InvalidInputError(
                f"image {describe(key)} is over the limit of {MAX_IMAGE_PIXELS:,} pixels per image "
                f"(MAX_IMAGE_PIXELS): {_first_line(e)}"
            ) from e
        except (OSError, SyntaxError, ValueError) as e:
            raise InvalidInputError(f"could not read image {describe(key)}: {_first_line(e)}") from e
        if w * h > MAX_IMAGE_PIXELS:
            raise InvalidInputError(
                f"image {describe(key)} is {w}×{h} = {w * h:,} pixels, over the limit of {MAX_IMAGE_PIXELS:,} "
                f"pixels per image (MAX_IMAGE_PIXELS); resize the images first"
            )
        if force_rgb or mode not in _GRAY_MODES:
            channels = 3
        pixels += w * h
        total = pixels * channels * 4
        if total > MAX_DECODED_BYTES:
            raise InvalidInputError(
                f"{what} is too large to decode: its first {i + 1:,} of {n:,} images alone take {total:,} bytes "
                f"({_gib(total)}) as float32 pixels (N·C·H·W·4 with C = {channels}; {describe(key)} is {w}×{h}), "
                f"over the limit of {MAX_DECODED_BYTES:,} bytes ({_gib(MAX_DECODED_BYTES)}, MAX_DECODED_BYTES); "
                "use fewer or smaller images"
            )


def _decode_images(
    keys: Sequence[str], open_bytes: Callable[[str], Any], describe: Callable[[str], str], *, force_rgb: bool
) -> np.ndarray:
    """Decode images into one uint8 array: (N, H, W) if all grayscale (and not ``force_rgb``),
    else (N, H, W, 3). Raises InvalidInputError naming the first unreadable / mis-sized file."""
    from PIL import Image

    n = len(keys)
    gray: np.ndarray | None = None
    rgb: np.ndarray | None = None
    size: tuple[int, int] | None = None
    for i, key in enumerate(keys):
        try:
            with Image.open(open_bytes(key)) as im:
                if im.mode in _GRAY_MODES and not force_rgb:
                    a = np.asarray(im.convert("L"))
                else:
                    a = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            raise InvalidInputError(f"could not read image {describe(key)}: {_first_line(e)}") from e
        hw = (int(a.shape[0]), int(a.shape[1]))
        if size is None:
            size = hw
        elif hw != size:
            raise InvalidInputError(
                f"all images must have the same size: {describe(keys[0])} is {size[1]}×{size[0]} pixels "
                f"but {describe(key)} is {hw[1]}×{hw[0]} (width×height); resize them first"
            )
        if a.ndim == 2 and rgb is None:
            if gray is None:
                gray = np.empty((n, *hw), dtype=np.uint8)
            gray[i] = a
            continue
        if rgb is None:
            rgb = np.empty((n, *hw, 3), dtype=np.uint8)
            if gray is not None:
                rgb[:i] = gray[:i, :, :, None]
                gray = None
        rgb[i] = a[:, :, None] if a.ndim == 2 else a
    if rgb is not None:
        return rgb
    if gray is not None:
        return gray
    return np.empty((0, 0, 0), dtype=np.uint8)


@dataclass(frozen=True)
class _Collection:
    """An ordered list of images to decode: ``keys`` with their ``labels``, how to open one key
    (a path or a binary file object for PIL), how to name it in messages, and a note on the order."""

    keys: Sequence[str]
    labels: Sequence[int]
    open_bytes: Callable[[str], Any]
    describe: Callable[[str], str]
    note: str


def _load_cached(path: Path) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(images uint8 (N, H, W, C), labels int64 (N,), note) from the verified cache file, or None.

    The file is ``path`` with the suffix ``.safetensors`` (:func:`geometry.cache.save_tensors`); a
    damaged one (truncated, failing its SHA-256, no metadata, other format) is deleted with a
    :class:`geometry.cache.DamagedCacheWarning` and None is returned, so the caller decodes again.
    """
    path = Path(path).with_suffix(".safetensors")
    got = load_tensors(path, version=_CACHE_FORMAT)
    if got is None:
        return None
    tensors, meta = got
    if set(tensors) != {"images", "labels"} or "note" not in meta or tensors["images"].dtype != torch.uint8:
        discard_damaged(path, "not a decoded-dataset cache file")
        return None
    return tensors["images"].numpy(), tensors["labels"].numpy(), meta["note"]


def _save_cached(path: Path, images: np.ndarray, labels: np.ndarray, note: str) -> None:
    """Write the decoded dataset to ``path`` (suffix ``.safetensors``) with a SHA-256; see :func:`_load_cached`."""
    tensors = {"images": torch.from_numpy(np.ascontiguousarray(images)),
               "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))}
    try:
        save_tensors(Path(path).with_suffix(".safetensors"), tensors, {"note": str(note)}, version=_CACHE_FORMAT)
    except OSError:
        pass  # an unwritable cache only costs time


def _decode_cached(
    kind: str,
    split: str,
    fingerprint: Any,
    prepare: Callable[[contextlib.ExitStack], _Collection],
    *,
    force_rgb: bool,
    limit: int | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Decoded uint8 images, int64 labels and order note, through the disk cache.

    ``fingerprint`` must identify the content (source path, sizes, mtimes); the full decode is
    stored in ``cache_dir("datasets")`` under its hash. ``prepare`` (listing files, opening a zip)
    only runs on a cache miss. With a ``limit`` below the collection size and no cache, only the
    first ``limit`` images are decoded (and nothing is cached).
    """
    key = cache_key({"format": _CACHE_FORMAT, "kind": kind, "split": split, "rgb": force_rgb, "source": fingerprint})
    path = cache_dir("datasets") / f"{kind}-{split}-{key}.npz"
    cached = _load_cached(path)
    if cached is not None:
        images, labels, note = cached
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        return images, labels.astype(np.int64, copy=False), note
    with contextlib.ExitStack() as stack:
        col = prepare(stack)
        labels = np.asarray(col.labels, dtype=np.int64)
        if limit is not None and limit < len(col.keys):
            images = _decode_images(col.keys[:limit], col.open_bytes, col.describe, force_rgb=force_rgb)
            return images, labels[:limit], col.note
        images = _decode_images(col.keys, col.open_bytes, col.describe, force_rgb=force_rgb)
    _save_cached(path, images, labels, col.note)
    return images, labels, col.note


def _images_dataset(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], name: str, split: str, source: str) -> Dataset:
    return Dataset(
        images=_uint8_to_float(images, channels_last=True),
        labels=_labels_tensor(labels),
        class_names=tuple(class_names),
        name=name,
        split=split,
        source=source,
    )


def _stat_fingerprint(path: Path) -> list:
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _listing_fingerprint(base: Path, keys: Sequence[str]) -> list:
    """Folder path plus (relative path, size, mtime) of every file: any change gives a new key."""
    out: list = [str(base.resolve())]
    for k in keys:
        st = (base / k).stat()
        out.append([k, st.st_size, st.st_mtime_ns])
    return out


# -------------------------------------------------------------------------------------- CIFAR-10
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

    def finish(classes: Sequence[str], entries: list[tuple[str, int]], src: Path, open_bytes, describe) -> _Collection:
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
        return _Collection([keys[i] for i in order], [labels[i] for i in order], open_bytes, describe,
                           f"official order from {csv_path.name}")

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
            return finish(classes, entries, split_zip, lambda k: io.BytesIO(zf.read(members[k])),
                          lambda k: f"{split_zip}:{members[k]}")
    else:
        return None
    images, labels, note = _decode_cached("cifar10-jpeg", split, fingerprint, prepare, force_rgb=True, limit=limit)
    if images.shape[1:] != (32, 32, 3):
        raise InvalidInputError(f"CIFAR-10 images in {src} must be 32×32 RGB, got {images.shape[2]}×{images.shape[1]}")
    return _images_dataset(images, labels, CIFAR10_CLASSES, "cifar10", split, f"CIFAR-10 JPEG export (lossy) {src}, {note}")


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
        how.append("or leave root unset on a machine with internet access: torchvision then downloads CIFAR-10 (≈ 170 MB) into the cache")
    else:
        how.append(f"or run once on a machine with internet access: torchvision downloads CIFAR-10 (≈ 170 MB) into {dest}")
    raise _not_found(f"CIFAR-10 ({split} split)", looked, how, problems)


# ----------------------------------------------------------------------------------- imagefolder
def _load_imagefolder(root: str | os.PathLike | None, split: str, limit: int | None) -> Dataset:
    layout = "root/<class>/*.png (or root/train/<class>/…, root/test/<class>/…), one sub-folder per class"
    if root is None or not str(root).strip():
        raise _not_found(
            "imagefolder dataset", [], [f"pass root=<folder> laid out as {layout}"]
        )
    base = Path(root).expanduser()
    if not base.is_dir():
        raise _not_found(f"imagefolder dataset ({split} split)", [str(base)], [f"pass root=<an existing folder> laid out as {layout}"])
    folder, classes, entries = _imagefolder_listing(base, split)
    keys = [k for k, _ in entries]
    labels = [lab for _, lab in entries]
    note = "sorted by class then file name"

    def prepare(stack: contextlib.ExitStack) -> _Collection:
        _check_image_budget(keys if limit is None else keys[:limit], lambda k: folder / k, lambda k: str(folder / k),
                            force_rgb=False, what=f"image folder {folder}")
        return _Collection(keys, labels, lambda k: folder / k, lambda k: str(folder / k), note)

    images, labels_arr, _ = _decode_cached(
        "imagefolder", split, _listing_fingerprint(folder, keys), prepare, force_rgb=False, limit=limit,
    )
    mode = "grayscale" if images.ndim == 3 else "RGB"
    return _images_dataset(images, labels_arr, classes, "imagefolder", split, f"image folder {folder} ({mode}, {note})")


def _imagefolder_listing(base: Path, split: str) -> tuple[Path, list[str], list[tuple[str, int]]]:
    """The folder holding ``split`` (``base/<split>``, else ``base`` when it has no split folders),
    its class names and ``(relative path, class index)`` entries; DatasetNotFoundError if no image."""
    layout = "root/<class>/*.png (or root/train/<class>/…, root/test/<class>/…), one sub-folder per class"
    folder = base / split
    if not folder.is_dir():
        present = [s for s in SPLITS if (base / s).is_dir()]
        if present:
            raise _not_found(
                f"imagefolder {split} split",
                [str(folder)],
                [f"{base} has split folder(s) {', '.join(present)}/ but no {split}/: add {split}/<class>/… "
                 f"or load split={present[0]!r}"],
            )
        folder = base
    classes, entries = _list_class_folders(folder)
    if not entries:
        found = f"sub-folders {', '.join(classes)} hold no images" if classes else "it has no class sub-folders"
        raise _not_found(
            f"imagefolder dataset ({split} split)",
            [f"{folder} ({found}; image endings: {' '.join(IMAGE_EXTENSIONS)})"],
            [f"lay the folder out as {layout}"],
        )
    return folder, classes, entries


# ------------------------------------------------------------------------------------ zip uploads
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, zlib.error, struct.error, ValueError,
    RuntimeError, NotImplementedError,  # RuntimeError: encrypted entry; NotImplementedError: unknown compression
)


def _zip_declared_entries(fh: BinaryIO) -> int | None:
    """Entry count declared by the zip's end-of-central-directory record (zip64 too), read from the
    file's tail before :class:`zipfile.ZipFile` builds one object per entry; None if not found."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - (22 + 0xFFFF)))
    tail = fh.read()
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    (count,) = struct.unpack("<H", tail[pos + 10: pos + 12])
    if count == 0xFFFF and pos >= 20 and tail[pos - 20: pos - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[pos - 12: pos - 4])
        fh.seek(offset)
        record = fh.read(40)
        if len(record) == 40 and record[:4] == b"PK\x06\x06":
            (count,) = struct.unpack("<Q", record[32:40])
    return count


def _open_zip(fh: BinaryIO, what: str, kind: str) -> zipfile.ZipFile:
    """``zipfile.ZipFile(fh)`` with at most :data:`MAX_ZIP_ENTRIES` entries (checked before and
    after parsing the listing); InvalidInputError naming ``what`` for anything unreadable."""
    try:
        declared = _zip_declared_entries(fh)
        if declared is None or declared <= MAX_ZIP_ENTRIES:
            fh.seek(0)
            zf = zipfile.ZipFile(fh)
            declared = len(zf.infolist())
            if declared <= MAX_ZIP_ENTRIES:
                return zf
            zf.close()
    except _ZIP_READ_ERRORS as e:
        raise InvalidInputError(f"could not read {what} as {kind}: {_first_line(e)}") from e
    raise InvalidInputError(
        f"{what} has {declared:,} entries, over the limit of {MAX_ZIP_ENTRIES:,} entries per zip (MAX_ZIP_ENTRIES)"
    )


def _zip_plan(zf: zipfile.ZipFile, what: str) -> list[tuple[zipfile.ZipInfo, tuple[str, ...], bool]]:
    """Check every entry name and the declared sizes before anything is written.

    Returns ``(info, path parts, is_image)`` of each file to extract (folders, hidden files and
    ``__MACOSX/`` are skipped). Refuses absolute paths, drive letters, ``..``, duplicate names, a
    file that another entry uses as a folder, and image files declaring more than
    :data:`MAX_ZIP_UNPACKED_BYTES` uncompressed in all.
    """
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...], bool]] = []
    names: dict[tuple[str, ...], str] = {}
    total = 0
    for info in zf.infolist():
        name = info.filename
        loose = PurePosixPath(name.replace("\\", "/"))
        if loose.is_absolute() or ".." in loose.parts or PureWindowsPath(name).drive:
            raise InvalidInputError(
                f"{what}: refusing zip entry {name!r}: paths must stay inside the archive "
                "(no absolute paths, drive letters or '..')"
            )
        p = PurePosixPath(name)
        if info.is_dir() or not p.parts or p.name.startswith(".") or "__MACOSX" in p.parts:
            continue
        if p.parts in names:
            raise InvalidInputError(f"{what}: the zip holds two entries named {name!r}; rename or remove one")
        names[p.parts] = name
        image = _is_image_name(p.name)
        if image:
            total += info.file_size
        plan.append((info, p.parts, image))
    for parts, name in names.items():
        for k in range(1, len(parts)):
            if parts[:k] in names:
                raise InvalidInputError(
                    f"{what}: zip entry {names[parts[:k]]!r} is a file but {name!r} uses it as a folder; "
                    "rename one of them"
                )
    if total > MAX_ZIP_UNPACKED_BYTES:
        raise InvalidInputError(
            f"{what}: its images declare {total:,} bytes ({_gib(total)}) uncompressed, over the limit of "
            f"{MAX_ZIP_UNPACKED_BYTES:,} bytes ({_gib(MAX_ZIP_UNPACKED_BYTES)}, MAX_ZIP_UNPACKED_BYTES)"
        )
    return plan


def _extract_zip(zf: zipfile.ZipFile, plan: Sequence[tuple[zipfile.ZipInfo, tuple[str, ...], bool]], base: Path,
                 what: str) -> None:
    """Write the planned entries below ``base``: images streamed (CRC-checked, at most their declared
    size), other files as empty placeholders (only their names matter to the folder layout)."""
    for info, parts, image in plan:
        dest = base.joinpath(*parts)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if image:
                with zf.open(info) as src, open(dest, "xb") as out:  # "x": never overwrite
                    shutil.copyfileobj(src, out, 1 << 20)
            else:
                open(dest, "xb").close()
        except _ZIP_READ_ERRORS as e:
            raise InvalidInputError(f"could not unpack {what}: zip entry {info.filename!r}: {_first_line(e)}") from e


def _read_extracted(base: Path, split: str, what: str) -> Dataset:
    """Decode the image folder extracted at ``base`` (no disk cache: its paths are temporary)."""
    root = base
    dirs = [e for e in root.iterdir() if e.is_dir()]
    # a single top-level folder holding the class folders (or train/test) is unwrapped
    while len(dirs) == 1 and not any(f.is_file() for f in dirs[0].iterdir()) and dirs[0].name not in SPLITS:
        root = dirs[0]
        dirs = [e for e in root.iterdir() if e.is_dir()]
    folder, classes, entries = _imagefolder_listing(root, split)
    keys = [k for k, _ in entries]
    labels = np.asarray([lab for _, lab in entries], dtype=np.int64)
    _check_image_budget(keys, lambda k: folder / k, lambda k: str(folder / k), force_rgb=False, what=what)
    images = _decode_images(keys, lambda k: folder / k, lambda k: str(folder / k), force_rgb=False)
    mode = "grayscale" if images.ndim == 3 else "RGB"
    return _images_dataset(images, labels, classes, "imagefolder", split,
                           f"zip upload {what} ({mode}, sorted by class then file name)")


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
                        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported (use 1.0 / 2.0)")
                    header = f.tell()
            except _ZIP_READ_ERRORS + (SyntaxError,) as e:
                raise InvalidInputError(f"could not read array {key!r} of {source}: {_first_line(e)}") from e
            shape = tuple(int(s) for s in shape)
            declared = f"array {key!r} of {source} declares shape {shape} dtype {dtype}"
            if dtype.hasobject:
                raise InvalidInputError(
                    f"{declared}: Python objects (pickles) are not allowed; save plain numeric or string arrays"
                )
            count = math.prod(shape)
            nbytes = max(count * dtype.itemsize, count * 4 if key == "images" else 0)  # images become float32
            if nbytes > MAX_DECODED_BYTES:
                raise InvalidInputError(
                    f"{declared}: it would take {nbytes:,} bytes ({_gib(nbytes)}) in memory, over the limit of "
                    f"{MAX_DECODED_BYTES:,} bytes ({_gib(MAX_DECODED_BYTES)}, MAX_DECODED_BYTES)"
                )
            n = shape[0] if shape else 1
            if key in ("images", "labels") and n > MAX_IMAGES:
                raise InvalidInputError(f"{declared}: {n:,} images, over the limit of {MAX_IMAGES:,} (MAX_IMAGES)")
            if key == "images" and _npz_pixels_per_image(shape) > MAX_IMAGE_PIXELS:
                raise InvalidInputError(
                    f"{declared}: {_npz_pixels_per_image(shape):,} pixels per image, over the limit of "
                    f"{MAX_IMAGE_PIXELS:,} (MAX_IMAGE_PIXELS)"
                )
            if key == "class_names" and count > MAX_CLASSES:
                raise InvalidInputError(f"{declared}: {count:,} names, over the limit of {MAX_CLASSES:,} classes (MAX_CLASSES)")
            if count * dtype.itemsize > info.file_size - header:
                raise InvalidInputError(
                    f"{declared} ({count * dtype.itemsize:,} bytes of data) but holds only "
                    f"{max(info.file_size - header, 0):,}: the file is truncated or damaged"
                )


# ------------------------------------------------------------------------------------ public API
def load_dataset(
    name: str, *, root: str | os.PathLike | None = None, split: str = "train", limit: int | None = None
) -> Dataset:
    """Load a dataset as pixel-space tensors.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"digits"``, ``"mnist"``, ``"cifar10"``, ``"imagefolder"``
        (case-insensitive; ``"cifar-10"`` is accepted).
    root : path-like, optional
        Where the files are. For ``mnist`` / ``cifar10``: the folder containing ``MNIST/`` /
        ``cifar10/`` (or ``cifar-10-batches-py/``), or that folder itself. For ``imagefolder``:
        the folder of class sub-folders, or its parent holding ``train/`` and ``test/``.
        When given, it is the only place looked at and nothing is downloaded. When omitted:
        ``$BOUNDARY_ATLAS_DATA`` (else the project's offline data ``<repo>/../shared/data``), then
        the download cache ``cache_dir("datasets")``; if still missing, torchvision downloads
        MNIST / CIFAR-10 into that cache (needs internet). ``digits`` ignores ``root``.
    split : {"train", "test"}
    limit : int, optional
        Keep only the first ``limit`` images of the deterministic order (quick demos, tests).

    Returns
    -------
    Dataset
        images (N, C, H, W) float32 in [0, 1]; labels (N,) int64.

        ============  ==============  ====================  =========================================
        name          input_shape     N train / test        order
        ============  ==============  ====================  =========================================
        digits        (1, 8, 8)       1,397 / 400           seed-0 permutation of load_digits
        mnist         (1, 28, 28)     60,000 / 10,000       official
        cifar10       (3, 32, 32)     50,000 / 10,000       official (python batches; JPEG export
                                                            with ``<split>_labels.csv``), else sorted
                                                            by class then file name
        imagefolder   (1|3, H, W)     files found           sorted by class then file name
        ============  ==============  ====================  =========================================

        CIFAR-10 from the JPEG export is lossy (JPEG artifacts, ≈ 5.8/255 mean error): train and
        evaluate on the same format. The decoded pixels are cached (``cache_dir("datasets")``,
        keyed by the source path, size and mtime), so only the first load decodes.
        ``imagefolder`` gives 1 channel when every image is grayscale (PIL modes 1 / L / LA),
        else 3 (RGB; alpha dropped); class names = sorted sub-folder names (empty ones included,
        so train and test share indices). With no ``train/`` / ``test/`` sub-folders both splits
        read the same folder.

    Raises
    ------
    UnknownNameError
        ``name`` is not in :data:`DATASETS` (the message lists them).
    InvalidInputError
        ``split`` is not ``"train"`` / ``"test"``, ``limit`` is not a positive integer, or a file
        is damaged, not an image, or of another size than the first image (the message names it);
        for ``imagefolder``, a limit (:data:`MAX_IMAGES`, :data:`MAX_IMAGE_PIXELS`,
        :data:`MAX_DECODED_BYTES`, checked from the image headers before decoding) is exceeded.
    DatasetNotFoundError
        The files are missing; the message lists every place looked at and how to provide them.
    """
    key = _check_name(name)
    split = _check_split(split)
    limit = _check_limit(limit)
    if key == "digits":
        return _load_digits(split, limit)
    if key == "mnist":
        return _load_mnist(root, split, limit)
    if key == "cifar10":
        return _load_cifar10(root, split, limit)
    return _load_imagefolder(root, split, limit)


def load_zip_upload(data: bytes, *, name: str = "uploaded zip", split: str = "test") -> Dataset:
    """Load an uploaded zip of class folders (e.g. from the app's file uploader).

    The zip holds ``<class>/*.png`` (or ``train/<class>/…`` and ``test/<class>/…``), optionally
    inside one top-level folder, which is unwrapped; hidden files and ``__MACOSX/`` are ignored.
    Layout, order and channels are those of ``load_dataset("imagefolder")``. The zip is checked
    first (entry count, names, declared sizes, image headers: see the ``MAX_*`` limits of this
    module), then extracted into a ``tempfile.TemporaryDirectory`` (prefix ``atlas-upload-``) that
    is removed on success and on failure; the decoded pixels are not put in the disk cache.

    Parameters
    ----------
    data : bytes
        The zip file's content.
    name : str
        How messages (and ``Dataset.source``) name the upload, e.g. its file name.
    split : {"train", "test"}
        Which split folder to read when the zip has ``train/`` / ``test/``; otherwise it only
        labels the result.

    Returns
    -------
    Dataset
        ``name="imagefolder"``; images (N, C, H, W) float32 pixel values in [0, 1] (C = 1 when
        every image is grayscale, else 3); labels (N,) int64 indices into ``class_names`` (sorted
        class folder names); order: by class, then file name.

    Raises
    ------
    InvalidInputError
        Not a readable zip; a damaged entry (bad CRC, size that lies, encrypted); an entry path that
        leaves the archive, a duplicate name, or a file another entry uses as a folder; more than
        :data:`MAX_ZIP_ENTRIES` entries or images declaring more than :data:`MAX_ZIP_UNPACKED_BYTES`;
        more than :data:`MAX_IMAGES` images, an image over :data:`MAX_IMAGE_PIXELS` pixels, a
        float32 total over :data:`MAX_DECODED_BYTES` bytes; an unreadable image or images of
        different sizes. Every message names the upload (``name``) and, where one is met, the limit.
    DatasetNotFoundError
        No class folder with images (or no ``split`` folder while the other exists).
    """
    split = _check_split(split)
    with _open_zip(io.BytesIO(data), name, "a zip file") as zf:
        plan = _zip_plan(zf, name)
        with tempfile.TemporaryDirectory(prefix="atlas-upload-", ignore_cleanup_errors=True) as tmp:
            base = Path(tmp)
            try:
                _extract_zip(zf, plan, base, name)
                return _read_extracted(base, split, name)
            except AtlasError as e:  # name the upload, not the temporary folder (gone when the user reads it)
                text = str(e).replace(f"{base}{os.sep}", f"{name}:").replace(str(base), name)
                if text == str(e):
                    raise
                raise type(e)(text) from e


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
            raise _not_found(f"npz file {p}", [str(p)], ["pass the path of an existing .npz with arrays images and labels"])
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
        raise InvalidInputError(f"could not read {source} as .npz (no pickled objects allowed): {_first_line(e)}") from e
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
    if n and labels.max() >= MAX_CLASSES:  # the class count is max + 1: refuse before building names
        raise InvalidInputError(
            f"labels of {source} go up to {int(labels.max()):,}, but at most {MAX_CLASSES:,} classes are supported "
            f"(labels 0 … {MAX_CLASSES - 1:,}, MAX_CLASSES); labels must be class indices 0 … K-1"
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
