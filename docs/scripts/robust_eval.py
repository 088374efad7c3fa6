"""Issue 21's tables: robust accuracy by PGD and by the AutoAttack-style ensemble, minimal-perturbation
optimality per attack, certified radii beside the best attack radius, and the masking flags.

Usage (from the repository root; MNIST needs ../shared/data and trains the zoo's regimes on first use,
minutes each on 2 CPU cores):

    python docs/scripts/robust_eval.py --models digits-lenet digits-lenet-pgd --n 200 --eps 0.1
    python docs/scripts/robust_eval.py --models mnist-lenet mnist-lenet-pgd --n 500 --eps 0.3 \\
        --fmn-max-stepsize 1.0 --ddn-init-norm 1.0 --reference --out docs/results/robust-eval-mnist.json
    python docs/scripts/robust_eval.py --models mnist-lenet mnist-lenet-pgd --n 200 --minimal-only \
        --fmn-max-stepsize 1.0 --ddn-init-norm 1.0 --reference-minimal 1000 --minimal-budget 100

Every number comes from :func:`geometry.study.robusteval.robust_eval`; ``--reference`` also runs the
authors' AutoAttack (standard version: APGD-CE, APGD-T, FAB-T, Square) on the same points.
``--minimal-budget B`` also runs the budgeted minimal ensemble (``minimal_perturbation(..., budget=B)``: DDN,
then a refinement on the boundary, at most B forward + backward passes per point) beside the full one;
``--minimal-only`` skips PGD, the AutoAttack-style ensemble and the certificates (only the minimal part).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from geometry import zoo
from geometry.data import load_dataset
from geometry.minimal import minimal_perturbation
from geometry.study.robusteval import RobustEvalSettings, robust_eval


def reference_autoattack(clf, x, y, eps: float, norm: float) -> float:
    """Robust accuracy by the authors' AutoAttack, standard version (pixel bounds [0, 1])."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(clf.network, eps=eps, norm="Linf" if math.isinf(norm) else "L2", version="standard", seed=0)
    aa.verbose = False
    x_adv, _ = aa.run_standard_evaluation(x.to(clf.dtype), y, batch_size=500)
    return float((clf.predict(x_adv) == y).double().mean())


def _median(distance: torch.Tensor) -> float:
    """Median of the finite distances (nan if none)."""
    found = torch.isfinite(distance)
    return float(distance[found].median()) if bool(found.any()) else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["digits-lenet", "digits-lenet-pgd"])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--norm", default="inf", choices=["inf", "2"])
    ap.add_argument("--square-queries", type=int, default=5000)
    ap.add_argument("--fmn-max-stepsize", type=float, default=0.1)
    ap.add_argument("--ddn-init-norm", type=float, default=0.5)
    ap.add_argument("--reference", action="store_true", help="also run the reference AutoAttack (standard)")
    ap.add_argument(
        "--reference-minimal",
        type=int,
        default=0,
        metavar="STEPS",
        help="also run DDN and FMN with STEPS iterations each as an independent best-known distance, and score "
        "every attack's optimality against it (by default the reference is the ensemble's own best, so the "
        "ensemble scores 1 by construction)",
    )
    ap.add_argument(
        "--minimal-budget",
        type=int,
        default=None,
        metavar="PASSES",
        help="also run the minimal ensemble within PASSES forward+backward passes per point and score it",
    )
    ap.add_argument(
        "--minimal-only",
        action="store_true",
        help="only the minimal-perturbation part (no PGD, AutoAttack-style ensemble, certificates or flags)",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 is fastest on small nets)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    norm = math.inf if args.norm == "inf" else 2.0
    settings = RobustEvalSettings(
        n_points=args.n,
        eps=args.eps,
        norm=norm,
        square_queries=args.square_queries,
        fmn_max_stepsize=args.fmn_max_stepsize,
        ddn_init_norm=args.ddn_init_norm,
    )
    rows = []
    for name in args.models:
        clf = zoo.load_model(name)
        test = load_dataset(zoo.ZOO[name].dataset, split="test")
        t0 = time.time()
        if args.minimal_only:
            x = test.images[: args.n]
            mini = minimal_perturbation(
                clf,
                x,
                attacks=settings.minimal_attacks,
                fmn_max_stepsize=settings.fmn_max_stepsize,
                ddn_init_norm=settings.ddn_init_norm,
            )
            row = {
                "model": name,
                "n": int(x.shape[0]),
                "norm": "2",
                "clean": float((clf.predict(x).cpu() == test.labels[: args.n].long()).double().mean()),
            }
        else:
            res = robust_eval(clf, test.images, test.labels, settings)
            mini = res.minimal
            row = {
                "model": name,
                "n": res.n,
                "eps": args.eps,
                "norm": args.norm,
                "clean": res.clean_accuracy,
                "pgd": res.pgd_accuracy,
                "ensemble": res.ensemble.robust_accuracy,
                "broken_by": {a: res.ensemble.broken(a) for a in res.ensemble.attacks},
                "certificate_median_ratio": {c: res.median_ratio(c) for c in res.certificates},
                "certificate_error": res.certificate_error,
                "flags": [f.code for f in res.flags],
            }
        n = row["n"]
        row |= {
            "median_distance": _median(mini.distance),
            "no_adversarial": int((~torch.isfinite(mini.distance)).sum()),
            "optimality": mini.optimality(),
            "passes_per_point": dict(zip(mini.attacks, mini.passes.tolist(), strict=True)),
            "wins": {a: mini.wins(a) for a in mini.attacks},
            "seconds": round(time.time() - t0, 1),
        }
        budgeted = None
        if args.minimal_budget is not None:
            t1 = time.time()
            budgeted = minimal_perturbation(
                clf, test.images[:n], budget=args.minimal_budget, ddn_init_norm=args.ddn_init_norm
            )
            row["budgeted"] = {
                "budget": args.minimal_budget,
                "median_distance": _median(budgeted.distance),
                "passes_per_point": dict(zip(budgeted.attacks, budgeted.passes.tolist(), strict=True)),
                "total_passes_per_point": budgeted.total_passes,
                "wins": {a: budgeted.wins(a) for a in budgeted.attacks},
                "seconds": round(time.time() - t1, 1),
            }
        if args.reference_minimal:
            t1 = time.time()
            ref = minimal_perturbation(
                clf,
                test.images[:n],
                attacks=("ddn", "fmn"),
                ddn_steps=args.reference_minimal,
                fmn_steps=args.reference_minimal,
                fmn_max_stepsize=args.fmn_max_stepsize,
                ddn_init_norm=args.ddn_init_norm,
            )
            # every attack is scored against one best-known distance per point: the reference, the full
            # ensemble and (when run) the budgeted one
            best = torch.minimum(ref.distance, mini.distance)
            if budgeted is not None:
                best = torch.minimum(best, budgeted.distance)
            row["reference_minimal"] = {
                "steps": args.reference_minimal,
                "median_distance": _median(ref.distance),
                "median_best_known": _median(best),
                "ensemble_beaten_at": int((ref.distance < mini.distance * (1 - 1e-6)).sum()),
                "optimality": mini.optimality(reference=best),
                "seconds": round(time.time() - t1, 1),
            }
            if budgeted is not None:
                row["budgeted"]["optimality"] = budgeted.optimality(reference=best)
                row["budgeted"]["beaten_by_reference_at"] = int((ref.distance < budgeted.distance * (1 - 1e-6)).sum())
        row["ensemble_passes_per_point"] = mini.total_passes
        if args.reference and not args.minimal_only:
            row["reference_autoattack"] = reference_autoattack(
                clf, test.images[: args.n], test.labels[: args.n].long(), args.eps, norm
            )
        rows.append(row)
        print(json.dumps(row), flush=True)

    if not args.minimal_only:
        print(
            "\n| model | clean | PGD | ensemble | reference AA | median ‖r‖₂ | optimality (ensemble / per attack) | cert / attack (median) | flags |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            scored = r["reference_minimal"]["optimality"] if "reference_minimal" in r else r["optimality"]
            opt = ", ".join(f"{k} {v:.2f}" for k, v in scored.items())
            cert = ", ".join(f"{k} {v:.3g}" for k, v in r["certificate_median_ratio"].items()) or r["certificate_error"]
            ref = f"{r['reference_autoattack']:.1%}" if "reference_autoattack" in r else "—"
            print(
                f"| {r['model']} | {r['clean']:.1%} | {r['pgd']:.1%} | {r['ensemble']:.1%} | {ref} | "
                f"{r['median_distance']:.3f} | {opt} | {cert} | {', '.join(r['flags']) or 'none'} |"
            )
    print("\n| model | attack | optimality | passes per point |")
    print("|---|---|---|---|")
    for r in rows:
        scored = r["reference_minimal"]["optimality"] if "reference_minimal" in r else r["optimality"]
        for k, v in scored.items():
            passes = r["ensemble_passes_per_point"] if k == "ensemble" else r["passes_per_point"][k]
            print(f"| {r['model']} | {k} | {v:.3f} | {passes} |")
        if "budgeted" in r and "optimality" in r["budgeted"]:
            b = r["budgeted"]
            for k, v in b["optimality"].items():
                passes = b["total_passes_per_point"] if k == "ensemble" else b["passes_per_point"][k]
                print(f"| {r['model']} | budget {b['budget']}: {k} | {v:.3f} | {passes} |")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
