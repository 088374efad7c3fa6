"""Benchmark: sound spectral-norm bounds against power iteration and the dense SVD (geometry.lipschitz).

For every Linear / Conv2d layer of the zoo's architectures (initialised weights, or the trained zoo
network with ``--trained``), in the same run:

* power iteration (50 steps on AᵀA through conv2d and its adjoint): the estimate, a lower bound;
* the Fourier / Gram-iteration bound (circular convolution containing the zero-padded one; memory
  O(layer size));
* the dense Gram operator's exact spectrum (only when the input has ≤ DENSE_LIMIT entries);
* for layers of ≤ 1,500 input entries, the dense matrix's SVD (the exact σ₁, reference only).

Reported: bound / σ₁ (≥ 1 always; the sound bound the library uses is the smaller of the two bounds),
power / σ₁ (≤ 1), and wall times.

Usage::

    python -m benchmarks.lipschitz            # digits and MNIST LeNet, NiN; CIFAR-10 LeNet (Fourier only)
"""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from geometry.architectures import build_architecture  # noqa: E402
from geometry.lipschitz import (  # noqa: E402
    DENSE_LIMIT,
    _conv_fourier_bound,
    _dense_gram_bound,
    _power_iteration,
    gram_iteration,
)

CASES = [
    ("digits lenet", "lenet", (1, 8, 8), {}),
    ("digits nin", "nin", (1, 8, 8), {}),
    ("mnist lenet", "lenet", (1, 28, 28), {}),
    ("cifar10 lenet", "lenet", (3, 32, 32), {"channels": (32, 64), "hidden": (256, 128)}),
]


def _timed(f, *args, **kwargs):
    t = time.perf_counter()
    out = f(*args, **kwargs)
    return out, time.perf_counter() - t


def _fmt(v, ref):
    return "—" if v is None else f"{v / ref:.4f}"


def _ms(t):
    return "—" if t is None else f"{1000 * t:.0f} ms"


def _layers(model: nn.Module, shape):
    found = []
    hooks = [
        m.register_forward_hook(lambda m, i, o, name=name: found.append((name, m, tuple(i[0].shape[1:]))))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.Conv2d))
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape, dtype=torch.float64))
    for h in hooks:
        h.remove()
    return found


def main() -> int:
    torch.set_num_threads(2)
    print(
        "| network | layer | input | σ₁ (dense SVD) | power/σ₁ | Fourier/σ₁ | dense-Gram/σ₁ | t power | t Fourier | t dense-Gram |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, arch, shape, kw in CASES:
        model = build_architecture(arch, input_shape=shape, num_classes=10, random_state=0, **kw).double()
        for name, m, in_shape in _layers(model, shape):
            W = m.weight.detach().double()
            if isinstance(m, nn.Linear):
                op = partial(F.linear, weight=W)
            else:
                op = partial(
                    F.conv2d,
                    weight=W,
                    bias=None,
                    stride=m.stride,
                    padding=m.padding,
                    dilation=m.dilation,
                    groups=m.groups,
                )
            gen = torch.Generator().manual_seed(0)
            power, t_power = _timed(_power_iteration, op, in_shape, n_iter=50, generator=gen)
            if isinstance(m, nn.Linear):
                fourier, t_fourier = _timed(lambda w: float(gram_iteration(w)), W)
            else:
                fourier, t_fourier = _timed(_conv_fourier_bound, m, in_shape)
            d = math.prod(in_shape)
            dense, t_dense = (None, None)
            if d <= DENSE_LIMIT and isinstance(m, nn.Conv2d):
                dense, t_dense = _timed(_dense_gram_bound, op, in_shape)
            sigma = None
            if d <= 1500:
                E = torch.eye(d, dtype=torch.float64).reshape(d, *in_shape)
                sigma = float(torch.linalg.matrix_norm(op(E).reshape(d, -1), ord=2))
            ref = sigma or power
            fmt = partial(_fmt, ref=ref)
            ms = _ms
            print(
                f"| {label} | {name} | {'×'.join(map(str, in_shape))} | {'—' if sigma is None else f'{sigma:.4f}'} | "
                f"{fmt(power)} | {fmt(fourier)} | {fmt(dense)} | {ms(t_power)} | {ms(t_fourier)} | {ms(t_dense)} |"
            )
    print("\nRatios are to the dense SVD where it was computed, else to the power-iteration estimate.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
