"""Masking flags: when a white-box robustness number cannot be trusted, say so, and say what to do.

Gradient masking makes every gradient-based number (PGD accuracy, DeepFool's ‖r‖, APGD) look
better than the network is (Athalye, Carlini, Wagner, ICML 2018). AutoAttack ships automatic checks
for the usual causes (Croce & Hein, ICML 2020; the package's ``flags_doc.md``); this module
re-states them as typed :class:`MaskingFlag` values, each with its measured evidence and a remedy,
plus two of the atlas's own:

============================== ===============================================================
code                           raised when
============================== ===============================================================
``randomised_output``          repeated forward passes on the same input give different logits
``probability_output``         the outputs look like probabilities (in [0, 1], summing to 1)
``zero_gradient``              the loss gradient is exactly zero at some start points
``black_box_wins``             a gradient-free attack breaks points the white-box attacks left
``dynamic_forward``            the forward pass itself computes gradients (test-time optimisation)
``deepfool_fails``             DeepFool finds no adversarial on more than 1 % of the points
``certificate_exceeds_attack`` a sound certified radius exceeds a successful attack's radius
============================== ===============================================================

:func:`model_flags` runs the checks that need only the model (the first, second, third and fifth);
:func:`ensemble_flags`, :func:`deepfool_flags` and :func:`certificate_flags` read results computed
elsewhere. None of them changes the model.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .classifier import Classifier, check_images
from .errors import InvalidInputError
from .validation import check_int

__all__ = [
    "FLAG_CODES",
    "REMEDIES",
    "MaskingFlag",
    "model_flags",
    "ensemble_flags",
    "deepfool_flags",
    "certificate_flags",
]

#: every flag this module raises, in the order above
FLAG_CODES = (
    "randomised_output",
    "probability_output",
    "zero_gradient",
    "black_box_wins",
    "dynamic_forward",
    "deepfool_fails",
    "certificate_exceeds_attack",
)

#: what a user should do about each flag
REMEDIES = {
    "randomised_output": (
        "The classifier is randomised (dropout left on, input noise, stochastic layers): a single-sample "
        "gradient is noise. Put the model in eval mode if the randomness is unintended; otherwise evaluate "
        "with Expectation over Transformation (AutoAttack's 'rand' version: APGD with 20 EOT samples)."
    ),
    "probability_output": (
        "The network returns probabilities, not logits: the softmax saturates and the cross-entropy's "
        "gradient vanishes on confident points. Remove the final softmax (use the logits) and evaluate again."
    ),
    "zero_gradient": (
        "Some points have an exactly zero gradient (quantised or thresholded inputs, saturated outputs): "
        "gradient attacks cannot move. Replace the non-differentiable step by the identity on the backward "
        "pass (BPDA, Athalye et al. 2018) or rely on the gradient-free attack's number."
    ),
    "black_box_wins": (
        "A gradient-free attack (Square) broke points the white-box attacks could not: the gradients are "
        "masked or obfuscated, and white-box robust accuracy is overestimated. Report the ensemble's "
        "number, run Square with more queries and restarts, and design an adaptive attack."
    ),
    "dynamic_forward": (
        "The forward pass computes gradients itself (test-time optimisation or purification): the "
        "standard attacks do not differentiate through that inner loop. Use an adaptive attack that "
        "accounts for it (Croce et al., ICML 2022)."
    ),
    "deepfool_fails": (
        "DeepFool found no adversarial example on more than 1 % of the points: its linearisation is "
        "misled (flat or masked gradients, a saturated box). Trust the ensemble's distance (FMN, DDN) over "
        "DeepFool's, raise max_iter, and check the other flags."
    ),
    "certificate_exceeds_attack": (
        "A certified radius exceeds the radius of a successful adversarial example: a certificate is "
        "unsound for this model (an unsupported layer, wrong bounds or normalisation) or the attack's "
        "example is invalid. This is a bug: report it with the model."
    ),
}


@dataclass(frozen=True)
class MaskingFlag:
    """One raised flag.

    Attributes
    ----------
    code : str — one of :data:`FLAG_CODES`.
    message : str — what was measured (numbers included).
    remedy : str — what to do (:data:`REMEDIES`).
    value : float — the measured quantity (fraction of points, largest difference, …).
    threshold : float — the value above which the flag is raised.
    points : tuple of int — indices of the points concerned (may be empty).
    """

    code: str
    message: str
    remedy: str
    value: float
    threshold: float
    points: tuple[int, ...] = ()


def _flag(code: str, message: str, value: float, threshold: float, points: Sequence[int] = ()) -> MaskingFlag:
    return MaskingFlag(code, message, REMEDIES[code], float(value), float(threshold), tuple(int(i) for i in points))


class _GradientCalls:
    """Counts calls of ``torch.autograd.grad`` / ``torch.autograd.backward`` while active (a profiler hook)."""

    def __init__(self) -> None:
        self.codes = {torch.autograd.grad.__code__, torch.autograd.backward.__code__}
        self.count = 0
        self._previous: Any = None

    def _hook(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code in self.codes:
            self.count += 1

    def __enter__(self) -> _GradientCalls:
        self._previous = sys.getprofile()
        sys.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.setprofile(self._previous)


def model_flags(
    clf: Classifier,
    xs: Tensor,
    labels: Tensor | None = None,
    *,
    n_repeats: int = 5,
    randomness_tol: float = 1e-4,
    probability_tol: float = 1e-5,
    batch_size: int = 250,
) -> tuple[MaskingFlag, ...]:
    """The checks that need only the model: randomised output, probabilities, zero gradients, dynamic forward.

    * ``randomised_output`` — ``n_repeats`` forward passes on the first ``batch_size`` points; raised
      when the predicted label changes or the largest ℓ2 distance between two runs' logits, each
      divided by its norm, exceeds ``randomness_tol`` (AutoAttack's check: 1e-4).
    * ``probability_output`` — every output in ``[−tol, 1 + tol]`` and every row summing to 1 within
      ``probability_tol``.
    * ``zero_gradient`` — ``∇_x CE(f(x), y)`` is exactly zero (sum of |g| = 0) at some point.
    * ``dynamic_forward`` — ``torch.autograd.grad`` or ``backward`` is called inside one forward pass.

    Parameters
    ----------
    clf : Classifier
    xs : (N, C, H, W) pixel-space images; labels : (N,) int or None (default ``k_hat(x)``).
    n_repeats : int ≥ 2; randomness_tol, probability_tol : float ≥ 0; batch_size : int ≥ 1.

    Returns
    -------
    tuple of MaskingFlag — empty when nothing was found.

    Raises
    ------
    InvalidInputError
        bad images, labels or settings.

    References
    ----------
    Croce & Hein, ICML 2020, and the AutoAttack package's automatic checks (``checks.py``,
    ``flags_doc.md``); Athalye, Carlini, Wagner, ICML 2018 (obfuscated gradients).
    """
    n_repeats = check_int("n_repeats", n_repeats, 2)
    batch_size = check_int("batch_size", batch_size, 1)
    x = check_images(xs, clf.input_shape, allow_single=True, name="xs").detach()
    if labels is None:
        y = clf.predict(x).cpu()
    else:
        y = torch.as_tensor(labels).reshape(-1).long().cpu()
        if y.shape != (x.shape[0],):
            raise InvalidInputError(f"labels must be {x.shape[0]} integers, got shape {tuple(y.shape)}")
    dev, dt = clf.device, clf.dtype
    flags: list[MaskingFlag] = []
    xb = x[:batch_size].to(device=dev, dtype=dt)
    yb = y[:batch_size].to(dev)

    # randomised output
    with torch.no_grad():
        runs = [clf.network(xb) for _ in range(n_repeats)]
    unit = [o / torch.linalg.vector_norm(o, dim=1, keepdim=True).clamp_min(1e-10) for o in runs]
    diff = max(
        float(torch.linalg.vector_norm(unit[a] - unit[b], dim=1).max())
        for a in range(n_repeats)
        for b in range(a + 1, n_repeats)
    )
    labels_moved = [int(i) for i in (torch.stack([o.argmax(1) for o in runs]) != runs[0].argmax(1)).any(0).nonzero()]
    if labels_moved or diff > randomness_tol:
        flags.append(
            _flag(
                "randomised_output",
                f"{n_repeats} forward passes on the same {len(xb)} points differ: largest distance between "
                f"normalised logits {diff:.3g} (tolerance {randomness_tol:g}), {len(labels_moved)} labels changed",
                diff,
                randomness_tol,
                labels_moved,
            )
        )

    # probabilities instead of logits
    out = runs[0]
    tol = probability_tol
    if bool(out.min() >= -tol) and bool(out.max() <= 1 + tol) and bool(((out.sum(1) - 1).abs() <= tol).all()):
        flags.append(
            _flag(
                "probability_output",
                f"the outputs lie in [0, 1] and sum to 1 on all {len(xb)} points checked: probabilities, not logits",
                float((out.sum(1) - 1).abs().max()),
                tol,
            )
        )

    # zero gradients at the start points, and a forward pass that differentiates
    xr = xb.clone().requires_grad_(True)
    with _GradientCalls() as calls, torch.enable_grad():
        logits = clf.network(xr)
    forward_calls = calls.count
    with torch.enable_grad():
        (g,) = torch.autograd.grad(F.cross_entropy(logits, yb, reduction="sum"), xr)
    zero = (g.flatten(1).abs().sum(1) == 0).nonzero().squeeze(1).tolist()
    if zero:
        flags.append(
            _flag(
                "zero_gradient",
                f"the cross-entropy's input gradient is exactly zero at {len(zero)} of {len(xb)} points",
                len(zero) / len(xb),
                0.0,
                zero,
            )
        )
    if forward_calls:
        flags.append(
            _flag(
                "dynamic_forward",
                f"one forward pass called torch.autograd {forward_calls} time(s): the model optimises at test time",
                forward_calls,
                0.0,
            )
        )
    return tuple(flags)


def ensemble_flags(
    result: Any, *, black_box: Sequence[str] = ("square",), threshold: float = 0.002
) -> tuple[MaskingFlag, ...]:
    """``black_box_wins`` from an :class:`geometry.autoattack.AutoAttackResult`.

    Raised when the gradient-free attacks were the first to break more than ``threshold`` of the
    points (AutoAttack's check: 0.2 %) — in the cascade they only see points every white-box attack
    left robust. With ``cascade=False`` the points a black-box attack broke and no white-box attack
    did are counted.

    Returns
    -------
    tuple of MaskingFlag — empty, or the one flag.
    """
    names = tuple(result.attacks)
    bb = [a for a, name in enumerate(names) if name in black_box]
    wb = [a for a, name in enumerate(names) if name not in black_box]
    if not bb or not wb or len(result) == 0:
        return ()
    success = result.success
    only_bb = success[bb].any(0) & ~success[wb].any(0)
    idx = only_bb.nonzero().squeeze(1).tolist()
    share = len(idx) / len(result)
    if share <= threshold:
        return ()
    return (
        _flag(
            "black_box_wins",
            f"{', '.join(names[a] for a in bb)} broke {len(idx)} of {len(result)} points ({share:.1%}) that "
            f"{', '.join(names[a] for a in wb)} left robust at ε = {result.eps:g}",
            share,
            threshold,
            idx,
        ),
    )


def deepfool_flags(
    converged: Tensor | np.ndarray | Sequence[bool], *, threshold: float = 0.01
) -> tuple[MaskingFlag, ...]:
    """``deepfool_fails``: DeepFool did not change the label on more than ``threshold`` of the points.

    ``converged`` : (N,) bool — e.g. :attr:`geometry.deepfool.DeepFoolResult.converged`.
    """
    ok = np.asarray(torch.as_tensor(converged).cpu(), dtype=bool).reshape(-1)
    if ok.size == 0:
        return ()
    failed = np.flatnonzero(~ok)
    share = failed.size / ok.size
    if share <= threshold:
        return ()
    return (
        _flag(
            "deepfool_fails",
            f"DeepFool found no adversarial example on {failed.size} of {ok.size} points ({share:.1%} > {threshold:.0%})",
            share,
            threshold,
            failed.tolist(),
        ),
    )


def certificate_flags(
    certificates: dict[str, Any], attack_radius: Tensor | np.ndarray | Sequence[float], *, rtol: float = 1e-6
) -> tuple[MaskingFlag, ...]:
    """``certificate_exceeds_attack``: some certified radius above a successful attack's radius.

    Parameters
    ----------
    certificates : {name: (N,) radii} — sound lower bounds on the distance to the boundary.
    attack_radius : (N,) — the smallest successful attack radius per point (inf where none; same norm).
    rtol : relative tolerance (float arithmetic of the bounds).

    Returns
    -------
    tuple of MaskingFlag — empty, or one flag naming every certificate that broke the inequality.
    """
    r = np.asarray(torch.as_tensor(attack_radius).cpu(), dtype=np.float64).reshape(-1)
    bad_names, bad_points = [], set()
    worst = 0.0
    for name, radii in certificates.items():
        c = np.asarray(torch.as_tensor(radii).cpu(), dtype=np.float64).reshape(-1)
        if c.shape != r.shape:
            raise InvalidInputError(f"certificate {name!r} has {c.size} radii for {r.size} attack radii")
        over = np.isfinite(r) & (c > r * (1 + rtol) + 1e-12)
        if over.any():
            bad_names.append(name)
            bad_points.update(np.flatnonzero(over).tolist())
            worst = max(worst, float(np.max(c[over] / np.maximum(r[over], 1e-300))))
    if not bad_names:
        return ()
    return (
        _flag(
            "certificate_exceeds_attack",
            f"{', '.join(bad_names)} exceed the attack radius at {len(bad_points)} point(s), by up to {worst:.3g}×",
            worst,
            1.0,
            sorted(bad_points),
        ),
    )
