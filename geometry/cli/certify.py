"""``boundary-atlas certify``: the Certified page's ladder of certificates for one network, without the browser.

``boundary-atlas certify --zoo digits-lenet --crown --norm 2 --points 200 --out DIR`` (or ``--model PATH
--dataset NAME``) runs :func:`geometry.study.certify.certify_study` on the first ``--points`` test points, as the
page does, and writes

* ``certify.json`` — per certificate of the ladder (global Lipschitz ``M/(√2 L)``, LMT's pair refinement, CROWN
  in the ``--norm`` ball, and the best of them per point: *the* certificate) the points where it was computed, its
  median radius and its median ratio to the best attack radius; the best attack radius (the smallest successful
  of box DeepFool, FMN and DDN: median, points found, who won); L; the soundness check (every certificate ≤ every
  successful attack's radius) and every masking flag; the settings;
* ``certify.csv`` — per point: index, true label, predicted label, each certificate, the best certificate, which
  bound gave it, the best attack radius and the attack that found it (ℓ2, pixel units; empty where not computed).

The summary printed is the ladder: one line per certificate, then the best attack radius, then the flags.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..study.certify import CertifySettings
from .options import add_data_options, add_model_options, add_output_options, int_in, positive_float
from .progress import ProgressBar

__all__ = ["add_certify_command", "certify_settings", "ladder_summary", "run_certify"]

_CERTIFY = CertifySettings()
MAX_CERTIFY_POINTS = 100_000
_NORMS = {"2": "l2", "inf": "linf"}


def add_certify_command(sub: Any, func: Callable[[argparse.Namespace, argparse.ArgumentParser], int]) -> None:
    """Add the ``certify`` sub-command to the sub-parsers ``sub`` of ``boundary-atlas``; ``func(args, parser)`` runs
    it (:func:`run_certify` with the command line's model loaders, :mod:`geometry.cli.commands`)."""
    p = sub.add_parser(
        "certify",
        help="the ladder of certificates (Lipschitz, LMT pair, CROWN, the best) beside the best attack radius",
        description="The Certified page for one network: every sound lower bound on the ℓ2 distance to the "
        "boundary per point (the global Lipschitz certificate, LMT's pair refinement, CROWN's local bound by "
        "linear bound propagation), the best of them, and the smallest successful attack radius above them; "
        "the check that no certificate exceeds an attack radius and the masking flags. Writes certify.json and "
        "certify.csv. Every default is the page's.",
    )
    add_model_options(p)
    add_data_options(p)
    g = p.add_argument_group("protocol")
    g.add_argument(
        "--points",
        metavar="N",
        type=int_in(1, MAX_CERTIFY_POINTS, "points"),
        default=_CERTIFY.n_points,
        help="the first N test points (default: %(default)s)",
    )
    g.add_argument(
        "--crown",
        action=argparse.BooleanOptionalAction,
        default=_CERTIFY.crown_norm != "none",
        help="CROWN's local certificate on the ladder (default: on; --no-crown skips it)",
    )
    g.add_argument(
        "--norm",
        choices=tuple(_NORMS),
        default={v: k for k, v in _NORMS.items()}.get(_CERTIFY.crown_norm, "2"),
        help="CROWN's ball: 2 (ℓ2) or inf (ℓ∞, also an ℓ2 certificate: the ℓ2 ball lies inside the ℓ∞ ball of "
        "the same radius) (default: %(default)s)",
    )
    g.add_argument(
        "--crown-points",
        metavar="N",
        type=int_in(0, MAX_CERTIFY_POINTS, "points"),
        default=None,
        help="CROWN on the first N of the points only (a bisection of full CROWN passes per point: about a second "
        "per point on a small LeNet; default: every point)",
    )
    g.add_argument(
        "--crown-tol",
        metavar="TOL",
        type=positive_float,
        default=_CERTIFY.crown_tol,
        help="relative width at which CROWN's bisection on the radius stops, in (0, 1) (default: %(default)s)",
    )
    add_output_options(p)
    p.set_defaults(func=func)


def certify_settings(args: argparse.Namespace) -> CertifySettings:
    """The :class:`CertifySettings` of parsed options (InvalidInputError for a tolerance outside (0, 1))."""
    crown_points = args.points if args.crown_points is None else min(args.crown_points, args.points)
    return CertifySettings(
        n_points=args.points,
        crown_norm=_NORMS[args.norm] if args.crown else "none",
        crown_points=crown_points if args.crown else 0,
        crown_tol=float(args.crown_tol),
    )


def _median(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if len(v) else None


def ladder_result(study: Any) -> dict:
    """The ladder of a :class:`~geometry.study.certify.CertifyStudy` as JSON values: per certificate its points,
    median radius and median ratio to the best attack radius (over points where both are positive and finite)."""
    distance = np.asarray(study.distance, dtype=np.float64)
    rungs = {}
    for name, radius in study.ladder().items():
        r = np.asarray(radius, dtype=np.float64)
        both = np.isfinite(r) & np.isfinite(distance) & (r > 0) & (distance > 0)
        rungs[name] = {
            "points": int(np.isfinite(r).sum()),
            "median_radius": _median(r),
            "median_ratio_to_attack": float(np.median(r[both] / distance[both])) if both.any() else None,
        }
    won: dict[str, int] = {}
    for w, d in zip(study.winner, distance, strict=True):
        if w and math.isfinite(d):
            won[w] = won.get(w, 0) + 1
    return {
        "certificates": rungs,
        "attack": {"median_radius": _median(distance), "found": int(np.isfinite(distance).sum()), "won": won},
    }


def ladder_summary(name: str, result: dict) -> list[str]:
    """The printed ladder: one line per certificate (median radius, median ratio to the attack), then the attack."""
    lines = [f"{name}: ladder of certificates on {result['n_points']} points (ℓ2, pixel units; medians)"]
    for rung, v in result["ladder"]["certificates"].items():
        radius = "—" if v["median_radius"] is None else f"{v['median_radius']:.4g}"
        ratio = "—" if v["median_ratio_to_attack"] is None else f"{v['median_ratio_to_attack']:.3g}"
        lines.append(f"  {rung:<18} {radius:>10}   ÷ attack {ratio:>7}   ({v['points']} points)")
    att = result["ladder"]["attack"]
    radius = "—" if att["median_radius"] is None else f"{att['median_radius']:.4g}"
    won = ", ".join(f"{k} {v}" for k, v in att["won"].items()) or "none"
    lines.append(f"  {'best attack':<18} {radius:>10}   (found on {att['found']} points; won: {won})")
    return lines


def run_certify(args: argparse.Namespace, parser: argparse.ArgumentParser, load_target: Callable) -> int:
    """options → the page's points and settings → :func:`certify_study` → certify.json / certify.csv, the ladder.

    ``load_target(args, parser, bar)`` loads ``--zoo`` / ``--model`` as for ``robust``."""
    from ..errors import InvalidInputError
    from ..masking import certificate_flags
    from ..output.report import write_csv, write_json
    from ..study.certify import certify_study
    from .robust import _finite

    if args.model is not None and args.dataset is None:
        parser.error("--dataset is required with --model (it gives the input shape, classes and points)")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")
    settings = certify_settings(args)
    bar = ProgressBar(enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        clf, dataset, data, _ = load_target(args, parser, bar)
        images = data.evaluated
        study = certify_study(
            clf, images.images, images.labels.numpy(), settings, progress=bar.stage(0.05, 0.99, "certify")
        )
        flags = certificate_flags(study.ladder(), study.distance)  # the Certified page's rule: every rung, the best
        n = len(study.distance)
        result = {
            "network": clf.name,
            "dataset": dataset,
            "n_points": n,
            "lipschitz_upper": study.certificate.bound.upper,
            "ladder": ladder_result(study),
            "crown_note": study.crown_note,
            "sound": bool(study.check.sound),
            "violations": study.check.violations.tolist(),
            "masking_flags": [
                {"code": f.code, "message": f.message, "remedy": f.remedy, "value": f.value, "points": list(f.points)}
                for f in flags
            ],
            "settings": settings.describe(),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "certify.json", result)
        ladder = study.ladder()
        names = [k for k in ladder if k != "best certificate"]
        best_name = study.best_name
        rows = []
        for j in range(n):
            cells = [_finite(float(ladder[k][j])) for k in names]
            rows.append(
                [
                    j,
                    int(study.labels[j]),
                    int(study.certificate.label[j]),
                    *("" if c is None else c for c in cells),
                    float(study.best[j]),
                    best_name[j],
                    float(study.distance[j]),
                    study.winner[j] if math.isfinite(study.distance[j]) else "",
                ]
            )
        write_csv(
            out / "certify.csv",
            ["index", "true_label", "predicted", *names, "best_certificate", "best_by", "attack_radius", "attack"],
            rows,
        )
        bar(1.0, "done")
    finally:
        bar.close()
    lines = [
        *ladder_summary(clf.name, result),
        f"  sound: {'yes' if result['sound'] else 'NO — a certificate exceeds an attack radius'}",
        f"  masking flags: {len(flags) or 'none'}",
        *(f"  ! {f.code}: {f.message}. Remedy: {f.remedy}" for f in flags),
        f"  files: certify.json, certify.csv in {out.resolve()}",
    ]
    print("\n".join(lines))
    return 0
