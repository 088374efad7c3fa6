"""Reproduce ICLR 2018 Fig. 7a: average curvature K_S of held-out points versus the subspace dimension m,
for the curved subspace S_c, the flat subspace S_f and a random subspace.

Usage (from the repository root; set BOUNDARY_ATLAS_CACHE to reuse trained networks and subspaces):

    python docs/scripts/reproduce_curvature.py --model mnist-lenet --n 100 --heldout 200 \\
        --n-directions 10 --m-max 20 --scales authors xi --out docs/results/curvature-mnist-lenet.json

For each scale h (``authors`` = 10·√d/512, ``xi`` = 1/5 of the random-noise norm that fools 50 % of
200 test points, or a number) it computes S_c from ``n`` training points (the app's choice of points:
``choose_points(len(train), n, random_state=0)``, so the disk cache is shared with the app), S_f
from the same points' DeepFool normals, a random subspace (seed 0), and K_S(x) on the first
``heldout`` test points for m on a grid, with ``n_directions`` random unit directions per m (shared by
all points). It prints Markdown tables and writes every number, setting and time to ``--out`` (JSON);
with ``--png`` and kaleido installed it also writes the chart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from geometry import zoo  # noqa: E402
from geometry.curvature import average_curvature, random_subspace  # noqa: E402
from geometry.data import load_dataset  # noqa: E402
from geometry.deepfool import deepfool  # noqa: E402
from geometry.hessian import default_h  # noqa: E402
from geometry.store import cached_subspace, choose_points, m_grid  # noqa: E402
from geometry.universal import random_noise_norm  # noqa: E402


def resolve_scale(clf, spec: str, test_images) -> tuple[float, str, dict]:
    if spec == "authors":
        return default_h(clf), "authors' h = 10·√d/512", {}
    if spec == "xi":
        t = time.perf_counter()
        noise = random_noise_norm(clf, test_images[:200], share=0.5, random_state=0)
        info = {"noise_norm_50": noise.quantile, "infinite_share": noise.infinite_share,
                "noise_seconds": time.perf_counter() - t}
        if not math.isfinite(noise.quantile):
            raise SystemExit("random noise fools fewer than 50 % of the points: no ξ")
        return noise.quantile / 5, "h = ξ = (noise norm fooling 50 % of 200 test points) / 5", info
    return float(spec), f"h = {float(spec):g}", {}


def curve_dict(c) -> dict:
    return {"m": c.m_values.tolist(), "mean": c.mean.tolist(), "std": c.std.tolist(),
            "share_positive": c.share_positive.tolist(), "kappa_mean": c.kappa_mean.tolist(),
            "kappa_std": c.kappa_std.tolist(), "n": c.n, "n_dropped": c.n_dropped, "n_directions": c.n_directions,
            "n_hvp": c.n_hvp}


def table(result: dict) -> str:
    curves = result["curves"]
    ms = curves["S_c"]["m"]
    lines = ["| m | S_c K_S (mean ± std) | S_c > 0 | S_f K_S | S_f > 0 | random K_S | random > 0 |",
             "|---:|---|---:|---|---:|---|---:|"]
    for i, m in enumerate(ms):
        row = [str(m)]
        for name in ("S_c", "S_f", "random"):
            c = curves[name]
            if m in c["m"]:
                j = c["m"].index(m)
                row += [f"{c['mean'][j]:+.3f} ± {c['std'][j]:.3f}", f"{c['share_positive'][j]:.0%}"]
            else:
                row += ["—", "—"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def run_scale(clf, est, held, test_images, data_key, spec, args) -> dict:
    h, how, info = resolve_scale(clf, spec, test_images)
    times = {}
    t0 = time.perf_counter()
    df_est = deepfool(clf, est)
    times["deepfool_estimate"] = time.perf_counter() - t0
    cached = {"hit": False}

    def progress(f, msg):
        if "disk cache" in msg:
            cached["hit"] = True

    t = time.perf_counter()
    S_c = cached_subspace("curved", clf, est, args.m_max, data_key=data_key, method="finite_difference", h=h,
                          point=args.point, random_state=0, deepfool_result=df_est, progress=progress)
    times["S_c"] = time.perf_counter() - t
    S_f = cached_subspace("flat", clf, est, min(args.m_max, int(df_est.converged.sum())), data_key=data_key,
                          deepfool_result=df_est)
    S_r = random_subspace(clf.d, args.m_max, random_state=0, input_shape=clf.input_shape)
    t = time.perf_counter()
    df_held = deepfool(clf, held)
    times["deepfool_heldout"] = time.perf_counter() - t
    ms = m_grid(args.m_max, points=args.m_points)
    curves = {}
    for name, s in (("S_c", S_c), ("S_f", S_f), ("random", S_r)):
        t = time.perf_counter()
        c = average_curvature(clf, held, s, [m for m in ms if m <= s.m], n_directions=args.n_directions,
                              method="finite_difference", h=h, random_state=0, point=args.point,
                              deepfool_result=df_held)
        times[f"K_S {name}"] = time.perf_counter() - t
        curves[name] = curve_dict(c)
    r_norms = df_held.norms[df_held.converged].double()
    return {
        "scale": spec, "h": h, "h_how": how, **info,
        "S_c": {"from_disk_cache": cached["hit"], "n": S_c.n, "n_dropped": S_c.n_dropped, "n_hvp": S_c.n_hvp,
                "n_matvec": S_c.n_matvec, "solver": S_c.solver, "asymmetry": S_c.asymmetry,
                "ritz_values": S_c.eigenvalues.tolist(), "reevaluated_K": S_c.curvatures.tolist(),
                "reevaluated_kappa": S_c.kappas.tolist()},
        "S_f": {"n": S_f.n, "m": S_f.m, "singular_values": S_f.eigenvalues.tolist()},
        "heldout": {"n": len(held), "converged": int(df_held.converged.sum()),
                    "median_r_norm": float(r_norms.median()), "mean_r_norm": float(r_norms.mean())},
        "curves": curves,
        "seconds": times,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist-lenet")
    p.add_argument("--n", type=int, default=100, help="training points for S_c / S_f")
    p.add_argument("--heldout", type=int, default=200, help="first test points used for K_S")
    p.add_argument("--n-directions", type=int, default=10)
    p.add_argument("--m-max", type=int, default=20)
    p.add_argument("--m-points", type=int, default=8, help="number of m values on the grid")
    p.add_argument("--point", default="boundary", choices=["boundary", "inside"])
    p.add_argument("--scales", nargs="+", default=["authors", "xi"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None, help="chart of the first scale (needs kaleido)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    entry = zoo.ZOO[args.model]
    if not zoo.is_cached(args.model):
        raise SystemExit(f"{args.model} is not trained in {os.environ.get('BOUNDARY_ATLAS_CACHE', 'the default cache')}; "
                         "this script never trains")
    clf = zoo.load_model(args.model, train=False)
    train, test = load_dataset(entry.dataset, split="train"), load_dataset(entry.dataset, split="test")
    est = train.images[choose_points(len(train), args.n, random_state=0)]
    held = test.images[: args.heldout]
    data_key = f"{entry.dataset}/train/seed0/n{args.n}"  # = pages.common.study_points
    result = {
        "model": args.model, "architecture": entry.architecture, "test_accuracy": clf.test_accuracy,
        "dataset": entry.dataset, "d": clf.d, "n": args.n, "heldout": args.heldout,
        "n_directions": args.n_directions, "m_max": args.m_max, "point": args.point, "tangent": True,
        "method": "finite_difference", "seeds": {"points": 0, "eigsh_start": 0, "random_subspace": 0, "directions": 0},
        "torch_threads": torch.get_num_threads(), "machine": platform.platform(),
        "load_average_start": os.getloadavg(), "scales": [],
    }
    for spec in args.scales:
        t = time.perf_counter()
        res = run_scale(clf, est, held, test.images, data_key, spec, args)
        res["seconds"]["total"] = time.perf_counter() - t
        result["scales"].append(res)
        print(f"\n## {args.model}: {res['h_how']} (h = {res['h']:.4g}); S_c {'from cache' if res['S_c']['from_disk_cache'] else 'computed'}"
              f" in {res['seconds']['S_c']:.0f} s, {res['S_c']['n_hvp']:,} HVPs, asymmetry {res['S_c']['asymmetry']:.2f}")
        print(table(res))
        print("seconds:", {k: round(v, 1) for k, v in res["seconds"].items()}, flush=True)
    result["seconds_total"] = time.perf_counter() - t_all
    result["load_average_end"] = os.getloadavg()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    if args.png:
        try:
            import kaleido  # noqa: F401
        except ImportError:
            print("kaleido is not installed: no PNG (screenshot the Curvature vs m page instead)")
        else:
            from geometry.curvature import CurvatureCurve  # noqa: F401  (figure takes result objects)
            from geometry.plotting import curvature_vs_m_figure

            class _C:  # the figure reads these attributes only
                def __init__(self, c, h):
                    self.m_values = torch.tensor(c["m"])
                    self.mean, self.std = torch.tensor(c["mean"]), torch.tensor(c["std"])
                    self.kappa_mean, self.kappa_std = torch.tensor(c["kappa_mean"]), torch.tensor(c["kappa_std"])
                    self.share_positive = torch.tensor(c["share_positive"])
                    self.method, self.h = "finite_difference", h

            first = result["scales"][0]
            fig = curvature_vs_m_figure({k: _C(v, first["h"]) for k, v in first["curves"].items()})
            fig.write_image(str(args.png), width=900, height=460)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
