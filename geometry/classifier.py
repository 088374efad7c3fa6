"""The :class:`Classifier`: a frozen network seen from pixel space.

Every quantity of the atlas (‖r(x)‖, curvatures, ξ, fooling rates) is measured in *pixel space*:
inputs in ``bounds`` (default [0, 1]), shape ``(N, C, H, W)``, distances in the ℓ2 / ℓ∞ norm of
pixel values, ``d = C·H·W``. Mean/std normalisation lives *inside* the classifier (as in foolbox),
never in the caller, so ‖r(x)‖ is comparable across models with different preprocessing
(DESIGN §3).

``Classifier`` is a frozen dataclass with no logic in its constructor; build one with
:func:`make_classifier`, which puts the model in eval mode, freezes its parameters and registers
mean/std as *float* buffers (an integer buffer would silently truncate to 0 on load).
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .errors import InvalidInputError
from .validation import check_images

__all__ = ["Classifier", "Normalize", "make_classifier", "check_images"]


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean/std as float32 buffers of shape (1, C, 1, 1)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(1, -1, 1, 1)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(1, -1, 1, 1)
        if torch.any(std_t <= 0):
            raise InvalidInputError(f"std must be positive, got {list(map(float, std_t.flatten()))}")
        # declared here, not in the class body, where TorchScript would read the (string) annotations
        self.mean: torch.Tensor  # registered buffers (nn.Module.__getattr__ would type them Tensor | Module)
        self.std: torch.Tensor
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


#: network → {device: the Classifier moved there}, for :meth:`Classifier.to` (lives as long as the network)
_MOVED: weakref.WeakKeyDictionary[nn.Module, dict[torch.device, Classifier]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class Classifier:
    """A trained classifier ``f: R^d → R^L`` on pixel-space inputs.

    Attributes
    ----------
    network : nn.Module
        The whole map pixels → logits (normalisation included), eval mode, parameters frozen.
        Differentiate through this one.
    model : nn.Module
        The user's / zoo's module without the normalisation (what a state_dict belongs to).
    input_shape : (C, H, W)
    class_names : tuple of L str
    name : str
        Display name / cache key (e.g. ``"digits-lenet"``).
    bounds : (low, high)
        Valid pixel range, default (0, 1).
    mean, std : tuple of C floats or None
        The normalisation inside ``network`` (for the model card).
    test_accuracy : float or None
        Fraction in [0, 1] measured on the dataset's test split, when known.
    info : dict
        Free-form metadata for the model card (architecture, dataset, recipe, …).
    """

    network: nn.Module
    model: nn.Module
    input_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    name: str = "classifier"
    bounds: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    test_accuracy: float | None = None
    info: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ basic facts
    @property
    def d(self) -> int:
        """Input dimension C·H·W."""
        c, h, w = self.input_shape
        return c * h * w

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dtype(self) -> torch.dtype:
        for p in self.network.parameters():
            return p.dtype
        for b in self.network.buffers():
            if b.is_floating_point():
                return b.dtype
        return torch.float32

    @property
    def bounds_range(self) -> float:
        return float(self.bounds[1] - self.bounds[0])

    @property
    def device(self) -> torch.device:
        """The device of the network's parameters (of its first floating buffer without
        parameters; the CPU for a network without tensors): every computation runs there."""
        for p in self.network.parameters():
            return p.device
        for b in self.network.buffers():
            return b.device
        return torch.device("cpu")

    def to(self, device: str | torch.device | None = "auto") -> Classifier:
        """This classifier on ``device`` (a setting of :func:`geometry.device.resolve_device`).

        Returns ``self`` when the network already lives there; otherwise a new ``Classifier``
        whose ``network`` (and ``model``, the same module inside it) is a moved *copy*: the
        original keeps its device, so a classifier shared by several callers is never moved
        under them. The copy is made once per (network, device) and reused. Everything else (name, class names, bounds, mean/std, accuracy, info) is kept,
        and so is the study fingerprint (it hashes values, not places).

        Raises
        ------
        geometry.device.DeviceError
            an unknown device, or one this machine does not have (e.g. ``"cuda"`` without a GPU).
        """
        import copy

        from .device import resolve_device

        dev = resolve_device(device)
        if self.device == dev:
            return self
        moved = _MOVED.get(self.network, {}).get(dev)
        if moved is not None:  # one copy per (network, device): repeated moves (app reruns) are free
            return moved
        memo: dict = {}
        network = copy.deepcopy(self.network, memo)
        model = copy.deepcopy(self.model, memo)  # the same module as inside network (shared memo)
        network.to(dev)
        model.to(dev)
        moved = dataclasses.replace(self, network=network, model=model, info=dict(self.info))
        _MOVED.setdefault(self.network, {})[dev] = moved
        return moved

    # ------------------------------------------------------------------ evaluation
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, L)`` of a batch ``x`` of shape ``(N, C, H, W)`` (or one image ``(C, H, W)``,
        which is treated as a batch of one). Differentiable with respect to ``x``.

        Raises
        ------
        InvalidInputError
            wrong shape, or a non-finite input.
        """
        x = check_images(x, self.input_shape, allow_single=True)
        return self.network(x.to(device=self.device, dtype=self.dtype))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels ``k_hat(x)``, shape (N,) int64 on the device of ``x``, evaluated in
        batches without gradients on the classifier's device."""
        x = check_images(x, self.input_shape, allow_single=True)
        dev, dt = self.device, self.dtype
        out = [
            self.network(x[i : i + batch_size].to(device=dev, dtype=dt)).argmax(1) for i in range(0, len(x), batch_size)
        ]
        return torch.cat(out).to(x.device) if out else torch.zeros(0, dtype=torch.long, device=x.device)

    @torch.no_grad()
    def logits(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Logits ``(N, L)`` without gradients, in batches, on the device of ``x``."""
        x = check_images(x, self.input_shape, allow_single=True)
        dev, dt = self.device, self.dtype
        out = [self.network(x[i : i + batch_size].to(device=dev, dtype=dt)) for i in range(0, len(x), batch_size)]
        return torch.cat(out).to(x.device) if out else torch.zeros(0, self.num_classes, dtype=dt, device=x.device)

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024) -> float:
        """Fraction of ``x`` whose prediction equals ``labels``, in [0, 1]."""
        pred = self.predict(x, batch_size=batch_size)
        return float((pred == torch.as_tensor(labels).to(pred.device)).float().mean()) if len(pred) else float("nan")


def make_classifier(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    class_names: Sequence[str],
    name: str = "classifier",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    test_accuracy: float | None = None,
    info: dict | None = None,
) -> Classifier:
    """Wrap ``model`` (pixels, normalised, → logits) as a frozen :class:`Classifier`.

    ``model`` is put in eval mode and its parameters get ``requires_grad_(False)``; it is not
    copied, so do not keep training it afterwards. With ``mean``/``std`` given, the returned
    ``network`` is ``Sequential(Normalize(mean, std), model)``.

    Raises
    ------
    InvalidInputError
        input_shape not (C, H, W), mean/std of the wrong length, or bounds not increasing.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    if (mean is None) != (std is None):
        raise InvalidInputError("give both mean and std, or neither")
    if mean is not None and std is not None and (len(mean) != shape[0] or len(std) != shape[0]):
        raise InvalidInputError(f"mean and std need one value per channel ({shape[0]}), got {len(mean)} and {len(std)}")
    if not bounds[1] > bounds[0]:
        raise InvalidInputError(f"bounds must be (low, high) with low < high, got {bounds}")
    model.eval()
    model.requires_grad_(False)
    network: nn.Module
    if mean is not None and std is not None:
        normalize = Normalize(mean, std)
        network = nn.Sequential(normalize, model)
        dtype = next((p.dtype for p in model.parameters()), torch.float32)
        normalize.to(dtype)
    else:
        network = model
    network.eval()
    network.requires_grad_(False)
    return Classifier(
        network=network,
        model=model,
        input_shape=shape,
        class_names=tuple(str(c) for c in class_names),
        name=name,
        bounds=(float(bounds[0]), float(bounds[1])),
        mean=None if mean is None else tuple(float(v) for v in mean),
        std=None if std is None else tuple(float(v) for v in std),
        test_accuracy=test_accuracy,
        info=dict(info or {}),
    )
