"""Issue 21's tables: robust accuracy by PGD and by the AutoAttack-style ensemble, minimal-perturbation
optimality per attack, certified radii beside the best attack radius, and the masking flags.

Usage (from the repository root; MNIST needs ../shared/data and trains the zoo's regimes on first use,
minutes each on 2 CPU cores):

    python docs/scripts/robust_eval.py --models digits-lenet digits-lenet-pgd --n 200 --eps 0.1
    python docs/scripts/robust_eval.py --models mnist-lenet mnist-lenet-pgd --n 500 --eps 0.3 \\
        --fmn-max-stepsize 1.0 --ddn-init-norm 1.0 --reference --out docs/results/robust-eval-mnist.json

Every number comes from :func:`geometry.study.robusteval.robust_eval`; ``--reference`` also runs the
authors' AutoAttack (standard version: APGD-CE, APGD-T, FAB-T, Square) on the same points.
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
from geometry.study.robusteval import RobustEvalSettings, robust_eval


def reference_autoattack(clf, x, y, eps: float, norm: float) -> float:
    """Robust accuracy by the authors' AutoAttack, standard version (pixel bounds [0, 1])."""
    from pyautoattack import AutoAttack

    aa = AutoAttack(clf.network, eps=eps, norm="Linf" if math.isinf(norm) else "L2", version="standard", seed=0)
    aa.verbose = False
    x_adv, _ = aa.run_standard_evaluation(x.to(clf.dtype), y, batch_size=500)
    return float((clf.predict(x_adv) == y).double().mean())


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
        res = robust_eval(clf, test.images, test.labels, settings)
        row = {
            "model": name,
            "n": res.n,
            "eps": args.eps,
            "norm": args.norm,
            "clean": res.clean_accuracy,
            "pgd": res.pgd_accuracy,
            "ensemble": res.ensemble.robust_accuracy,
            "broken_by": {a: res.ensemble.broken(a) for a in res.ensemble.attacks},
            "median_distance": float(res.minimal.distance[torch.isfinite(res.minimal.distance)].median()),
            "no_adversarial": int((~torch.isfinite(res.minimal.distance)).sum()),
            "optimality": res.optimality,
            "passes_per_point": dict(zip(res.minimal.attacks, res.minimal.passes.tolist(), strict=True)),
            "wins": {a: res.minimal.wins(a) for a in res.minimal.attacks},
            "certificate_median_ratio": {c: res.median_ratio(c) for c in res.certificates},
            "certificate_error": res.certificate_error,
            "flags": [f.code for f in res.flags],
            "seconds": round(time.time() - t0, 1),
        }
        if args.reference_minimal:
            from geometry.minimal import minimal_perturbation

            t1 = time.time()
            ref = minimal_perturbation(
                clf,
                test.images[: res.n],
                attacks=("ddn", "fmn"),
                ddn_steps=args.reference_minimal,
                fmn_steps=args.reference_minimal,
                fmn_max_stepsize=args.fmn_max_stepsize,
                ddn_init_norm=args.ddn_init_norm,
            )
            found = torch.isfinite(ref.distance)
            row["reference_minimal"] = {
                "steps": args.reference_minimal,
                "median_distance": float(ref.distance[found].median()),
                "ensemble_beaten_at": int((ref.distance < res.minimal.distance * (1 - 1e-6)).sum()),
                "optimality": res.minimal.optimality(reference=ref.distance),
                "seconds": round(time.time() - t1, 1),
            }
        row["ensemble_passes_per_point"] = int(sum(row["passes_per_point"].values()))
        if args.reference:
            row["reference_autoattack"] = reference_autoattack(
                clf, test.images[: args.n], test.labels[: args.n].long(), args.eps, norm
            )
        rows.append(row)
        print(json.dumps(row), flush=True)

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
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"settings": vars(args) | {"out": str(args.out)}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
