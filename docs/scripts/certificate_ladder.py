"""Issue 21 item 4's table: the ladder of certificates (global Lipschitz, LMT pair, CROWN) against the best
attack radius, on the first test points of zoo networks.

Usage (from the repository root; the digits networks train in seconds on first use):

    python docs/scripts/certificate_ladder.py --models digits-lenet digits-lenet-lmt --n 40

Every number comes from :func:`geometry.study.certify.certify_study` (CROWN ℓ2 on every point,
intermediate bounds IBP ∩ CROWN, bisection to a relative ``--tol``); the table is printed as Markdown
and, with ``--out``, written as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from geometry import zoo
from geometry.attacks import BOUNDARY_ATTACKS
from geometry.data import load_dataset
from geometry.study.certify import CertifySettings, certify_study
from geometry.study.readings import certificate_ladder_reading


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["digits-lenet", "digits-lenet-lmt"])
    parser.add_argument("--n", type=int, default=40, help="first test points")
    parser.add_argument("--tol", type=float, default=0.01, help="CROWN bisection's relative tolerance")
    parser.add_argument("--norm", default="l2", choices=["l2", "linf"])
    parser.add_argument(
        "--attacks",
        nargs="+",
        choices=list(BOUNDARY_ATTACKS),
        default=list(CertifySettings.attacks),
        help="attacks for the attack radius (geometry.attacks.boundary_distance names; default: the Certified "
        "page's, box DeepFool, FMN and DDN; the MNIST ladder in docs/certification.md was first run with "
        "deepfool_box fmn)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    print(
        "| network | points (attack ok) | median best / attack | median attack / best | Lipschitz | LMT pair | "
        "CROWN | CROWN / Lipschitz | best bound (points) | violations | time (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        clf = zoo.load_model(name)
        test = load_dataset(zoo.ZOO[name].dataset, split="test", limit=args.n)
        settings = CertifySettings(
            n_points=args.n,
            crown_points=args.n,
            crown_tol=args.tol,
            crown_norm=args.norm,
            attacks=tuple(args.attacks),
        )
        start = time.time()
        study = certify_study(clf, test.images, test.labels.numpy(), settings)
        seconds = time.time() - start
        ladder = study.ladder()
        ok = np.isfinite(study.distance)
        ratio = {k: float(np.median(study.distance[ok] / v[ok])) for k, v in ladder.items()}
        names = list(study.best_name)
        wins = {k: names.count(k) for k in sorted(set(names))}
        crown_name = study.crown_name
        crown_gain = float(np.median(ladder[crown_name] / ladder["global Lipschitz"]))
        row = {
            "network": name,
            "attacks": list(settings.attacks),
            "points": len(ok),
            "attacked": int(ok.sum()),
            "median_best_over_attack": float(np.median(ladder["best certificate"][ok] / study.distance[ok])),
            "median_attack_over": ratio,
            "crown_over_lipschitz": crown_gain,
            "best_bound_counts": wins,
            "violations": len(study.check.violations),
            "seconds": seconds,
            "reading": certificate_ladder_reading(study),
        }
        rows.append(row)
        print(
            f"| {name} | {row['points']} ({row['attacked']}) | {row['median_best_over_attack']:.3f} | "
            f"{ratio['best certificate']:.3g}× | {ratio['global Lipschitz']:.3g}× | "
            f"{ratio.get('LMT pair', float('nan')):.3g}× | {ratio[crown_name]:.3g}× | {crown_gain:.3g}× | "
            f"{', '.join(f'{k} {v}' for k, v in wins.items())} | {row['violations']} | {seconds:.0f} |",
            flush=True,
        )
    for row in rows:
        print(f"\n{row['network']}: {row['reading']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
