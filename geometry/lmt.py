"""Lipschitz-margin training (LMT; Tsuzuku, Sato, Sugiyama, NeurIPS 2018, §4 and Alg. 1).

During training every logit but the true one is raised by ``√2 · c · L`` (c the target margin in
pixel units, L a differentiable estimate of the network's Lipschitz constant), so the network learns
margins that certify a radius of about c (:mod:`geometry.certify`). L is the product of the layers'
spectral norms, each estimated by *one* power iteration per step on the layer's operator (a
convolution through ``conv2d`` and its adjoint), the vectors kept across steps (the paper's
Alg. 1), times the normalisation's ``1 / min std``; ReLU and non-overlapping max pooling count 1.

The estimate is only used for training; a trained network is certified with the sound bound of
:func:`geometry.lipschitz.lipschitz_bound`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import InvalidInputError
from .regimes import TRAINING_REGIMES, RegimeContext

__all__ = ["LMTState", "lmt_logits", "lmt_state", "lmt_step", "lipschitz_estimate"]

_FREE = (nn.ReLU, nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout)


@dataclass
class LMTState:
    """The power-iteration vectors kept across training steps (one per Linear / Conv2d layer).

    Attributes
    ----------
    layers : list of (module, input shape without batch)
    vectors : list of (1, *input shape) float32 unit tensors
    scale : float — the normalisation's ``1 / min std``
    """

    layers: list
    vectors: list
    scale: float


def lmt_state(model: nn.Module, input_shape: Sequence[int], std: Sequence[float], *, random_state: int = 0) -> LMTState:
    """Record the Linear / Conv2d layers of ``model`` with their input shapes; random start vectors.

    Raises
    ------
    InvalidInputError
        a layer whose constant is not 1 (BatchNorm, average pooling, …): LMT here trains chains of
        Linear / Conv2d layers with ReLU and max pooling (LeNet, MLP), and a layer used twice.
    """
    layers: list = []
    seen: set = set()
    for name, m in model.named_modules():
        if len(list(m.children())) == 0 and not isinstance(m, (nn.Linear, nn.Conv2d, *_FREE)):
            raise InvalidInputError(
                f"LMT training supports Linear, Conv2d, ReLU and max pooling; {name!r} is a {type(m).__name__}"
            )
        if isinstance(m, nn.MaxPool2d) and m.stride is not None and m.stride != m.kernel_size:
            raise InvalidInputError(f"LMT training needs non-overlapping max pooling; {name!r} overlaps")
    hooks = []

    def record(m: nn.Module, inputs: tuple[torch.Tensor, ...], _: object) -> None:
        if m in seen:
            raise InvalidInputError(
                f"LMT training needs each Linear / Conv2d layer used once; {type(m).__name__} is reused"
            )
        seen.add(m)
        layers.append((m, tuple(inputs[0].shape[1:])))

    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            hooks.append(m.register_forward_hook(record))
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, *input_shape))
            model.train(was)
    finally:
        for h in hooks:
            h.remove()
    gen = torch.Generator().manual_seed(int(random_state))
    vectors = []
    for _, shape in layers:
        v = torch.randn(1, *shape, generator=gen)
        vectors.append(v / v.norm())
    return LMTState(layers=layers, vectors=vectors, scale=1.0 / min(float(s) for s in std))


def _apply(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.Linear):
        return F.linear(x, m.weight)
    assert isinstance(m, nn.Conv2d)
    return m._conv_forward(x, m.weight, None)


def lipschitz_estimate(state: LMTState) -> torch.Tensor:
    """One power iteration per layer (vectors updated in place), then L = scale · Π ‖A_i u_i‖.

    Differentiable with respect to the weights (the vectors are constants), as in spectral
    normalisation; a lower estimate of each σ₁ that tightens over the steps.
    """
    L = torch.tensor(state.scale)
    for i, (m, _) in enumerate(state.layers):
        u = state.vectors[i]
        with torch.no_grad():
            u_req = u.detach().requires_grad_(True)
            with torch.enable_grad():
                Au = _apply(m, u_req)
                (v,) = torch.autograd.grad(Au, u_req, Au)  # AᵀA u
            u = v / v.norm().clamp_min(1e-12)
            state.vectors[i] = u
        L = L * _apply(m, u).norm()
    return L


def lmt_logits(logits: torch.Tensor, labels: torch.Tensor, L: torch.Tensor, c: float) -> torch.Tensor:
    """LMT's training logits: ``f_j + √2 · c · L`` for every j ≠ y (Tsuzuku et al., Alg. 1, ℓ2)."""
    if c < 0 or not math.isfinite(c):
        raise InvalidInputError(f"the LMT margin constant c must be a finite number ≥ 0, got {c}")
    add = math.sqrt(2.0) * c * L * (1.0 - F.one_hot(labels, logits.shape[1]).to(logits.dtype))
    return logits + add


# ---------------------------------------------------------------------------- the zoo's "lmt" regime
_STATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _normalisation_scale(ctx: RegimeContext, shape: tuple) -> float:
    """max 1/std of the normalisation inside ``ctx.network``, read from the model's input on probes."""
    seen: list = []
    hook = ctx.model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            ctx.network(torch.zeros(1, *shape))
            ctx.network(torch.ones(1, *shape))
    finally:
        hook.remove()
    return float((seen[1] - seen[0]).abs().max())


def lmt_step(ctx: RegimeContext, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """One LMT training step (the zoo's ``regime="lmt"``; parameter ``c``, the target margin in pixels).

    ``CE(f(x) + √2 · c · L · (1 − onehot(y)), y)`` with L from :func:`lipschitz_estimate` (one power
    iteration per layer per step, the vectors kept across steps for this model).
    """
    c = float(ctx.params.get("c", 0.1))
    state = _STATES.get(ctx.model)
    if state is None:
        shape = tuple(xb.shape[1:])
        state = lmt_state(ctx.model, shape, [1.0], random_state=0)
        state.scale = _normalisation_scale(ctx, shape)
        _STATES[ctx.model] = state
    L = lipschitz_estimate(state)
    return F.cross_entropy(lmt_logits(ctx.network(xb), yb, L, c), yb)


TRAINING_REGIMES["lmt"] = lmt_step
