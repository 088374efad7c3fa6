"""Argument checks and argument types shared across geometry/ (one place, one message for each mistake).

Every check raises :class:`~geometry.errors.InvalidInputError` with a message that names the
argument, says what was expected and quotes what was given (DESIGN §3, "Errors say what was
expected and what was given"). Each returns the value in the one form the callers compute with
(an ``int``, a ``float``, a CPU ``int64`` label vector, a ``float64`` basis, ...), so a caller
writes ``m = check_int("m", m, 1)`` and never re-converts.

The :class:`typing.Literal` aliases name the closed sets of strings the atlas accepts — the
Hessian-vector product methods, the h presets, where the boundary Hessian is taken, ... — once;
the matching tuples (``CURVATURE_METHODS``, ...) are derived from them, so a signature, a settings
field, a ``choices=`` list and a check can never disagree.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Literal, Protocol, TypeAlias, TypeVar, get_args

import numpy as np
import torch

from .errors import InvalidInputError

__all__ = [
    # types
    "Norm",
    "RandomState",
    "HasBasis",
    "BasisLike",
    "CurvatureMethod",
    "HPreset",
    "BoundaryPoint",
    "EigenSolver",
    "SubspaceKind",
    "Split",
    "UAPMode",
    "CURVATURE_METHODS",
    "H_PRESETS",
    "BOUNDARY_POINTS",
    "EIGEN_SOLVERS",
    "SUBSPACE_KINDS",
    "SPLITS",
    "UAP_MODES",
    # checks
    "as_generator",
    "check_norm",
    "check_int",
    "check_float",
    "check_share",
    "check_choice",
    "check_labels",
    "check_basis",
    "check_images",
    "check_image",
]

# ---------------------------------------------------------------------------------------- types
#: An ℓp norm ``p``: 2 or ``math.inf`` (a ``Literal`` cannot hold inf; :func:`check_norm` enforces it).
Norm: TypeAlias = float
#: Where randomness comes from (DESIGN §3): an int seed or a ``torch.Generator`` (used as is).
RandomState: TypeAlias = int | np.integer | torch.Generator


class HasBasis(Protocol):
    """Anything with a ``(d, m)`` orthonormal ``basis`` (a curvature ``Subspace``)."""

    @property
    def basis(self) -> torch.Tensor: ...


#: A subspace given as its ``(d, m)`` orthonormal basis (tensor or array) or as an object holding one.
BasisLike: TypeAlias = torch.Tensor | np.ndarray | HasBasis

#: How a Hessian-vector product of the boundary function F is computed (:mod:`geometry.hessian`):
#: finite differences of ∇F at scale h (the authors' code), the exact product of a smooth twin
#: (ReLU → softplus of sharpness β), or the exact second derivative (zero on a ReLU network).
CurvatureMethod: TypeAlias = Literal["finite_difference", "smoothed", "exact"]
#: How the finite-difference scale h is chosen (:class:`geometry.study.settings.HScale`): the authors'
#: 10·√d/512, h = ξ at the noise share, or a given value.
HPreset: TypeAlias = Literal["authors", "xi", "custom"]
#: Where the boundary Hessian is taken: ``z = x + r(x)`` or ``x + 0.8·r(x)`` (the authors' code).
BoundaryPoint: TypeAlias = Literal["boundary", "inside"]
#: Eigen-solver of the curved subspace: ``"auto"`` picks, ``"eigsh"`` (Lanczos) or ``"dense"``.
EigenSolver: TypeAlias = Literal["auto", "eigsh", "dense"]
#: Kind of a subspace of the input space: curved S_c, flat S_f, or a random baseline.
SubspaceKind: TypeAlias = Literal["curved", "flat", "random"]
#: A dataset split.
Split: TypeAlias = Literal["train", "test"]
#: How the UAP algorithm visits the points: one DeepFool call per batch, or point by point (CVPR 2017 Alg. 1).
UAPMode: TypeAlias = Literal["batched", "sequential"]

CURVATURE_METHODS: tuple[CurvatureMethod, ...] = get_args(CurvatureMethod)
H_PRESETS: tuple[HPreset, ...] = get_args(HPreset)
BOUNDARY_POINTS: tuple[BoundaryPoint, ...] = get_args(BoundaryPoint)
EIGEN_SOLVERS: tuple[EigenSolver, ...] = get_args(EigenSolver)
SUBSPACE_KINDS: tuple[SubspaceKind, ...] = get_args(SubspaceKind)
SPLITS: tuple[Split, ...] = get_args(Split)
UAP_MODES: tuple[UAPMode, ...] = get_args(UAPMode)

_S = TypeVar("_S", bound=str)


# ---------------------------------------------------------------------------------------- scalars
def as_generator(random_state: RandomState | None, *, allow_none: bool = False) -> torch.Generator:
    """A ``torch.Generator`` from ``random_state``: an int seed, or a generator (used as is).

    Randomness in the atlas always goes through such a generator, never the global RNG (DESIGN §3).

    Parameters
    ----------
    random_state : int, numpy integer, torch.Generator, or None (only with ``allow_none``: a fresh
        generator seeded from the operating system's entropy — not reproducible)

    Raises
    ------
    InvalidInputError
        anything else (a bool, a float, a string; None unless allowed).
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is None and allow_none:
        g = torch.Generator()
        g.seed()
        return g
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        allowed = "an int, a torch.Generator or None" if allow_none else "an int or a torch.Generator"
        raise InvalidInputError(f"random_state must be {allowed}, got {random_state!r}")
    return torch.Generator().manual_seed(int(random_state))


def check_norm(norm: object) -> float:
    """The ℓp norm ``p`` as a float, 2.0 or inf (``"inf"`` and ``2`` are accepted).

    Raises
    ------
    InvalidInputError
        any other value.
    """
    if isinstance(norm, bool):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}")
    try:
        p = float(norm)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}") from None
    if p != 2.0 and not (math.isinf(p) and p > 0):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}")
    return p


def check_int(name: str, value: object, minimum: int, maximum: int | None = None, *, plain: bool = False) -> int:
    """``value`` as an int in ``[minimum, maximum]`` (bools refused).

    Parameters
    ----------
    name : the argument's name, for the message
    value : an int, a numpy integer or anything with ``__index__`` (a 0-d integer tensor)
    minimum, maximum : inclusive bounds (``maximum=None``: no upper bound)
    plain : accept only a Python ``int`` (settings hold plain JSON values)

    Raises
    ------
    InvalidInputError
        not an integer, or out of range.
    """
    if maximum is not None:
        want = f"an integer in [{minimum}, {maximum}]"
    elif minimum in (0, 1):
        want = f"a {'positive' if minimum else 'non-negative'} integer (≥ {minimum})"
    else:
        want = f"an integer ≥ {minimum}"
    try:
        if isinstance(value, bool) or (plain and not isinstance(value, int)):
            raise TypeError
        out = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInputError(f"{name} must be {want}, got {value!r}") from None
    if out < minimum or (maximum is not None and out > maximum):
        raise InvalidInputError(f"{name} must be {want}, got {value!r}")
    return int(out)


def check_float(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    finite: bool = True,
    plain: bool = False,
) -> float:
    """``value`` as a float in the interval given by ``low`` / ``high`` (bools and NaN refused).

    Parameters
    ----------
    name : the argument's name, for the message
    value : anything ``float()`` accepts (int, float, numpy scalar, 0-d tensor, "0.5")
    low, high : bounds (None: unbounded on that side); ``low_open`` / ``high_open`` exclude them
    finite : refuse ±inf when no upper bound excludes it (``finite=False``: only NaN is refused
        besides the bounds)
    plain : accept only a Python ``int`` or ``float`` (settings hold plain JSON values)

    Raises
    ------
    InvalidInputError
        not a number, NaN, out of the interval, or infinite where a finite number is needed.
    """
    if isinstance(value, bool) or (plain and not isinstance(value, (int, float))):
        raise InvalidInputError(f"{name} must be a number, got {value!r}")
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if math.isnan(out):
        raise InvalidInputError(f"{name} must be a number, got NaN")
    if low is not None and high is not None:
        want = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    elif low is not None:
        want = f"a {'finite ' if finite else ''}number {'>' if low_open else '≥'} {low:g}"
    elif high is not None:
        want = f"a number {'<' if high_open else '≤'} {high:g}"
    else:
        want = "a finite number" if finite else "a number"
    if (
        (low is not None and (out < low or (low_open and out == low)))
        or (high is not None and (out > high or (high_open and out == high)))
        or (finite and math.isinf(out) and high is None)
    ):
        raise InvalidInputError(f"{name} must be {want}, got {value!r}")
    return out


def check_share(name: str, value: object) -> float:
    """``value`` as a share in (0, 1] (a fraction of points, a quantile level).

    Raises
    ------
    InvalidInputError
        not a number (bools refused), or outside (0, 1].
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(f"{name} must be a share in (0, 1], got {value!r}")
    out = float(value)
    if not 0.0 < out <= 1.0:  # NaN fails too
        raise InvalidInputError(f"{name} must be a share in (0, 1], got {value!r}")
    return out


def check_choice(name: str, value: object, choices: Sequence[_S]) -> _S:
    """``value`` if it is one of ``choices`` (typically a ``Literal``'s tuple, e.g. :data:`CURVATURE_METHODS`).

    Raises
    ------
    InvalidInputError
        any other value; the message lists the choices.
    """
    for c in choices:
        if isinstance(value, str) and value == c:
            return c
    raise InvalidInputError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


# ---------------------------------------------------------------------------------------- tensors
def check_labels(labels: object, n: int, *, name: str = "labels") -> torch.Tensor:
    """One integer label per image: an ``(n,)`` CPU int64 tensor.

    Parameters
    ----------
    labels : (n,) integer tensor / array / sequence (a 0-d one when ``n == 1``)
    n : the number of images

    Raises
    ------
    InvalidInputError
        wrong shape, floating-point or bool dtype, or not convertible to a tensor.
    """
    try:
        y = torch.as_tensor(labels).detach()
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(
            f"{name} must be an integer tensor of shape ({n},) (one label per image), got {type(labels).__name__}"
        ) from None
    if y.dim() == 0 and n == 1:
        y = y.reshape(1)
    if tuple(y.shape) != (n,) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise InvalidInputError(
            f"{name} must be an integer tensor of shape ({n},) (one label per image), got {tuple(y.shape)} {y.dtype}"
        )
    return y.cpu().long()


def check_basis(
    basis: BasisLike | object, *, name: str = "basis", d: int | None = None, atol: float = 1e-5
) -> torch.Tensor:
    """A ``(d, M)`` float64 CPU matrix with orthonormal columns, ``M ≥ 1``.

    Parameters
    ----------
    basis : (d, M) tensor / array, or an object with a ``.basis`` attribute (a curvature
        ``Subspace``)
    name : the argument's name, for the message
    d : the dimension the columns must have (None: any)
    atol : the largest accepted ``max |BᵀB − I|``

    Raises
    ------
    InvalidInputError
        not a matrix, wrong shape, NaN / inf entries, or columns not orthonormal (the message
        gives the deviation and how to fix it).
    """
    if hasattr(basis, "basis") and not isinstance(basis, (torch.Tensor, np.ndarray)):
        basis = basis.basis
    try:
        B = torch.as_tensor(basis).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise InvalidInputError(
            f"{name} must be a (d, M) tensor with orthonormal columns (or a Subspace), got {type(basis).__name__}"
        ) from None
    if B.dim() != 2 or B.shape[1] == 0 or (d is not None and B.shape[0] != d):
        want = f"({d}, M) (d = {d})" if d is not None else "(d, M)"
        raise InvalidInputError(f"{name} must have shape {want} with M ≥ 1, got {tuple(B.shape)}")
    if not torch.isfinite(B).all():
        raise InvalidInputError(f"{name} contains NaN or inf entries")
    err = float((B.T @ B - torch.eye(B.shape[1], dtype=torch.float64)).abs().max())
    if err > atol:
        raise InvalidInputError(
            f"{name} must have orthonormal columns (|BᵀB − I| ≤ {atol:g}), got max deviation {err:.2e}; "
            "orthonormalise it first (e.g. torch.linalg.qr)"
        )
    return B


def _as_tensor(x: object, name: str, want: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    try:
        return torch.as_tensor(x)
    except Exception as exc:
        raise InvalidInputError(f"{name} must be a tensor of shape {want}, got {type(x).__name__}") from exc


def check_images(
    x: object,
    input_shape: Sequence[int],
    *,
    allow_single: bool = False,
    allow_flat: bool = False,
    name: str = "x",
) -> torch.Tensor:
    """Validate a batch of images: a tensor of shape ``(N, *input_shape)``, floating point, finite.

    Parameters
    ----------
    x : (N, C, H, W) tensor / array (pixel space)
    input_shape : (C, H, W)
    allow_single : also accept one image of shape ``input_shape`` (returned as a batch of one)
    allow_flat : also accept ``(N, d)`` with ``d = C·H·W`` (reshaped to ``(N, C, H, W)``)
    name : the argument's name, for the message

    Returns
    -------
    (N, C, H, W) tensor — ``x`` itself (same dtype and device), reshaped where allowed.

    Raises
    ------
    InvalidInputError
        not a tensor / array, wrong shape, not floating point, or NaN / inf entries.
    """
    shape = tuple(int(s) for s in input_shape)
    dims = ", ".join(map(str, shape))
    d = math.prod(shape)
    want = f"(N, {dims})" + (f" or (N, {d})" if allow_flat else "")
    t = _as_tensor(x, name, want)
    if allow_single and tuple(t.shape) == shape:
        t = t.unsqueeze(0)
    if allow_flat and t.dim() == 2 and t.shape[1] == d:
        t = t.reshape(t.shape[0], *shape)
    if t.dim() != len(shape) + 1 or tuple(t.shape[1:]) != shape:
        raise InvalidInputError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InvalidInputError(f"{name} must be a floating-point tensor (pixels in [0, 1]), got dtype {t.dtype}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).flatten(1).any(1).sum())
        raise InvalidInputError(f"{name} contains NaN or inf values ({bad} of {len(t)} images)")
    return t


def check_image(v: object, input_shape: Sequence[int], *, name: str = "v") -> torch.Tensor:
    """One image-shaped tensor (a perturbation): ``input_shape``, ``(1, *input_shape)`` or ``(d,)``.

    Returns
    -------
    (C, H, W) tensor — ``v`` reshaped (same dtype and device), detached.

    Raises
    ------
    InvalidInputError
        not a tensor / array, another shape, not floating point, or NaN / inf entries.
    """
    shape = tuple(int(s) for s in input_shape)
    d = math.prod(shape)
    want = f"{shape} or ({d},)"
    t = _as_tensor(v, name, want)
    if tuple(t.shape) == (1, *shape) or tuple(t.shape) == (d,):
        t = t.reshape(shape)
    if tuple(t.shape) != shape:
        raise InvalidInputError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InvalidInputError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if not torch.isfinite(t).all():
        raise InvalidInputError(f"{name} contains NaN or inf values")
    return t.detach()
