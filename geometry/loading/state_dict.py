"""Weights-only files: a ``torch.save`` state_dict (read with ``weights_only=True``) or a ``.safetensors``
file, loaded into an architecture of :mod:`geometry.architectures` built here."""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..architectures import ARCHITECTURES, build_architecture
from ..errors import InvalidInputError, ModelLoadError, UnknownNameError
from ..errors import first_line as _first_line
from ..validation import check_int
from .detect import _corrupt

_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "net", "model")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DistributedDataParallel, torch.compile
_EXPORT_HINT = (
    "Export instead, then upload that file: TorchScript (torch.jit.save(torch.jit.script(model), 'model.pt') "
    "or torch.jit.trace), a torch.export program (torch.export.save(torch.export.export(model, (x,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2')), or the weights alone "
    "(torch.save(model.state_dict(), 'weights.pt') or safetensors) together with the architecture name"
)


def _load_pickled_state(data: bytes, name: str, detected: tuple[str, str] | None) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL\s+([\w.]+)", text)
        if m or ("Unsupported" in text and (data[:1] == b"\x80" or data[:2] == b"PK")):
            what = f"a pickled Python object ({m.group(1)})" if m else "a pickled Python object"
            raise ModelLoadError(
                f"refusing {name!r}: it holds {what}, not just tensors, so it can only be read by unpickling "
                "with torch.load(weights_only=False), which runs arbitrary code from the file (a fully pickled "
                f"module such as torch.save(model) is saved this way). {_EXPORT_HINT}."
            ) from exc
        raise _corrupt(name, "state_dict", exc, detected) from exc
    except Exception as exc:
        raise _corrupt(name, "state_dict", exc, detected) from exc


def _load_safetensors(data: bytes, name: str, detected: tuple[str, str] | None) -> dict:
    try:
        from safetensors.torch import load as load_safetensors

        return load_safetensors(data)
    except Exception as exc:
        raise _corrupt(name, "safetensors", exc, detected) from exc


def _is_tensor_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _extract_state_dict(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The parameter dict inside ``obj`` and the notes of what was unwrapped / stripped."""
    notes: list[str] = []
    if not _is_tensor_dict(obj):
        if isinstance(obj, Mapping):
            for key in _STATE_DICT_WRAPPERS:
                if key in obj and _is_tensor_dict(obj[key]):
                    obj = obj[key]
                    notes.append(f"unwrapped checkpoint[{key!r}]")
                    break
            else:
                keys = [repr(k) for k in list(obj)[:8]]
                raise ModelLoadError(
                    f"{name!r} holds a dict that is not a state_dict (keys {', '.join(keys) or 'none'}"
                    f"{', …' if len(obj) > 8 else ''}); expected parameter name → tensor, or a checkpoint dict "
                    f"holding one under {', '.join(repr(k) for k in _STATE_DICT_WRAPPERS)}"
                )
        else:
            shape = f" of shape {tuple(obj.shape)}" if isinstance(obj, torch.Tensor) else ""
            raise ModelLoadError(
                f"{name!r} holds a {type(obj).__name__}{shape}, not a state_dict; expected a dict of parameter "
                "name → tensor (torch.save(model.state_dict(), f))"
            )
    sd = dict(obj)
    changed = True
    while changed:
        changed = False
        for prefix in _STRIPPED_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix) :]: v for k, v in sd.items()}
                notes.append(f"stripped prefix {prefix!r}")
                changed = True
    return sd, notes


def _infer_num_classes(
    architecture: str, input_shape: Sequence[int], sd: Mapping[str, torch.Tensor], kwargs: dict
) -> int | None:
    """Read L from the weights: build the architecture on the meta device with a sentinel L and
    find the tensor whose dimension equals it."""
    sentinel = 7919
    try:
        with torch.device("meta"):
            probe = build_architecture(architecture, input_shape=input_shape, num_classes=sentinel, **kwargs)
    except (UnknownNameError, InvalidInputError):
        raise
    except Exception:
        return None
    for key, t in probe.state_dict().items():
        if key in sd and sentinel in t.shape:
            dim = list(t.shape).index(sentinel)
            if sd[key].dim() == t.dim():
                return int(sd[key].shape[dim])
    return None


def _fit_state_dict(
    model: nn.Module,
    sd: Mapping[str, torch.Tensor],
    *,
    name: str,
    architecture: str,
    input_shape: Sequence[int],
    num_classes: int,
) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [
        (k, tuple(sd[k].shape), tuple(expected[k].shape))
        for k in expected
        if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        show = lambda xs: ", ".join(xs[:5]) + (", …" if len(xs) > 5 else "")
        if missing:
            parts.append(f"{len(missing)} missing key(s) ({show(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) ({show(unexpected)})")
        if mismatched:
            parts.append(
                f"{len(mismatched)} shape mismatch(es) ("
                + show([f"{k}: file {a} vs model {b}" for k, a, b in mismatched])
                + ")"
            )
        raise ModelLoadError(
            f"the weights in {name!r} do not fit architecture {architecture!r} built for input_shape "
            f"{tuple(input_shape)} and {num_classes} classes: {'; '.join(parts)}. Check architecture, "
            "input_shape and num_classes (or architecture_kwargs)"
        )
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise ModelLoadError(
            f"could not load the weights of {name!r} into {architecture!r}: {_first_line(exc)}"
        ) from exc


def _load_weights(
    data: bytes,
    display: str,
    detected: tuple[str, str] | None,
    fmt: str,
    info: dict,
    *,
    architecture: str | None,
    num_classes: int | None,
    class_names: tuple[str, ...] | None,
    shape: tuple[int, int, int],
    architecture_kwargs: Mapping[str, Any] | None,
) -> tuple[nn.Module, list[str]]:
    """A ``state_dict`` / ``safetensors`` file: read the tensors, build ``architecture``, fill it strictly.

    Returns the module and the notes (wrapper unwrapped, prefixes stripped, L read from the weights);
    records ``architecture`` (and ``architecture_kwargs``) in ``info``.
    """
    if fmt == "state_dict":
        raw = _load_pickled_state(data, display, detected)
    else:
        raw = _load_safetensors(data, display, detected)
    sd, notes = _extract_state_dict(raw, display)
    if architecture is None:
        raise ModelLoadError(
            f"{display!r} is a state_dict (weights only, {len(sd)} tensors, first keys "
            f"{', '.join(list(sd)[:3])}): pass architecture= one of {', '.join(sorted(ARCHITECTURES))} "
            "or 'torchvision:<name>' (e.g. 'torchvision:resnet18')"
        )
    kwargs = dict(architecture_kwargs or {})
    L = num_classes if num_classes is not None else (len(class_names) if class_names else None)
    if L is None:
        L = _infer_num_classes(architecture, shape, sd, kwargs)
        if L is None:  # the keys do not match the architecture: guess, and let the fit report the keys
            L = next((int(t.shape[0]) for t in reversed(list(sd.values())) if t.dim() == 2), None)
        if L is None:
            raise ModelLoadError(
                f"could not read the number of classes of {display!r} for architecture {architecture!r}; "
                "pass num_classes or class_names"
            )
        notes.append(f"num_classes={L} read from the weights")
    L = check_int("num_classes", L, 1)
    model = build_architecture(architecture, input_shape=shape, num_classes=L, **kwargs)
    _fit_state_dict(model, sd, name=display, architecture=architecture, input_shape=shape, num_classes=L)
    info["architecture"] = architecture
    if kwargs:
        info["architecture_kwargs"] = kwargs
    return model, notes
