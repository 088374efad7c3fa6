"""Where the geometry runs: the ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``).

Every computation of the atlas runs on the device of the classifier's network
(:attr:`geometry.classifier.Classifier.device`); move a classifier with
:meth:`~geometry.classifier.Classifier.to` and a setting resolved by :func:`resolve_device`.
Inputs given on another device (usually the CPU) are moved to the classifier's device where they
enter a geometry function; results keep their documented place (the result dataclasses hold CPU
tensors). Study cache keys never depend on the device: the same network gives the same
fingerprint on every device (:func:`geometry.study.network_fingerprint`).

Spelling of a device setting:

``"auto"`` (or ``None``)
    ``cuda`` (the current CUDA device) when PyTorch sees a GPU, else ``cpu``.
``"cpu"``
    The host.
``"cuda"`` / ``"cuda:N"``
    The current / the N-th CUDA device; an :class:`DeviceError` when PyTorch sees no GPU or
    fewer than N + 1.

Source: issue 15 ("Beyond one CPU"), item 1.
"""

from __future__ import annotations

import torch

from .errors import AtlasError

__all__ = ["DeviceError", "DEVICE_CHOICES", "available_devices", "resolve_device", "device_label"]

#: The spellings the command line and the settings accept besides ``cuda:N``.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(AtlasError):
    """A device setting that is unknown or names a device this machine does not have."""


def available_devices() -> tuple[str, ...]:
    """The devices present, as settings: ``("cpu",)`` plus ``"cuda:0" … "cuda:K-1"`` for K visible GPUs."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return ("cpu", *(f"cuda:{i}" for i in range(n)))


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The :class:`torch.device` a device setting names, checked against this machine.

    Parameters
    ----------
    spec : "auto", None, "cpu", "cuda", "cuda:N" or a torch.device
        ``"auto"``/``None``: CUDA when present, else the CPU. Case and surrounding spaces are
        ignored.

    Returns
    -------
    torch.device
        ``device("cpu")`` or ``device("cuda", N)`` (``"cuda"`` resolves to the current CUDA device,
        so results compare equal to a tensor's ``.device``).

    Raises
    ------
    DeviceError
        an unknown spelling (e.g. ``"gpu"``, ``"mps"``, ``"cuda:x"``); CUDA asked for on a machine
        where PyTorch sees no GPU; ``cuda:N`` with N ≥ the number of GPUs.
    """
    if spec is None:
        spec = "auto"
    if isinstance(spec, torch.device):
        text = str(spec)
    elif isinstance(spec, str):
        text = spec.strip().lower()
    else:
        raise DeviceError(f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N, got {spec!r}")
    if text == "auto":
        return resolve_device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(
            f"unknown device {spec!r}: use one of {', '.join(DEVICE_CHOICES)} or cuda:N (N = 0, 1, …); "
            f"this machine has {', '.join(available_devices())}"
        )
    if not torch.cuda.is_available():
        raise DeviceError(
            f"device {spec!r} asks for a CUDA GPU, but PyTorch sees none on this machine "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}); use device 'cpu' or 'auto'"
        )
    n = torch.cuda.device_count()
    i = int(index) if index else torch.cuda.current_device()
    if i >= n:
        raise DeviceError(f"device {spec!r}: this machine has {n} CUDA device(s), cuda:0 … cuda:{n - 1}")
    return torch.device("cuda", i)


def device_label(device: torch.device | str) -> str:
    """A short human-readable name for the model card: ``"cpu"`` or ``"cuda:0 (NVIDIA H200)"``."""
    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        i = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{i} ({torch.cuda.get_device_name(i)})"
    return str(dev)
