"""Reproduce ICLR 2018 Fig. 10 / Appendix C.2 on a pair of zoo networks under both r(x) protocols: principal
cosines of S_c and S_f against the random baseline, and the fooling-rate matrix of S_c vectors.

Everything is the study layer's, as the Compare networks page computes it (:mod:`geometry.study.compare`):

* points: ``split_points(test, train, PointSplit(n, heldout, 0, seed))`` — the page's points for n;
* ``CompareSettings(points, m_estimated, scale, n_baseline, rx)`` for each h of ``--h`` (``authors`` = 10·√d/512,
  ``xi/2`` = the page's "h = ξ/2", ξ at 50 % on network A) and each protocol of ``--rx`` (``box``: box-constrained
  DeepFool, the page's default; ``unconstrained``: the paper's protocol);
* :func:`~geometry.study.compare_study` / :func:`~geometry.study.compare_angles` at ``--m``; the share of S_c's
  boundary points the paper's protocol puts outside the pixel box (:func:`estimation_box_share`);
* the fooling matrix (:func:`~geometry.study.fooling_matrix`): ξ = 1/5 of the noise norm fooling 50 % of A's
  held-out points, ``--vectors`` random vectors per row from the first m directions of each S_c.

Usage (from the repository root)::

    python docs/scripts/reproduce_compare.py --a digits-lenet --b digits-nin
    python docs/scripts/reproduce_compare.py --a mnist-lenet --b mnist-nin --n 50 --h authors,xi/2

Prints markdown tables and writes a JSON file (``--out``). The networks must already be trained unless
``--train`` is given (the digits networks train in seconds; an MNIST NiN takes about half an hour).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="digits-lenet")
    ap.add_argument("--b", default="digits-nin")
    ap.add_argument("--n", type=int, default=100, help="estimation points of S_c / S_f (the page's default)")
    ap.add_argument("--m", type=int, default=10, help="directions compared (the page's default)")
    ap.add_argument("--m-estimated", type=int, default=20)
    ap.add_argument("--heldout", type=int, default=200, help="held-out points of ξ and the fooling matrix")
    ap.add_argument("--h", default="authors,xi/2", help="comma-separated: authors, xi/2 or a number")
    ap.add_argument("--rx", default="box,unconstrained", help="comma-separated r(x) protocols")
    ap.add_argument("--vectors", type=int, default=20, help="random vectors per row of the fooling matrix")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", action="store_true", help="train a network that is not cached yet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON output (default /tmp/reproduce_compare-<a>-<b>.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from geometry import study, zoo
    from geometry.compare import RANDOM_ROW
    from geometry.data import load_dataset
    from geometry.study.provenance import estimation_box_share

    t0 = time.perf_counter()
    clf_a, clf_b = (zoo.load_model(name, train=args.train) for name in (args.a, args.b))
    dataset = zoo.ZOO[args.a].dataset
    train, test = load_dataset(dataset, split="train"), load_dataset(dataset, split="test")
    split = study.PointSplit(args.n, args.heldout, 0, args.seed)
    points = study.split_points(test, train, split)
    scales = {
        "authors": study.HScale(),
        "xi/2": study.CompareSettings.half_xi(),
    }
    out: dict = {"a": args.a, "b": args.b, "settings": {k: v for k, v in vars(args).items() if k != "out"}, "runs": []}
    box = {name: estimation_box_share(clf, points) for name, clf in ((args.a, clf_a), (args.b, clf_b))}
    out["box_share"] = {name: {"n_outside": s.n_outside, "n_converged": s.n_converged} for name, s in box.items()}
    for name, s in box.items():
        print(f"{name}: the paper's protocol puts {s.n_outside} of {s.n_converged} boundary points outside the box")
    print(f"\n| r(x) | h | S_c cosines i = 1 … 5 (z) | S_f cosines i = 1 … 5 (z) | fooling {args.a} → {args.b} |")
    print("|---|---|---|---|---|")
    for token in args.h.split(","):
        scale = scales.get(token) or study.HScale("custom", float(token))
        for rx in args.rx.split(","):
            settings = study.CompareSettings(points=split, m_estimated=args.m_estimated, scale=scale, rx=rx)
            t = time.perf_counter()
            both = study.compare_study(clf_a, clf_b, points, settings)
            angles = study.compare_angles(both, settings, m=args.m)
            h = float(both.h)
            noise = study.noise_norm(clf_a, points, 0.5)
            xi = study.xi(noise) if math.isfinite(noise.quantile) else math.nan
            rates: dict = {}
            if math.isfinite(xi):
                tm = study.fooling_matrix(
                    {args.a: clf_a, args.b: clf_b}, points, settings, h=h, m=args.m, xi=xi, n_vectors=args.vectors
                )
                rows = (args.a, args.b, RANDOM_ROW)
                rates = {r: {c: tm.rate(r, c) for c in (args.a, args.b)} for r in rows}
            run = {"rx": rx, "h_preset": token, "h": h, "xi": xi, "seconds": time.perf_counter() - t, "rates": rates}
            cells = []
            for kind in ("curved", "flat"):
                c = angles[kind]
                run[kind] = {
                    "cosines": [float(v) for v in c.cosines],
                    "baseline_mean": [float(v) for v in c.baseline.mean],
                    "baseline_std": [float(v) for v in c.baseline.std],
                    "z": [float(v) for v in c.z_scores],
                }
                cos = ", ".join(f"{float(v):.3f}" for v in c.cosines[:5])
                z = ", ".join(f"{float(v):+.1f}" for v in c.z_scores[:5])
                cells.append(f"{cos} ({z}; baseline {float(c.baseline.mean[0]):.3f} ± {float(c.baseline.std[0]):.3f})")
            out["runs"].append(run)
            fool = (
                f"S_c(A) {rates[args.a][args.b]:.1%}, S_c(B) {rates[args.b][args.b]:.1%}, random "
                f"{rates[RANDOM_ROW][args.b]:.1%} (ξ = {xi:.3g})"
                if rates
                else "no ξ"
            )
            print(f"| {rx} | {token} = {h:.4g} | {cells[0]} | {cells[1]} | {fool} |", flush=True)
    out["seconds"] = time.perf_counter() - t0
    path = Path(args.out or f"/tmp/reproduce_compare-{args.a}-{args.b}.json")
    path.write_text(json.dumps(out, indent=1))
    print(f"\n{out['seconds']:.0f} s; JSON: {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
