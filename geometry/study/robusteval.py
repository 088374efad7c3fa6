"""The robustness evaluation of issue 21 as one protocol: robust accuracy by PGD and by the ensemble,
the distance to the boundary as the best of the minimal-norm attacks (with each attack's optimality),
the certified radii beside it, and the masking flags.

Used by ``docs/scripts/robust_eval.py``; the pages and the CLI will build the same
:class:`RobustEvalSettings` (every default lives here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..attacks import pgd
from ..autoattack import DEFAULT_ENSEMBLE, AutoAttackResult, autoattack
from ..certify import certify
from ..classifier import Classifier
from ..deepfool import deepfool
from ..errors import AtlasError
from ..masking import MaskingFlag, certificate_flags, deepfool_flags, ensemble_flags, model_flags
from ..minimal import MINIMAL_ATTACKS, MinimalPerturbation, minimal_perturbation

__all__ = ["RobustEvalSettings", "RobustEval", "robust_eval"]


@dataclass(frozen=True)
class RobustEvalSettings:
    """Settings of :func:`robust_eval` (pixel units).

    n_points : first test points used; eps : ℓ∞ radius of the robust accuracies; norm : inf or 2;
    pgd_steps, pgd_restarts : the atlas's PGD; attacks : the ensemble (:data:`DEFAULT_ENSEMBLE`);
    square_queries : Square's budget (AutoAttack: 5000); minimal_attacks, fmn_max_stepsize,
    ddn_init_norm : the minimal-perturbation ensemble; minimal_budget : None (default: every listed
    attack with its own settings) or forward + backward passes per point for the minimal ensemble, which
    then plans its own attacks (:func:`geometry.minimal.budget_plan`: DDN, then a refinement on the
    boundary; ``minimal_attacks`` and ``fmn_max_stepsize`` unused); random_state : seeds PGD and the ensemble.
    """

    n_points: int = 200
    eps: float = 0.1
    norm: float = math.inf
    pgd_steps: int = 40
    pgd_restarts: int = 1
    attacks: tuple[str, ...] = DEFAULT_ENSEMBLE
    square_queries: int = 5000
    minimal_attacks: tuple[str, ...] = MINIMAL_ATTACKS
    fmn_max_stepsize: float = 1.0
    ddn_init_norm: float = 1.0
    minimal_budget: int | None = None
    random_state: int = 0


@dataclass(frozen=True)
class RobustEval:
    """Result of :func:`robust_eval`.

    Attributes
    ----------
    settings : RobustEvalSettings; n : points used.
    clean_accuracy, pgd_accuracy : float in [0, 1].
    ensemble : AutoAttackResult — robust accuracy by the ensemble (``ensemble.robust_accuracy``).
    minimal : MinimalPerturbation — ℓ2 distance to the boundary, per point the best attack.
    optimality : {attack: float} — AttackBench optimality of each minimal-norm attack and the ensemble.
    certificates : {name: (N,) float64} — sound ℓ2 radii (``"lipschitz"``, ``"lipschitz_pair"``),
        empty when the network has a layer the Lipschitz tracer refuses (``certificate_error``).
    certificate_error : str — why there are no certificates ("" otherwise).
    flags : tuple of MaskingFlag — every masking flag raised.
    """

    settings: RobustEvalSettings
    n: int
    clean_accuracy: float
    pgd_accuracy: float
    ensemble: AutoAttackResult
    minimal: MinimalPerturbation
    optimality: dict[str, float]
    certificates: dict[str, np.ndarray]
    certificate_error: str
    flags: tuple[MaskingFlag, ...]

    def median_ratio(self, name: str) -> float:
        """Median of certificate ``name`` / the best attack radius over points where both are positive and finite."""
        c = self.certificates[name]
        r = self.minimal.distance.numpy()
        keep = np.isfinite(r) & (r > 0) & (c > 0)
        return float(np.median(c[keep] / r[keep])) if keep.any() else math.nan


def robust_eval(clf: Classifier, xs: torch.Tensor, labels: torch.Tensor, settings: RobustEvalSettings) -> RobustEval:
    """Run the whole evaluation on the first ``settings.n_points`` of ``xs`` (ground-truth ``labels``).

    References: issue 21; Croce & Hein, ICML 2020; Cinà et al., AAAI 2025; Tsuzuku et al., NeurIPS 2018.
    """
    x = xs[: settings.n_points]
    y = torch.as_tensor(labels)[: settings.n_points].long()
    clean = float((clf.predict(x).cpu() == y).double().mean())
    p = pgd(
        clf,
        x,
        y,
        eps=settings.eps,
        norm=settings.norm,
        steps=settings.pgd_steps,
        restarts=settings.pgd_restarts,
        random_state=settings.random_state,
    )
    ens = autoattack(
        clf,
        x,
        y,
        eps=settings.eps,
        norm=settings.norm,
        attacks=settings.attacks,
        square_queries=settings.square_queries,
        random_state=settings.random_state,
    )
    if settings.minimal_budget is None:
        mini = minimal_perturbation(
            clf,
            x,
            attacks=settings.minimal_attacks,
            fmn_max_stepsize=settings.fmn_max_stepsize,
            ddn_init_norm=settings.ddn_init_norm,
        )
    else:
        mini = minimal_perturbation(clf, x, budget=settings.minimal_budget, ddn_init_norm=settings.ddn_init_norm)
    certificates: dict[str, np.ndarray] = {}
    error = ""
    try:
        cert = certify(clf, x)
        certificates["lipschitz"] = cert.radius_plain
        if cert.radius_pair is not None:
            certificates["lipschitz_pair"] = cert.radius_pair
    except AtlasError as exc:
        error = str(exc)
    flags = (
        *model_flags(clf, x, y),
        *ensemble_flags(ens),
        *deepfool_flags(deepfool(clf, x, clip=True).converged),
        *(certificate_flags(certificates, mini.distance) if certificates else ()),
    )
    return RobustEval(
        settings=settings,
        n=int(x.shape[0]),
        clean_accuracy=clean,
        pgd_accuracy=float((~p.success).double().mean()),
        ensemble=ens,
        minimal=mini,
        optimality=mini.optimality(),
        certificates=certificates,
        certificate_error=error,
        flags=flags,
    )
