"""``boundary-atlas robust``: the Robust page's numbers for one network, without the browser (issue 21).

``boundary-atlas robust --zoo digits-lenet-pgd --out DIR`` (or ``--model PATH --dataset NAME``) measures, on
the Robust page's seeded choice of test points and with its defaults (:class:`geometry.study.robust.RobustSettings`,
:class:`geometry.study.robust.EnsembleSettings`; ε from the input size as on the page):

* ``robust.json`` — clean and PGD accuracy, the AutoAttack-style ensemble's robust accuracy beside PGD's on the
  same points (with the points each attack broke first), ρ_adv, the distance to the boundary as the minimal
  ensemble's (median, ρ boundary, points won and AttackBench optimality per attack), the curvature profile's
  means, every masking flag with its remedy, and the settings;
* ``robust.csv`` — per point: index in the split, true label, distance to the boundary (ℓ2), the attack that won.

The summary printed names the two robust accuracies and every masking flag (one line each, with its remedy).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..study.robust import EnsembleSettings, RobustSettings
from .options import SEED_RANGE, add_data_options, add_model_options, add_output_options, int_in, positive_float
from .progress import ProgressBar

__all__ = ["add_robust_command", "robust_settings", "ensemble_settings", "run_robust"]

_ROBUST = RobustSettings()
_ENSEMBLE = EnsembleSettings()
MAX_ROBUST_POINTS = 10_000  # --n-points, --ensemble-points: each point costs thousands of network passes


def add_robust_command(sub: Any, func: Callable[[argparse.Namespace, argparse.ArgumentParser], int]) -> None:
    """Add the ``robust`` sub-command to the sub-parsers ``sub`` of ``boundary-atlas``; ``func(args, parser)`` runs
    it (:func:`run_robust` with the command line's model loaders, which live in :mod:`geometry.cli.commands`)."""
    p = sub.add_parser(
        "robust",
        help="robust accuracy by PGD and by the AutoAttack-style ensemble, the minimal distance, masking flags",
        description="The Robust page for one network: clean and PGD accuracy, the robust accuracy of the "
        "AutoAttack-style ensemble (APGD-CE, APGD-T, Square) beside PGD's on the same points, the distance to the "
        "boundary as the best of box DeepFool, its refinement, FMN and DDN (with which attack won), the curvature "
        "profile of the loss, and every gradient-masking flag with its remedy. Writes robust.json and robust.csv. "
        "Every default is the page's.",
    )
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("protocol")
    g.add_argument(
        "--n-points",
        metavar="N",
        type=int_in(1, MAX_ROBUST_POINTS, "points"),
        default=_ROBUST.n_points,
        help="test points (a seeded choice, as on the page) of PGD, the distance and the curvature "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--eps",
        metavar="EPS",
        type=positive_float,
        default=None,
        help="ℓ∞ radius of the robust accuracies, pixel units (default: the page's by input size: 0.1 on 8×8 "
        "digits, 0.3 on MNIST, 8/255 on CIFAR-10)",
    )
    g.add_argument(
        "--pgd-steps",
        metavar="S",
        type=int_in(1, 10_000, "PGD steps"),
        default=_ROBUST.pgd_steps,
        help="PGD steps (default: %(default)s)",
    )
    g.add_argument(
        "--restarts",
        metavar="R",
        type=int_in(1, 1_000, "restarts"),
        default=_ROBUST.restarts,
        help="PGD restarts (default: %(default)s)",
    )
    g.add_argument(
        "--ensemble-points",
        metavar="N",
        type=int_in(1, MAX_ROBUST_POINTS, "points"),
        default=_ENSEMBLE.n_points,
        help="test points of the ensemble (the same seeded choice; default: %(default)s)",
    )
    g.add_argument(
        "--square-queries",
        metavar="Q",
        type=int_in(1, 1_000_000, "queries"),
        default=_ENSEMBLE.square_queries,
        help="Square's query budget (AutoAttack: 5000; default: %(default)s)",
    )
    g.add_argument(
        "--k",
        metavar="K",
        type=int_in(1, 1_000, "eigenvalues"),
        default=_ROBUST.k,
        help="Hessian eigenvalues per point",
    )
    g.add_argument(
        "--h",
        metavar="H",
        type=positive_float,
        default=_ROBUST.h,
        help="scale of the finite-difference curvature, pixel ℓ2 (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        metavar="SEED",
        type=int_in(*SEED_RANGE, "a seed"),
        default=_ROBUST.seed,
        help="seed of PGD and the ensemble (default: %(default)s)",
    )
    add_output_options(p)
    p.set_defaults(func=func)


def robust_settings(args: argparse.Namespace, d: int) -> RobustSettings:
    """The :class:`RobustSettings` of parsed options for inputs of dimension ``d`` (ε and FMN's step as the page's)."""
    from ..study.robust import DEFAULT_EPS, fmn_stepsize

    eps = args.eps if args.eps is not None else float(DEFAULT_EPS.get(d, _ROBUST.eps))
    return RobustSettings(
        n_points=args.n_points,
        eps=float(eps),
        pgd_steps=args.pgd_steps,
        restarts=args.restarts,
        k=args.k,
        h=float(args.h),
        fmn_max_stepsize=fmn_stepsize(d),
        seed=int(args.seed),
    )


def ensemble_settings(args: argparse.Namespace) -> EnsembleSettings:
    """The :class:`EnsembleSettings` of parsed options."""
    return EnsembleSettings(n_points=args.ensemble_points, square_queries=args.square_queries)


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _result(clf: Any, dataset: str, r: Any, e: Any, settings: RobustSettings, ens: EnsembleSettings) -> dict:
    import torch

    dist = r.distance[torch.isfinite(r.distance)]
    return {
        "network": clf.name,
        "dataset": dataset,
        "n_points": r.n_points,
        "eps": r.eps,
        "norm": "inf",
        "clean_accuracy": r.clean_accuracy,
        "pgd_accuracy": r.pgd_accuracy,
        "ensemble": {
            "n_points": e.n_points,
            "attacks": list(e.attacks),
            "clean_accuracy": e.clean_accuracy,
            "pgd_accuracy": e.pgd_accuracy,
            "robust_accuracy": e.ensemble_accuracy,
            "accuracy_after": list(e.accuracy_after),
            "broken_first_by": e.broken_by,
            "passes_per_point": e.passes_per_point,
        },
        "rho_adv": _finite(r.rho_adv),
        "distance": {
            "median": float(dist.median()) if dist.numel() else None,
            "rho_boundary": _finite(r.rho_boundary),
            "found": int(dist.numel()),
            "won": r.wins,
            "optimality": {a: _finite(v) for a, v in r.optimality.items()},
        },
        "curvature": {
            "mean_spectral_norm": float(r.profile.spectral_norm.mean()),
            "mean_finite_difference": float(r.profile.finite_difference.mean()),
            "h": settings.h,
        },
        "masking_flags": [
            {"code": f.code, "message": f.message, "remedy": f.remedy, "value": f.value, "threshold": f.threshold}
            for f in (*r.flags, *e.flags)
        ],
        "settings": {"robust": settings.describe(), "ensemble": ens.describe()},
    }


def run_robust(args: argparse.Namespace, parser: argparse.ArgumentParser, load_target: Callable) -> int:
    """options → the page's points and settings → :func:`robust_study`, :func:`ensemble_study` → robust.json / .csv.

    ``load_target(args, parser, bar)`` → (classifier, dataset name, report data, source) loads ``--zoo`` /
    ``--model`` as ``report`` does (:mod:`geometry.cli.commands`)."""
    from ..errors import InvalidInputError
    from ..output.report import pct, write_csv, write_json
    from ..study import choose_points
    from ..study.robust import ensemble_study, robust_study

    if args.model is not None and args.dataset is None:
        parser.error("--dataset is required with --model (it gives the input shape, classes and points)")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")
    bar = ProgressBar(enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        clf, dataset, data, _ = load_target(args, parser, bar)
        settings, ens = robust_settings(args, clf.d), ensemble_settings(args)
        images = data.evaluated
        n_all = len(images.images)
        idx = choose_points(n_all, min(settings.n_points, n_all), random_state=0)  # the page's choice
        r = robust_study(clf, images.images[idx], images.labels[idx], settings, progress=bar.stage(0.1, 0.5, "study"))
        eidx = choose_points(n_all, min(ens.n_points, n_all), random_state=0)
        e = ensemble_study(
            clf, images.images[eidx], images.labels[eidx], settings, ens, progress=bar.stage(0.5, 0.99, "ensemble")
        )
        out.mkdir(parents=True, exist_ok=True)
        result = _result(clf, dataset, r, e, settings, ens)
        result["seconds"] = round(time.perf_counter() - t0, 3)
        write_json(out / "robust.json", result)
        labels = images.labels[idx]
        write_csv(
            out / "robust.csv",
            ["index", "true_label", "distance", "won_by"],
            [
                [int(i), int(labels[j]), float(r.distance[j]), r.winner[j] if r.winner else ""]
                for j, i in enumerate(idx.tolist())
            ],
        )
        bar(1.0, "done")
    finally:
        bar.close()
    flags = result["masking_flags"]
    won = ", ".join(f"{a} {k}" for a, k in r.wins.items())
    lines = [
        f"{clf.name} at ℓ∞ ε = {settings.eps:g}: PGD accuracy {pct(r.pgd_accuracy)} on {r.n_points} points",
        f"  ensemble ({', '.join(e.attacks)}) robust accuracy {pct(e.ensemble_accuracy)} beside PGD's "
        f"{pct(e.pgd_accuracy)} on the same {e.n_points} points",
        f"  median distance to the boundary {result['distance']['median']:.4g} (ℓ2; points won: {won})"
        if result["distance"]["median"] is not None
        else "  no attack reached the boundary",
        f"  masking flags: {len(flags) or 'none'}",
        *(f"  ! {f['code']}: {f['message']}. Remedy: {f['remedy']}" for f in flags),
        f"  files: robust.json, robust.csv in {out.resolve()}",
    ]
    print("\n".join(lines))
    return 0
