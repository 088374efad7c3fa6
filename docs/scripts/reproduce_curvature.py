"""Reproduce ICLR 2018 Fig. 7a: average curvature K_S of held-out points versus the subspace dimension m,
for the curved subspace S_c, the flat subspace S_f and a random subspace.

Usage (from the repository root; set BOUNDARY_ATLAS_CACHE to reuse trained networks and subspaces):

    python docs/scripts/reproduce_curvature.py --model mnist-lenet --n 100 --heldout 200 \\
        --n-directions 10 --m-max 20 --scales authors xi --out docs/results/curvature-mnist-lenet.json

For each scale h (``authors`` = 10·√d/512, ``xi`` = 1/5 of the random-noise norm that fools 50 % of
200 test points, or a number) it runs :func:`geometry.study.curvature_study` — the protocol of the
app's "Curvature vs m" page and of ``boundary-atlas report``, so the numbers and the disk cache are
shared with both: S_c from ``n`` training points (``PointSplit(n, heldout, seed=0)``), S_f from the
same points' DeepFool normals, a random subspace, and K_S(x) on the first ``heldout`` test points for
m on :func:`geometry.study.m_grid`, with ``n_directions`` random unit directions per m.
``--rx box`` (the app's default since issue 23: r(x) by box-constrained DeepFool, z = x + r(x) in the
pixel box) or ``--rx unconstrained`` (the paper's protocol, the default of this script: the numbers
of docs/reproduction-curvature.md were measured so).
It prints Markdown tables and writes every number, setting and time to ``--out`` (JSON);
with ``--png`` and kaleido installed it also writes the chart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from geometry import study, zoo
from geometry.data import load_dataset


def resolve_scale(spec: str) -> study.HScale:
    if spec in ("authors", "xi"):
        return study.HScale(spec)
    return study.HScale("custom", float(spec))


def curve_dict(c) -> dict:
    return {
        "m": c.m_values.tolist(),
        "mean": c.mean.tolist(),
        "std": c.std.tolist(),
        "share_positive": c.share_positive.tolist(),
        "kappa_mean": c.kappa_mean.tolist(),
        "kappa_std": c.kappa_std.tolist(),
        "n": c.n,
        "n_dropped": c.n_dropped,
        "n_directions": c.n_directions,
        "n_hvp": c.n_hvp,
    }


def table(result: dict) -> str:
    curves = result["curves"]
    ms = curves["S_c"]["m"]
    lines = [
        "| m | S_c K_S (mean ± std) | S_c > 0 | S_f K_S | S_f > 0 | random K_S | random > 0 |",
        "|---:|---|---:|---|---:|---|---:|",
    ]
    for _i, m in enumerate(ms):
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


def run_scale(clf, points, spec, args) -> dict:
    settings = study.CurvatureSettings(
        points=points.split,
        m_max=args.m_max,
        scale=resolve_scale(spec),
        point=args.point,
        n_directions=args.n_directions,
        rx=args.rx,
    )
    t0 = time.perf_counter()
    cs = study.curvature_study(clf, points, settings)
    seconds = {"study": time.perf_counter() - t0}
    S_c, S_f = cs.curved, cs.flat
    info = {}
    if spec == "xi":
        noise = study.noise_norm(clf, points, 0.5)
        info = {"noise_norm_50": noise.quantile, "infinite_share": noise.infinite_share}
    box = study.estimation_box_share(clf, points)  # the paper's protocol's boundary points outside the box
    return {
        "scale": spec,
        "rx": args.rx,
        "unconstrained_outside_box": {"n_outside": box.n_outside, "n_converged": box.n_converged},
        "h": cs.h,
        "h_how": cs.h_text,
        "settings_key": settings.key(),
        **info,
        "S_c": {
            "n": S_c.n,
            "n_dropped": S_c.n_dropped,
            "n_hvp": S_c.n_hvp,
            "n_matvec": S_c.n_matvec,
            "solver": S_c.solver,
            "asymmetry": S_c.asymmetry,
            "ritz_values": S_c.spectrum.tolist(),
            "reevaluated_K": S_c.curvatures.tolist(),
            "reevaluated_kappa": S_c.kappas.tolist(),
        },
        "S_f": {"n": S_f.n, "m": S_f.m, "singular_values": S_f.spectrum.tolist()},
        "heldout": {"n": cs.n_heldout, "points": cs.source},
        "curves": {name: curve_dict(c) for name, c in cs.curves.items()},
        "seconds": seconds,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mnist-lenet")
    p.add_argument("--n", type=int, default=100, help="training points for S_c / S_f")
    p.add_argument("--heldout", type=int, default=200, help="first test points used for K_S")
    p.add_argument("--n-directions", type=int, default=10)
    p.add_argument("--m-max", type=int, default=20)
    p.add_argument("--point", default="boundary", choices=["boundary", "inside"])
    p.add_argument("--scales", nargs="+", default=["authors", "xi"])
    p.add_argument(
        "--rx",
        default="unconstrained",
        choices=list(study.RX_PROTOCOLS),
        help="r(x): the paper's unconstrained DeepFool, or box-constrained DeepFool (the app's default)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--png", type=Path, default=None, help="chart of the first scale (needs kaleido)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_all = time.perf_counter()
    entry = zoo.ZOO[args.model]
    if not zoo.is_cached(args.model):
        raise SystemExit(
            f"{args.model} is not trained in {os.environ.get('BOUNDARY_ATLAS_CACHE', 'the default cache')}; "
            "this script never trains"
        )
    clf = zoo.load_model(args.model, train=False)
    train, test = load_dataset(entry.dataset, split="train"), load_dataset(entry.dataset, split="test")
    points = study.split_points(test, train, study.PointSplit(n_estimate=args.n, n_heldout=args.heldout, seed=0))
    result = {
        "model": args.model,
        "architecture": entry.architecture,
        "test_accuracy": clf.test_accuracy,
        "dataset": entry.dataset,
        "d": clf.d,
        "n": args.n,
        "heldout": args.heldout,
        "n_directions": args.n_directions,
        "m_max": args.m_max,
        "point": args.point,
        "tangent": True,
        "method": "finite_difference",
        "seeds": {"points": 0, "eigsh_start": 0, "random_subspace": 0, "directions": 0},
        "torch_threads": torch.get_num_threads(),
        "machine": platform.platform(),
        "load_average_start": os.getloadavg(),
        "scales": [],
    }
    for spec in args.scales:
        t = time.perf_counter()
        res = run_scale(clf, points, spec, args)
        res["seconds"]["total"] = time.perf_counter() - t
        result["scales"].append(res)
        print(
            f"\n## {args.model}, r(x) {args.rx}: {res['h_how']} (h = {res['h']:.4g}); study in {res['seconds']['study']:.0f} s, "
            f"{res['S_c']['n_hvp']:,} HVPs for S_c, asymmetry {res['S_c']['asymmetry']:.2f}"
        )
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
            from geometry.plotting import curvature_vs_m_figure

            first = result["scales"][0]  # the app's figure of the same (cached) study result
            settings = study.CurvatureSettings(
                points=points.split,
                m_max=args.m_max,
                scale=resolve_scale(first["scale"]),
                point=args.point,
                n_directions=args.n_directions,
                rx=args.rx,
            )
            fig = curvature_vs_m_figure(study.curvature_study(clf, points, settings).curves)
            fig.write_image(str(args.png), width=900, height=460)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
