"""Reproduction of the robust-training comparison (issue 11, docs/reproduction-robust.md).

Trains (or reads from the zoo cache) the regimes of one family, then runs the page's study
(:func:`geometry.study.robust.robust_study`) on the first test points and writes one JSON line per
network (and per h) to the output file as soon as it is measured, so a partial run still reports.

    .venv/bin/python docs/scripts/reproduce_robust.py --family mnist-lenet --points 100 --out docs/robust-mnist.jsonl
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from geometry.data import load_dataset
from geometry.study.robust import DEFAULT_EPS, RobustSettings, robust_study
from geometry.zoo import REGIME_FAMILIES, ZOO, load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", default="mnist-lenet", choices=list(REGIME_FAMILIES))
    ap.add_argument("--regimes", default="standard,cure,fgsm-at,pgd-at")
    ap.add_argument("--points", type=int, default=100)
    ap.add_argument("--h", default="0.5,1.5")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    family = REGIME_FAMILIES[args.family]
    for regime in args.regimes.split(","):
        name = family[regime]
        t0 = time.perf_counter()
        clf = load_model(name, progress=None)
        load_s = time.perf_counter() - t0
        test = load_dataset(ZOO[name].dataset, split="test")
        for h in (float(v) for v in args.h.split(",")):
            s = RobustSettings(n_points=args.points, eps=DEFAULT_EPS.get(clf.d, 0.1), h=h, k=10)
            t1 = time.perf_counter()
            r = robust_study(clf, test.images, test.labels, s)
            row = {
                "network": name,
                "regime": regime,
                "recipe": ZOO[name].recipe(),
                "card": clf.info.get("robustness"),
                "train_seconds": clf.info.get("train_seconds"),
                "load_or_train_seconds_this_run": load_s,
                "test_accuracy": clf.test_accuracy,
                "points": r.n_points,
                "eps": r.eps,
                "h": h,
                "clean_accuracy": r.clean_accuracy,
                "pgd_accuracy": r.pgd_accuracy,
                "rho_adv": r.rho_adv,
                "deepfool_left_box": r.deepfool_left_box,
                "rho_boundary": r.rho_boundary,
                "median_distance": float(r.distance[r.distance.isfinite()].median()),
                "wins": r.wins,
                "top_eig_mean": float(r.profile.mean[0]),
                "top_eig_median": float(r.profile.spectral_norm.median()),
                "profile_mean": [float(v) for v in r.profile.mean],
                "fd_curvature_mean": float(r.profile.finite_difference.mean()),
                "fd_curvature_median": float(r.profile.finite_difference.median()),
                "trace_mean": float(r.profile.trace.mean()),
                "study_seconds": time.perf_counter() - t1,
                "threads": torch.get_num_threads(),
            }
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                json.dumps({k: row[k] for k in ("network", "h", "pgd_accuracy", "top_eig_mean", "fd_curvature_mean")}),
                flush=True,
            )


if __name__ == "__main__":
    main()
