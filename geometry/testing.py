"""Analytic classifiers with known decision-boundary geometry, in float64.

They are used by the tests (DESIGN §5) and are handy for teaching: every quantity the atlas
computes has a closed form on them.

* :func:`affine_classifier` — ``f(x) = W x + b``: flat boundaries, DeepFool exact in one step
  (``r`` is the orthogonal projection onto the nearest pairwise hyperplane), zero curvature, unit
  normals spanning at most L−1 dimensions (paper §3, Remark 1).
* :func:`sphere_classifier` — class 0 inside the ball ``‖x − c‖ < R``, class 1 outside, through
  ``F = f_1 − f_0 = ‖x − c‖² − R²``. Seen from a point inside, the other class wraps around it:
  positive curvature ``κ = 1/R`` along every tangent direction (DESIGN §4 sign convention).
* :func:`quadratic_classifier` — ``F(x) = gᵀ(x − x0) + ½ (x − x0)ᵀ A (x − x0)`` with a planted
  symmetric ``A``: the boundary Hessian is ``A`` everywhere, so eigen-solvers must recover its
  spectrum.

All take ``input_shape`` (C, H, W) and work on flattened pixels; logits have shape (N, L).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .classifier import Classifier, make_classifier

__all__ = ["FunctionModule", "affine_classifier", "sphere_classifier", "quadratic_classifier"]


class FunctionModule(nn.Module):
    """``nn.Module`` computing logits from the flattened input with a plain function.

    Tensors the function closes over should be registered through ``tensors`` so they move with
    the module and appear as buffers (never as trainable parameters).
    """

    def __init__(self, fn: Callable[..., torch.Tensor], **tensors: torch.Tensor):
        super().__init__()
        self.fn = fn
        self._names = tuple(tensors)
        for k, v in tensors.items():
            self.register_buffer(k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        return self.fn(flat, *(getattr(self, k) for k in self._names))


def _shape_d(input_shape: Sequence[int]) -> tuple[tuple[int, int, int], int]:
    shape = tuple(int(s) for s in input_shape)
    d = 1
    for s in shape:
        d *= s
    return shape, d  # type: ignore[return-value]


def affine_classifier(
    W: torch.Tensor, b: torch.Tensor, *, input_shape: Sequence[int], name: str = "affine"
) -> Classifier:
    """``f(x) = W x + b`` on flattened pixels.

    Parameters
    ----------
    W : (L, d) tensor, b : (L,) tensor — cast to float64.
    input_shape : (C, H, W) with C·H·W = d.
    bounds are (-inf, inf) in effect: use inputs anywhere; the nominal bounds are (0, 1).
    """
    shape, d = _shape_d(input_shape)
    W = torch.as_tensor(W, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if W.shape[1] != d or b.shape != (W.shape[0],):
        raise ValueError(f"W must be (L, {d}) and b (L,), got {tuple(W.shape)} and {tuple(b.shape)}")
    module = FunctionModule(lambda x, W_, b_: x @ W_.T + b_, W_=W, b_=b)
    return make_classifier(module, input_shape=shape, class_names=[f"class {i}" for i in range(W.shape[0])], name=name)


def sphere_classifier(
    center: torch.Tensor, radius: float, *, input_shape: Sequence[int], name: str = "sphere"
) -> Classifier:
    """Two classes: 0 inside the ball of ``radius`` around ``center`` (shape (C, H, W) or (d,)), 1 outside.

    Logits ``(0, ‖x − c‖² − R²)``, so the boundary function of a point inside is
    ``F = ‖x − c‖² − R²``: ``∇F = 2(x − c)``, Hessian ``2I``, normal curvature ``+1/R``.
    """
    shape, d = _shape_d(input_shape)
    c = torch.as_tensor(center, dtype=torch.float64).reshape(-1)
    if c.numel() != d:
        raise ValueError(f"center must have {d} entries, got {c.numel()}")
    r2 = torch.tensor(float(radius) ** 2, dtype=torch.float64)

    def fn(x: torch.Tensor, c_: torch.Tensor, r2_: torch.Tensor) -> torch.Tensor:
        f1 = ((x - c_) ** 2).sum(1) - r2_
        return torch.stack([torch.zeros_like(f1), f1], dim=1)

    module = FunctionModule(fn, c_=c, r2_=r2)
    return make_classifier(module, input_shape=shape, class_names=["inside", "outside"], name=name)


def quadratic_classifier(
    A: torch.Tensor,
    g: torch.Tensor,
    x0: torch.Tensor,
    *,
    input_shape: Sequence[int],
    name: str = "quadratic",
) -> Classifier:
    """Two classes through ``F(x) = gᵀ(x − x0) + ½ (x − x0)ᵀ A (x − x0)``; logits ``(0, F)``.

    ``A`` (d, d) symmetric is the planted boundary Hessian, ``g`` (d,) the gradient at ``x0``
    (so ``x0`` lies on the boundary and ``g/‖g‖`` is the normal there).
    """
    shape, d = _shape_d(input_shape)
    A = torch.as_tensor(A, dtype=torch.float64)
    A = 0.5 * (A + A.T)
    g = torch.as_tensor(g, dtype=torch.float64).reshape(-1)
    x0 = torch.as_tensor(x0, dtype=torch.float64).reshape(-1)
    if A.shape != (d, d) or g.numel() != d or x0.numel() != d:
        raise ValueError(f"A must be ({d}, {d}), g and x0 must have {d} entries")

    def fn(x: torch.Tensor, A_: torch.Tensor, g_: torch.Tensor, x0_: torch.Tensor) -> torch.Tensor:
        y = x - x0_
        F = y @ g_ + 0.5 * ((y @ A_) * y).sum(1)
        return torch.stack([torch.zeros_like(F), F], dim=1)

    module = FunctionModule(fn, A_=A, g_=g, x0_=x0)
    return make_classifier(module, input_shape=shape, class_names=["class 0", "class 1"], name=name)
