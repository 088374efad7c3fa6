"""``imagefolder``: any folder of class sub-folders (``root/<class>/*.png`` or
``root/<split>/<class>/*.png``), local (:func:`_load_imagefolder`, disk-cached) or an uploaded zip
(:func:`load_zip_upload`, extracted into a temporary folder, never cached).

Before any pixel is decoded, the image headers are checked against the limits of
:mod:`geometry.data.limits` (:func:`_check_image_budget`), read at call time.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AtlasError, InvalidInputError
from . import common, limits
from .archive import _extract_zip, _open_zip, _zip_plan
from .common import (
    _GRAY_MODES,
    IMAGE_EXTENSIONS,
    SPLITS,
    Dataset,
    _check_split,
    _Collection,
    _decode_cached,
    _first_line,
    _gib,
    _images_dataset,
    _list_class_folders,
    _listing_fingerprint,
    _not_found,
)

__all__ = ["load_zip_upload"]


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
    if n > limits.MAX_IMAGES:
        raise InvalidInputError(
            f"{what} holds {n:,} images, over the limit of {limits.MAX_IMAGES:,} images per dataset (MAX_IMAGES)"
        )
    pixels, channels = 0, 1
    for i, key in enumerate(keys):
        try:
            with Image.open(open_bytes(key)) as im:  # header only
                (w, h), mode = im.size, im.mode
        except Image.DecompressionBombError as e:
            raise InvalidInputError(
                f"image {describe(key)} is over the limit of {limits.MAX_IMAGE_PIXELS:,} pixels per image "
                f"(MAX_IMAGE_PIXELS): {_first_line(e)}"
            ) from e
        except (OSError, SyntaxError, ValueError) as e:
            raise InvalidInputError(f"could not read image {describe(key)}: {_first_line(e)}") from e
        if w * h > limits.MAX_IMAGE_PIXELS:
            raise InvalidInputError(
                f"image {describe(key)} is {w}×{h} = {w * h:,} pixels, over the limit of {limits.MAX_IMAGE_PIXELS:,} "
                f"pixels per image (MAX_IMAGE_PIXELS); resize the images first"
            )
        if force_rgb or mode not in _GRAY_MODES:
            channels = 3
        pixels += w * h
        total = pixels * channels * 4
        if total > limits.MAX_DECODED_BYTES:
            raise InvalidInputError(
                f"{what} is too large to decode: its first {i + 1:,} of {n:,} images alone take {total:,} bytes "
                f"({_gib(total)}) as float32 pixels (N·C·H·W·4 with C = {channels}; {describe(key)} is {w}×{h}), "
                f"over the limit of {limits.MAX_DECODED_BYTES:,} bytes ({_gib(limits.MAX_DECODED_BYTES)}, "
                "MAX_DECODED_BYTES); use fewer or smaller images"
            )


def _load_imagefolder(root: str | os.PathLike | None, split: str, limit: int | None) -> Dataset:
    layout = "root/<class>/*.png (or root/train/<class>/…, root/test/<class>/…), one sub-folder per class"
    if root is None or not str(root).strip():
        raise _not_found("imagefolder dataset", [], [f"pass root=<folder> laid out as {layout}"])
    base = Path(root).expanduser()
    if not base.is_dir():
        raise _not_found(
            f"imagefolder dataset ({split} split)",
            [str(base)],
            [f"pass root=<an existing folder> laid out as {layout}"],
        )
    folder, classes, entries = _imagefolder_listing(base, split)
    keys = [k for k, _ in entries]
    labels = [lab for _, lab in entries]
    note = "sorted by class then file name"

    def prepare(stack: contextlib.ExitStack) -> _Collection:
        _check_image_budget(
            keys if limit is None else keys[:limit],
            lambda k: folder / k,
            lambda k: str(folder / k),
            force_rgb=False,
            what=f"image folder {folder}",
        )
        return _Collection(keys, labels, lambda k: folder / k, lambda k: str(folder / k), note)

    images, labels_arr, _ = _decode_cached(
        "imagefolder",
        split,
        _listing_fingerprint(folder, keys),
        prepare,
        force_rgb=False,
        limit=limit,
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
                [
                    f"{base} has split folder(s) {', '.join(present)}/ but no {split}/: add {split}/<class>/… "
                    f"or load split={present[0]!r}"
                ],
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
    images = common._decode_images(keys, lambda k: folder / k, lambda k: str(folder / k), force_rgb=False)
    mode = "grayscale" if images.ndim == 3 else "RGB"
    return _images_dataset(
        images, labels, classes, "imagefolder", split, f"zip upload {what} ({mode}, sorted by class then file name)"
    )


def load_zip_upload(data: bytes, *, name: str = "uploaded zip", split: str = "test") -> Dataset:
    """Load an uploaded zip of class folders (e.g. from the app's file uploader).

    The zip holds ``<class>/*.png`` (or ``train/<class>/…`` and ``test/<class>/…``), optionally
    inside one top-level folder, which is unwrapped; hidden files and ``__MACOSX/`` are ignored.
    Layout, order and channels are those of ``load_dataset("imagefolder")``. The zip is checked
    first (entry count, names, declared sizes, image headers: see the ``MAX_*`` limits of
    :mod:`geometry.data.limits`), then extracted into a ``tempfile.TemporaryDirectory`` (prefix
    ``atlas-upload-``) that is removed on success and on failure; the decoded pixels are not put in
    the disk cache.

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
