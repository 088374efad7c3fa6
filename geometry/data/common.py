"""What every reader of :mod:`geometry.data` shares: the :class:`Dataset` result, the data roots,
argument checks, conversions to pixel-space tensors, image decoding and the decoded-dataset disk
cache (``cache_dir("datasets")``, verified safetensors files)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..cache import cache_dir, cache_key, discard_damaged, load_tensors, save_tensors
from ..errors import DatasetNotFoundError, InvalidInputError, UnknownNameError
from ..validation import SPLITS as _SPLITS
from ..validation import check_int

#: Environment variable naming the folder that holds ``MNIST/``, ``cifar10/`` … (the data root).
DATA_ENV = "BOUNDARY_ATLAS_DATA"
#: Valid dataset names for :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "mnist", "cifar10", "imagefolder")
#: Valid splits.
SPLITS: tuple[str, ...] = _SPLITS
#: File name endings read as images by the image-folder readers (case-insensitive).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".ppm",
    ".pgm",
    ".pbm",
    ".tif",
    ".tiff",
    ".webp",
)

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
    return Path(__file__).resolve().parents[3] / "shared" / "data"


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
    return None if limit is None else check_int("limit", limit, 1)


def _not_found(
    what: str, looked: Sequence[str], how: Sequence[str], problems: Sequence[str] = ()
) -> DatasetNotFoundError:
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


# ------------------------------------------------------------------------------ image decoding
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


# ------------------------------------------------------------------ decoded-dataset disk cache
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
    tensors = {
        "images": torch.from_numpy(np.ascontiguousarray(images)),
        "labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
    }
    with contextlib.suppress(OSError):  # an unwritable cache only costs time
        save_tensors(Path(path).with_suffix(".safetensors"), tensors, {"note": str(note)}, version=_CACHE_FORMAT)


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


def _images_dataset(
    images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], name: str, split: str, source: str
) -> Dataset:
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
