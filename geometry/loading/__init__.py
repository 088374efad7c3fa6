"""Load a user-supplied model file as a frozen :class:`~geometry.classifier.Classifier`.

Issue "Inspect a user-supplied model": an engineer uploads their own network and the atlas
measures its boundary like any zoo network. :func:`load_classifier` reads the file, builds the
module, wraps it with :func:`~geometry.classifier.make_classifier` (normalisation inside, eval
mode, parameters frozen, pixel-space ``bounds``) and checks it with :func:`validate_classifier`.

Formats (:data:`FORMATS`)
-------------------------
============  ===========================================  ===================================
format        how it is saved                              how it is read
============  ===========================================  ===================================
torchscript   ``torch.jit.save(torch.jit.script(m), f)``    ``torch.jit.load(f, map_location=
              or ``torch.jit.trace``; a zip archive with   "cpu")``
              ``code/``, ``constants.pkl``, ``data.pkl``
export        ``torch.export.save(torch.export.export(m,    ``torch.export.load(f).module(
              (x,), dynamic_shapes=...), f)``; a ``.pt2``  check_guards=False)``
              zip archive (``archive_format`` = ``pt2``)
state_dict    ``torch.save(m.state_dict(), f)`` (zip or    ``torch.load(f, map_location="cpu",
              legacy non-zip), ``.pt`` / ``.pth``;         weights_only=True)`` into the
              also a checkpoint dict holding it under      ``architecture`` built here
              ``state_dict`` / ``model_state_dict`` /
              ``net`` / ``model``
safetensors   ``safetensors.torch.save_file(sd, f)``       ``safetensors.torch.load(bytes)``
onnx          ``torch.onnx.export(m, (x,), f,              ``onnx.load_model_from_string`` →
              opset_version=17, dynamic_axes=…)``, or any  ``onnx2torch.convert`` (a
              framework's ONNX exporter; ``.onnx``         ``torch.fx`` GraphModule)
============  ===========================================  ===================================

Detection (``format=None``): the *content* decides, the extension only breaks ties
(:mod:`geometry.loading.detect` gives the rules).

Security: what is trusted
-------------------------
A model file is untrusted input (the app accepts uploads); issue 9 made the defence sound by
construction rather than by a list of known-bad names:

* **state_dict** files are read *only* with ``torch.load(..., weights_only=True)`` (PyTorch's
  restricted unpickler: tensors, containers and primitive types, no other globals). A fully
  pickled module (``torch.save(model)``), or any pickle naming another global, is refused; we
  never fall back to ``weights_only=False``. **safetensors** holds no code at all.
* **TorchScript** and **torch.export** files are code. Before anything is loaded,
  :mod:`geometry.loading.screen` checks the archive (one record folder, allowed entry names only, no
  duplicates, the same records for Python's zipfile and PyTorch's reader), parses the TorchScript
  code with :mod:`ast` and checks every operator against one allow-list of pure tensor operators,
  and checks a ``.pt2`` program's graph and shape expressions (walked, never evaluated); after
  loading, the inlined TorchScript forward graph is checked again node by node, before the first
  forward pass. ``.module(check_guards=False)`` never executes a ``.pt2``'s ``guards_code``.
* **ONNX** files are protobuf (no code); tensors stored as external data (file paths), custom
  operator domains and model-local functions are refused, and onnx2torch converts the standard
  operators it has converters for into ordinary PyTorch modules (others are refused by name).
* **Isolation.** With ``isolate=True`` (the default; the app always, the command line unless
  ``--trust-model-code``) the screen, the load and :func:`validate_classifier`'s probe run first
  in a fresh child process limited in wall-clock time, CPU time and memory, with no file writes,
  in a private empty folder (:mod:`geometry.loading.sandbox`); this process loads the file only after the
  child succeeded. A model that loops or allocates without bound on the probe is refused within
  the limits. A model that passes still runs here afterwards, restricted to the allowed
  operators; what it costs on other inputs is not bounded.

``max_bytes`` bounds the file size (and the uncompressed size of a zip archive);
``input_shape`` is bounded by :data:`MAX_INPUT_VALUES` before anything is allocated.

Modules
-------
``detect``  formats, reading the source, detection · ``torchscript`` · ``export`` · ``onnx`` ·
``state_dict`` (also ``.safetensors``) · ``validate`` (:func:`validate_classifier`, the probe) ·
``screen`` (the allow-lists) · ``sandbox`` (the resource-limited child process). Architectures
for weights files live in :mod:`geometry.architectures`; ``LOADING_ARCHITECTURES``,
``build_loading_architecture`` and ``CifarResNet`` are its registry, builder and class under their
former names here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, cast

import torch

from ..architectures import ARCHITECTURES, CifarResNet, architecture_names, build_architecture
from ..classifier import Classifier, make_classifier
from ..errors import InvalidInputError, ModelLoadError, UnknownNameError
from .detect import _FORMAT_LABEL, DEFAULT_MAX_BYTES, FORMATS, _corrupt, _detect, _mib, _read_source, detect_format
from .export import _load_export
from .onnx import ONNX_DOMAINS, _load_onnx
from .sandbox import DEFAULT_LIMITS, SandboxLimits, run_isolated
from .state_dict import _load_weights
from .torchscript import _load_torchscript
from .validate import _probe_outputs, validate_classifier

__all__ = [
    "FORMATS",
    "DEFAULT_MAX_BYTES",
    "MAX_INPUT_VALUES",
    "ONNX_DOMAINS",
    "LOADING_ARCHITECTURES",
    "CifarResNet",
    "DEFAULT_LIMITS",
    "SandboxLimits",
    "architecture_names",
    "build_loading_architecture",
    "check_input_shape",
    "detect_format",
    "load_classifier",
    "validate_classifier",
]

#: Former names of :data:`geometry.architectures.ARCHITECTURES` and
#: :func:`geometry.architectures.build_architecture` (one registry, one builder).
LOADING_ARCHITECTURES = ARCHITECTURES
build_loading_architecture = build_architecture


def load_classifier(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    format: str | None = None,
    architecture: str | None = None,
    num_classes: int | None = None,
    input_shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    architecture_kwargs: Mapping[str, Any] | None = None,
    isolate: bool = True,
    limits: SandboxLimits | None = None,
) -> Classifier:
    """Load a user's model file as a frozen, validated :class:`~geometry.classifier.Classifier`.

    Parameters
    ----------
    source : path-like, bytes, or binary file object
        The model file. A file object needs ``getvalue()`` (Streamlit's ``UploadedFile``,
        ``io.BytesIO``) or ``read()``; its ``.name`` (if any) gives the display name and extension.
    format : {"torchscript", "export", "onnx", "state_dict", "safetensors"}, optional
        Default: detected from the content, then the extension (:mod:`geometry.loading.detect`).
    architecture : str, optional
        Required for ``state_dict`` / ``safetensors`` (weights only), ignored otherwise: a zoo
        architecture (``"lenet"``, ``"lenet-softplus"``, ``"mlp"``), ``"resnet20"``
        (:class:`CifarResNet`), or a torchvision classification model (``"torchvision:resnet18"``,
        or ``"resnet18"``), built untrained for ``input_shape`` / ``num_classes`` and then filled
        with ``load_state_dict(strict=True)``. See :func:`architecture_names`.
    num_classes : int, optional
        L for building ``architecture``. Default: ``len(class_names)``, else read from the
        weights (the tensor whose size depends on L, e.g. the last layer's weight).
    input_shape : (C, H, W)
        Shape of one input image, in pixels.
    mean, std : sequence of C floats, optional
        The normalisation the model was trained with; it goes *inside* the classifier, so the
        classifier takes pixels in ``bounds`` (DESIGN §3). Omit if the model normalises itself.
    bounds : (low, high)
        Valid pixel range (default [0, 1]).
    class_names : sequence of L str, optional
        Default ``"0" … "L-1"`` with L read from a probe forward pass.
    name : str, optional
        Display name / cache key; default the file name without extension.
    max_bytes : int
        Refuse files larger than this (default :data:`DEFAULT_MAX_BYTES` = 512 MiB).
    architecture_kwargs : mapping, optional
        Extra keyword arguments for the architecture (e.g. ``{"channels": (32, 64), "hidden":
        (256, 128)}`` for the zoo's CIFAR-10 LeNet).
    isolate : bool
        Default True: the first load and the validation probe run in a resource-limited child
        process (:func:`geometry.loading.sandbox.run_isolated`), and this process loads the file only
        after the child succeeded (screened again, not probed again). False runs everything here:
        for a file you trust (the command line's ``--trust-model-code``) and for tests.
    limits : SandboxLimits, optional
        The child's CPU and memory limits and wall-clock backstops (default
        :data:`geometry.loading.sandbox.DEFAULT_LIMITS`: 30 s CPU after its imports, 3 GiB, 300 s).

    Returns
    -------
    Classifier
        ``network`` = [Normalize(mean, std) →] model, eval mode, parameters frozen, on the CPU;
        ``info`` holds ``format``, ``detected`` (how the format was recognised), ``file``,
        ``bytes``, ``sha256`` (of the file; a cache key), ``parameters``, ``architecture`` (for
        weights files), ``notes`` (wrapper unwrapped, prefixes stripped), ``graph_nodes``
        (TorchScript nodes screened) and ``isolation`` (the child's limits and timings, or
        "trusted" when ``isolate=False``).

    Raises
    ------
    ModelLoadError
        the file is missing, over ``max_bytes``, empty, truncated or corrupt (the message names
        the file and the format tried), unrecognised, a pickled Python object (refused: loading
        it would run code from the file), a TorchScript / exported program that fails the
        screen of :mod:`geometry.loading.screen`, an ONNX model with external data, custom operators or
        operators onnx2torch cannot convert, a state_dict that does not fit the architecture
        (missing / unexpected keys and shape mismatches listed), a model that fails
        :func:`validate_classifier`, or one whose check ran past a limit of ``limits``.
    UnknownNameError
        unknown ``format`` or ``architecture``.
    InvalidInputError
        bad ``input_shape`` / ``mean`` / ``std`` / ``bounds`` / ``max_bytes``.

    Examples
    --------
    >>> clf = load_classifier("cifar_torchvision.pt", architecture="lenet", input_shape=(3, 32, 32),
    ...                       mean=(0.5,) * 3, std=(0.5,) * 3, class_names=CIFAR10_CLASSES)  # doctest: +SKIP
    """
    shape = check_input_shape(input_shape)
    if format is not None and format not in FORMATS:
        raise UnknownNameError(
            f"unknown model format {format!r}; choose one of {', '.join(FORMATS)} (or None to detect)"
        )
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if not class_names:
            raise InvalidInputError("class_names must not be empty (or None for '0' … 'L-1')")
    data, display, file_name = _read_source(source, max_bytes)
    options = dict(
        format=format,
        architecture=architecture,
        num_classes=num_classes,
        input_shape=list(shape),
        mean=None if mean is None else [float(v) for v in mean],
        std=None if std is None else [float(v) for v in std],
        bounds=[float(b) for b in bounds],
        class_names=None if class_names is None else list(class_names),
        name=name,
        max_bytes=max_bytes,
        architecture_kwargs=_jsonable(architecture_kwargs),
    )
    if not isolate:
        clf = _load_bytes(data, display, file_name, validate=True, **options)
        clf.info["isolation"] = "trusted (isolate=False: loaded and probed in this process)"
        return clf
    lim = limits or DEFAULT_LIMITS
    if not isinstance(lim, SandboxLimits):
        raise InvalidInputError(f"limits must be a SandboxLimits, got {type(lim).__name__}")
    report = run_isolated(data, {**options, "display": display, "file_name": file_name}, limits=lim, display=display)
    clf = _load_bytes(data, display, file_name, validate=False, probe_classes=int(report["num_classes"]), **options)
    clf.info["isolation"] = {
        "limits": lim.describe(),
        "child_seconds": round(float(report["wall_seconds"]), 2),
        "child_cpu_seconds": round(float(report["cpu_seconds"]), 2),
    }
    return clf


#: Largest input accepted, in values per image (C·H·W): 16.7 M, i.e. 3 × 2364 × 2364.
MAX_INPUT_VALUES: int = 2**24


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W) positive ints with C·H·W ≤ :data:`MAX_INPUT_VALUES`; checked before any allocation.

    Raises
    ------
    InvalidInputError
        not three positive integers, or too large (the message gives the size and the limit).
    """
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = len(shape) == 3 and all(float(s) == int(float(s)) for s in input_shape)
    except (TypeError, ValueError, OverflowError):
        shape, ok = (), False
    if not ok or min(shape) <= 0:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive integer sizes, got {input_shape!r}")
    values = shape[0] * shape[1] * shape[2]
    if values > MAX_INPUT_VALUES:
        raise InvalidInputError(
            f"input_shape {shape} has {values:,} values per image, over the limit of {MAX_INPUT_VALUES:,} "
            "(3 × 2364 × 2364); the atlas measures image classifiers up to that size"
        )
    return shape  # type: ignore[return-value]


def _jsonable(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)):
        return obj
    raise InvalidInputError(
        f"architecture_kwargs must hold numbers, strings, lists and dicts, got {type(obj).__name__}"
    )


def _load_bytes(
    data: bytes,
    display: str,
    file_name: str,
    *,
    format: str | None,
    architecture: str | None,
    num_classes: int | None,
    input_shape: Sequence[int],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    bounds: Sequence[float],
    class_names: Sequence[str] | None,
    name: str | None,
    max_bytes: int,
    architecture_kwargs: Mapping[str, Any] | None,
    validate: bool,
    probe_classes: int | None = None,
) -> Classifier:
    """The body of :func:`load_classifier` once the file is in memory (also run by the sandbox child)."""
    shape = check_input_shape(input_shape)
    class_names = None if class_names is None else tuple(class_names)
    if not data:
        raise ModelLoadError(f"{display!r} is empty (0 bytes); expected a model file")
    try:
        detected: tuple[str, str] | None = _detect(data, file_name, display)
    except ModelLoadError:
        if format is None:
            raise
        detected = None  # the caller insists on a format: let that loader report the failure
    fmt = format or detected[0]  # type: ignore[index]
    how = "given as format=" + repr(format) if format else detected[1]  # type: ignore[index]
    notes: list[str] = []
    info: dict[str, Any] = {
        "format": fmt,
        "detected": how,
        "file": display,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }

    if data[:4] == b"PK\x03\x04":  # a zip archive may declare entries far larger than the file
        try:
            total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise _corrupt(display, fmt, exc, detected) from exc
        if total > max_bytes:
            raise ModelLoadError(
                f"{display!r} unpacks to {_mib(total)}, over the limit of {_mib(max_bytes)} (max_bytes); "
                "pass a larger max_bytes if you trust the file"
            )
    if fmt in ("torchscript", "export", "onnx"):
        loader = {"torchscript": _load_torchscript, "export": _load_export, "onnx": _load_onnx}[fmt]
        try:
            model = loader(data, display, detected, info)
        except ModelLoadError as exc:
            if detected is None or detected[0] == fmt:
                raise
            raise ModelLoadError(
                f"{exc}; its content looks like {_FORMAT_LABEL[detected[0]]} ({detected[1]}): "
                f"try format={detected[0]!r}"
            ) from exc
        if architecture is not None:
            notes.append(f"architecture={architecture!r} ignored: the file holds its own")
    else:
        model, notes = _load_weights(
            data,
            display,
            detected,
            fmt,
            info,
            architecture=architecture,
            num_classes=num_classes,
            class_names=class_names,
            shape=shape,
            architecture_kwargs=architecture_kwargs,
        )

    info["parameters"] = int(sum(p.numel() for p in model.parameters()))
    info["notes"] = notes
    clf_name = name or (Path(file_name).stem if file_name else "uploaded-model")
    clf = make_classifier(
        model,
        input_shape=shape,
        class_names=class_names or (),
        name=clf_name,
        mean=mean,
        std=std,
        bounds=cast("tuple[float, float]", tuple(bounds)),  # checked by load_classifier: two floats
        info=info,
    )
    if class_names is None:
        if probe_classes is not None:
            L_out = probe_classes
        else:
            x = torch.rand((4, *shape), generator=torch.Generator().manual_seed(0))
            x = (clf.bounds[0] + clf.bounds_range * x).to(clf.dtype)
            L_out = _probe_outputs(clf, x).shape[1]
        clf = dataclasses.replace(clf, class_names=tuple(str(i) for i in range(L_out)))
    if validate:
        validate_classifier(clf)
    return clf
