"""The network architectures of the atlas: one registry, one builder.

Every architecture is a plain ``nn.Module`` class taking ``(input_shape, num_classes, **kwargs)``;
:data:`ARCHITECTURES` maps a name to its builder and :func:`build_architecture` builds an untrained
network by name, for the zoo (:mod:`geometry.zoo`, which trains them) and for uploaded weights
(:func:`geometry.loading.load_classifier` with ``architecture=``). Names not in the registry are
looked up among torchvision's classification models.

Architectures
-------------
``lenet``          the paper's LeNet: two 5×5 conv layers (each followed by the activation and a
                   2×2 max-pool) and three fully connected layers. Inputs smaller than 16 pixels
                   (8×8 digits) use padding 2 so the two convolutions fit.
``lenet-softplus`` the smooth twin: softplus activations in place of ReLU (same layers, max-pool
                   kept). Its input Hessian is non-zero and exists everywhere except on the
                   measure-zero ties of the max-pool, so ``method="exact"`` curvature is
                   meaningful. (A twin with average pooling did not train with the paper's recipe:
                   on 8×8 digits it stayed at chance after 10 epochs and reached 50 % after 30,
                   against 96 % with max-pool; measured here.)
``mlp``            two hidden ReLU layers on the flattened image.
``nin``            a Network-in-Network-style all-convolutional net (Lin et al., ICLR 2014): two
                   "mlpconv" blocks (k×k conv → BatchNorm → ReLU → 1×1 conv → ReLU → 2×2 max-pool),
                   a 1×1 conv to L channels and global average pooling. The paper compares LeNet
                   with NiN (Fig. 10); ours is smaller so it trains on 2 CPU cores, and it is
                   trained differently from LeNet (BatchNorm, learning rate 0.05).
``resnet20``       the CIFAR ResNet-20 of He et al. (2016, §4.2) (:class:`CifarResNet`), with the
                   layer names of the PyHessian / bearpaw CIFAR ResNet, for uploaded weights (the
                   zoo does not train it).
``torchvision:<name>``  any torchvision classification model, untrained (``weights=None``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .errors import InvalidInputError, ModelLoadError, UnknownNameError, first_line

__all__ = [
    "ARCHITECTURES",
    "LeNet",
    "MLP",
    "NiN",
    "CifarResNet",
    "architecture_names",
    "build_architecture",
]


def _activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "softplus":
        return nn.Softplus()
    raise InvalidInputError(f"activation must be 'relu' or 'softplus', got {name!r}")


class LeNet(nn.Module):
    """LeNet: conv(5×5) → act → pool → conv(5×5) → act → pool → fc → act → fc → act → fc.

    Parameters
    ----------
    input_shape : (C, H, W)
    num_classes : L
    channels : (c1, c2) convolution widths (classic LeNet: (6, 16))
    hidden : (h1, h2) fully connected widths (classic: (120, 84))
    activation : "relu" | "softplus"
    pool : "max" | "avg"

    Shapes: input (N, C, H, W) normalised pixels → logits (N, L). Layer names ``conv1, conv2, fc1,
    fc2, fc3`` match the classic PyTorch tutorial LeNet, so its state_dicts load directly.
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        *,
        channels: Sequence[int] = (6, 16),
        hidden: Sequence[int] = (120, 84),
        activation: str = "relu",
        pool: str = "max",
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        pad = 2 if min(h, w) < 16 else 0
        self.conv1 = nn.Conv2d(c, channels[0], 5, padding=pad)
        self.conv2 = nn.Conv2d(channels[0], channels[1], 5, padding=pad)
        size = lambda s: ((s + 2 * pad - 4) // 2 + 2 * pad - 4) // 2
        flat = channels[1] * size(h) * size(w)
        self.fc1 = nn.Linear(flat, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.act = _activation(activation)
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.act(self.conv1(x)))
        x = self.pool(self.act(self.conv2(x)))
        x = x.flatten(1)
        x = self.act(self.fc1(x))
        x = self.act(self.fc2(x))
        return self.fc3(x)


class MLP(nn.Module):
    """Flatten → fc → act → fc → act → fc. Input (N, C, H, W) → logits (N, L)."""

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        *,
        hidden: Sequence[int] = (256, 128),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        d = math.prod(input_shape)
        self.fc1 = nn.Linear(d, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


class NiN(nn.Module):
    """Network-in-Network-style all-convolutional net. Input (N, C, H, W) → logits (N, L).

    Parameters
    ----------
    input_shape : (C, H, W); kernels are 5×5 (3×3 for inputs under 16 pixels), "same" padding
    num_classes : L
    channels : (c1, c2) widths of the two mlpconv blocks
    """

    def __init__(
        self,
        input_shape: Sequence[int] = (1, 28, 28),
        num_classes: int = 10,
        *,
        channels: Sequence[int] = (32, 64),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        c, h, w = input_shape
        k = 3 if min(h, w) < 16 else 5

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(i, o, k, padding=k // 2),
                nn.BatchNorm2d(o),
                _activation(activation),
                nn.Conv2d(o, o, 1),
                _activation(activation),
                nn.MaxPool2d(2),
            )

        self.block1 = block(c, channels[0])
        self.block2 = block(channels[0], channels[1])
        self.head = nn.Conv2d(channels[1], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.block2(self.block1(x))).mean(dim=(2, 3))


class _BasicBlock(nn.Module):
    """CIFAR ResNet basic block: conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut, → ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016, §4.2): depth 6n+2, three stages of n basic blocks.

    Stem ``conv1`` (3×3, ``width`` channels, no bias) + ``bn1`` + ReLU; ``layer1`` / ``layer2`` /
    ``layer3`` of n :class:`_BasicBlock` with width, 2·width, 4·width channels (stride 2 at the
    start of layer2 and layer3, where the shortcut ``downsample`` is a 1×1 conv without bias
    (``.0``) + BN (``.1``)); global average pool; ``fc`` (L, 4·width). ResNet-20: n = 3, width
    16, 0.27 M parameters. The layer names match the PyHessian / bearpaw CIFAR ResNet, so its
    state_dicts load directly (after stripping ``module.``).

    Shapes: input (N, C, H, W) normalised pixels → logits (N, L).
    """

    def __init__(
        self, input_shape: Sequence[int] = (3, 32, 32), num_classes: int = 10, *, depth: int = 20, width: int = 16
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise InvalidInputError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, 32, …), got {depth}")
        n = (depth - 2) // 6
        c = int(input_shape[0])
        self.conv1 = nn.Conv2d(c, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        planes = [width, 2 * width, 4 * width]
        in_planes = width
        stages = []
        for i, p in enumerate(planes):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(in_planes, p, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


#: The registry: name → builder(input_shape, L, **kwargs). The zoo trains the first four;
#: ``resnet20`` is for uploaded weights.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "lenet": lambda shape, L, **kw: LeNet(shape, L, **kw),
    "lenet-softplus": lambda shape, L, **kw: LeNet(shape, L, activation="softplus", **kw),
    "mlp": lambda shape, L, **kw: MLP(shape, L, **kw),
    "nin": lambda shape, L, **kw: NiN(shape, L, **kw),
    "resnet20": lambda shape, L, **kw: CifarResNet(shape, L, depth=20, **kw),
}


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def architecture_names() -> list[str]:
    """Names accepted by :func:`build_architecture`: :data:`ARCHITECTURES` and ``"torchvision:<name>"``.

    The torchvision names are its classification models (``torchvision.models.list_models``);
    a plain ``"resnet18"`` works too when it is not a name of the registry.
    """
    return sorted(ARCHITECTURES) + [f"torchvision:{n}" for n in _torchvision_names()]


def build_architecture(
    name: str, *, input_shape: Sequence[int], num_classes: int, random_state: int = 0, **kwargs: Any
) -> nn.Module:
    """An untrained network ``name`` for ``input_shape`` (C, H, W) and ``num_classes`` outputs.

    Looked up in order: :data:`ARCHITECTURES` (``lenet``, ``lenet-softplus``, ``mlp``, ``nin``,
    ``resnet20``), then torchvision's classification models (``"torchvision:resnet18"``, or plain
    ``"resnet18"``), built with ``torchvision.models.get_model(name, weights=None,
    num_classes=num_classes)`` (nothing is downloaded; torchvision is imported only for such names).
    ``kwargs`` go to the constructor (e.g. ``channels=(32, 64), hidden=(256, 128)`` for LeNet).

    Parameters
    ----------
    random_state : int
        Seed of the initial weights: drawn after ``torch.manual_seed(random_state)`` inside
        ``torch.random.fork_rng``, so the global RNG is untouched.

    Raises
    ------
    UnknownNameError
        no architecture of that name (the message lists the registry and examples).
    InvalidInputError
        an argument the architecture itself refuses (activation, ResNet depth, ``random_state``).
    ModelLoadError
        the constructor failed for these arguments (message has its first line).
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownNameError(
            f"architecture must be a name such as 'lenet', 'resnet20' or 'torchvision:resnet18', got {name!r}"
        )
    if isinstance(random_state, bool) or not isinstance(random_state, int):
        raise InvalidInputError(f"random_state (seed of the initial weights) must be an int, got {random_state!r}")
    key = name.strip()
    tv_name = None
    if key.lower().startswith("torchvision:"):
        tv_name = key.split(":", 1)[1].strip()
    elif key not in ARCHITECTURES:
        tv_name = key
    shape = tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        try:
            if tv_name is None:
                return ARCHITECTURES[key](shape, int(num_classes), **kwargs)
            tv_names = _torchvision_names()
            if tv_name not in tv_names:
                raise UnknownNameError(
                    f"unknown architecture {name!r}; expected one of {', '.join(sorted(ARCHITECTURES))}, "
                    f"or a torchvision classification model as 'torchvision:<name>' ({len(tv_names)} names, "
                    "e.g. resnet18, vgg11, mobilenet_v2)"
                )
            import torchvision

            return torchvision.models.get_model(tv_name, weights=None, num_classes=int(num_classes), **kwargs)
        except (UnknownNameError, InvalidInputError):
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"could not build architecture {name!r} for input_shape {shape} and {num_classes} classes "
                f"(kwargs {kwargs}): {first_line(exc)}"
            ) from exc
