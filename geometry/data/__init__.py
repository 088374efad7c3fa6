"""Datasets as tensors in pixel space: images ``(N, C, H, W)`` float32 in [0, 1], labels int64.

Every dataset of the atlas comes back as a :class:`Dataset` in *pixel space* (DESIGN §3): no
mean/std normalisation (that lives inside the :class:`~geometry.classifier.Classifier`), so
distances ‖r(x)‖ are measured on pixel values in [0, 1] and ``d = C·H·W``.

Datasets (:data:`DATASETS`), one module each (its docstring gives the files, split and order):

``digits``       scikit-learn's 1,797 real 8×8 handwritten digits, embedded: the default
                 (:mod:`geometry.data.digits`)
``mnist``        the 28×28 MNIST idx files (:mod:`geometry.data.mnist`)
``cifar10``      32×32 RGB, python batches or the JPEG export (:mod:`geometry.data.cifar10`)
``imagefolder``  any folder of class sub-folders, also as an uploaded zip
                 (:mod:`geometry.data.imagefolder`); ``.npz`` files: :mod:`geometry.data.npz`

Roots: the ``root`` argument, else ``$BOUNDARY_ATLAS_DATA``, else the project's offline data
(``<repo>/../shared/data``) and the download cache. See :func:`load_dataset`.

Uploads (:func:`load_zip_upload`, :func:`load_npz`) are hostile input: a 39 KB zip of blank
6000×6000 PNGs decodes to ~4 GiB, a 654-byte ``.npz`` can hold the label 300,000,000, an ``.npz``
header can declare 93 GiB. The limits :data:`MAX_IMAGE_PIXELS`, :data:`MAX_IMAGES`,
:data:`MAX_DECODED_BYTES`, :data:`MAX_CLASSES`, :data:`MAX_ZIP_ENTRIES` and
:data:`MAX_ZIP_UNPACKED_BYTES` are checked from headers (image headers, ``.npy`` headers, zip
records) *before* anything is decoded or allocated; the error names the limit and what was found.
They apply to image folders (local or uploaded) and ``.npz`` files, not to MNIST / CIFAR-10. They live
in :mod:`geometry.data.limits` and are read at call time; ``geometry.data.MAX_IMAGES`` (read or set)
is the same value.

Modules
-------
``common`` (:class:`Dataset`, roots, checks, image decoding, the decoded-dataset disk cache) ·
``limits`` · ``digits`` · ``mnist`` · ``cifar10`` · ``imagefolder`` (also zip uploads) · ``npz`` ·
``archive`` (reading an untrusted zip).
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING

from . import limits
from .cifar10 import CIFAR10_CLASSES, _load_cifar10
from .common import (
    _CACHE_FORMAT,  # noqa: F401 - read by tests (tests/test_cache_heal.py)
    DATA_ENV,
    DATASETS,
    IMAGE_EXTENSIONS,
    SPLITS,
    Dataset,
    _check_limit,
    _check_name,
    _check_split,
    data_root,
    shared_data_root,
)
from .digits import _load_digits
from .imagefolder import _load_imagefolder, load_zip_upload
from .mnist import _load_mnist
from .npz import load_npz

if TYPE_CHECKING:  # at run time these are forwarded to geometry.data.limits (see _Package)
    from .limits import (
        MAX_CLASSES,
        MAX_DECODED_BYTES,
        MAX_IMAGE_PIXELS,
        MAX_IMAGES,
        MAX_ZIP_ENTRIES,
        MAX_ZIP_UNPACKED_BYTES,
    )

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


def _forwarded(name: str) -> property:
    return property(
        lambda self: getattr(limits, name),
        lambda self, value: setattr(limits, name, value),
        doc=f"{name} of :mod:`geometry.data.limits`, read and set there",
    )


class _Package(types.ModuleType):
    """``geometry.data`` itself: its ``MAX_*`` names are those of :mod:`geometry.data.limits`, read
    and set there, so ``geometry.data.MAX_IMAGES = 5`` (or a test's ``monkeypatch.setattr``) changes
    the limit the readers use, as it did when this package was one module."""

    MAX_IMAGE_PIXELS = _forwarded("MAX_IMAGE_PIXELS")
    MAX_IMAGES = _forwarded("MAX_IMAGES")
    MAX_DECODED_BYTES = _forwarded("MAX_DECODED_BYTES")
    MAX_CLASSES = _forwarded("MAX_CLASSES")
    MAX_ZIP_ENTRIES = _forwarded("MAX_ZIP_ENTRIES")
    MAX_ZIP_UNPACKED_BYTES = _forwarded("MAX_ZIP_UNPACKED_BYTES")


sys.modules[__name__].__class__ = _Package


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
