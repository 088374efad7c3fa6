"""Reproduce ICLR 2018 Fig. 7b on a zoo network: fooling rate of random vectors of S_c, S_f and a random
subspace versus m, the UAP algorithm at the same ξ, and an h sweep (the curvature scale of S_c).

Everything that moves the result is a flag and is written into the output:

* the points, ξ, the m grid and the S_c disk cache are the study layer's (:mod:`geometry.study`, the
  protocol of the app and of ``boundary-atlas report``): ``split_points(test, train, PointSplit(n,
  heldout, uap_points, seed))``;
* ξ = ``study.xi(study.noise_norm(clf, points, share))`` = 1/5 of the random-noise norm that fools
  ``share`` of the first 200 test images (one random ray per point) — both shares 50 % and 80 %; rays
  searched up to the pixel cube's diameter √d, or 10·√d when fewer than ``share`` are fooled within it;
* S_c: the ``n`` estimation points, boundary point (``--point``), tangent projection (``--no-tangent``), finite
  differences at scale h for every h of ``--h`` (numbers, or ``authors`` = 10·√d/512, or ``xi``,
  ``xi/2``, ``2xi`` … relative to the 50 % ξ), m up to ``--m-max``;
* S_f: the same n points' normals; random: ``random_subspace(d, m_max, random_state=seed)``;
* fooling rates on the first ``--heldout`` test images, ``--samples`` random vectors per m, the same
  random coefficients for every subspace and every h (common random numbers);
* the UAP (CVPR 2017 Alg. 1, ℓ2, batched, δ = 0.2, 5 passes) on ``--uap-points`` training points.

Usage (from the repository root)::

    BOUNDARY_ATLAS_CACHE=/tmp/atlas-cache python docs/scripts/reproduce_universal.py --model mnist-lenet
    python docs/scripts/reproduce_universal.py --model cifar10-lenet --h authors,xi/2,xi
    python docs/scripts/reproduce_universal.py --model mnist-lenet --variants   # + inside point, no tangent

Prints markdown tables and writes a JSON file (``--out``). The network must already be trained and
cached (it is never trained here).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

import torch


def parse_h(token: str, h_authors: float, xi: float) -> tuple[str, float]:
    t = token.strip()
    if t == "authors":
        return "authors", h_authors
    if "xi" in t:
        if t == "xi":
            return "ξ", xi
        if t.startswith("xi/"):
            return f"ξ/{t[3:]}", xi / float(t[3:])
        if t.endswith("xi"):
            return f"{t[:-2]}ξ", float(t[:-2]) * xi
        raise SystemExit(f"cannot parse h token {token!r}")
    return t, float(t)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mnist-lenet")
    ap.add_argument("--n", type=int, default=100, help="estimation points for S_c / S_f (paper: 100)")
    ap.add_argument("--m-max", type=int, default=20)
    ap.add_argument("--heldout", type=int, default=1000, help="held-out test images for the fooling rates")
    ap.add_argument("--samples", type=int, default=10, help="random vectors per m")
    ap.add_argument("--uap-points", type=int, default=1000, help="training points for the UAP algorithm")
    ap.add_argument("--h", default="authors,1,2.5,xi/2,xi,2xi", help="comma-separated scales h")
    ap.add_argument("--point", default="boundary", choices=["boundary", "inside"])
    ap.add_argument("--no-tangent", action="store_true")
    ap.add_argument(
        "--variants",
        action="store_true",
        help="also S_c with point=inside and with tangent=False at the authors' h and at h = ξ/2",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: fastest on a busy machine)")
    ap.add_argument("--out", default=None, help="JSON output (default /tmp/reproduce_universal-<model>.json)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    from geometry import study, zoo
    from geometry.curvature import random_subspace
    from geometry.data import load_dataset
    from geometry.deepfool import deepfool
    from geometry.hessian import CurvatureEstimator, default_h
    from geometry.study import cached_subspace, m_grid
    from geometry.universal import fooling_rate, fooling_rate_vs_m, universal_perturbation

    timings: dict[str, float] = {}
    t = time.perf_counter()

    def tick(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - t
        t = now
        print(f"  [{now - t_start:7.1f} s] {name}", file=sys.stderr, flush=True)

    clf = zoo.load_model(args.model, train=False)
    dataset = zoo.ZOO[args.model].dataset
    train, test = load_dataset(dataset, split="train"), load_dataset(dataset, split="test")
    points = study.split_points(
        test, train, study.PointSplit(n_estimate=args.n, n_heldout=args.heldout, n_uap=args.uap_points, seed=args.seed)
    )
    held, est, uap_xs, data_key = points.heldout, points.estimate, points.uap, points.estimate_key
    tick("load")

    # ---------------------------------------------------------------- ξ for both shares
    noise = {}
    for s in (0.5, 0.8):
        noise[s] = study.noise_norm(clf, points, s)  # the protocol's ξ (module docstring)
        if not math.isfinite(noise[s].quantile):
            raise SystemExit(f"random noise fools fewer than {s:.0%} of the points at any norm tried: no ξ")
    xis = {s: study.xi(r) for s, r in noise.items()}
    tick("random-noise norm")

    df_est = deepfool(clf, est)
    df_held = deepfool(clf, held)
    r_med = float(df_held.norms[df_held.converged].median())
    x_med = float(held.flatten(1).norm(dim=1).median())
    tick("DeepFool")

    S_f = cached_subspace(
        "flat", clf, est, min(args.m_max, int(df_est.converged.sum())), data_key=data_key, deepfool_result=df_est
    )
    S_r = random_subspace(clf.d, args.m_max, random_state=args.seed, input_shape=clf.input_shape)
    ms = [m for m in m_grid(args.m_max) if m <= S_f.m]
    h_authors = default_h(clf)

    def curve(bases: dict, xi: float):
        # the same random_state for every call: identical coefficients g per m (common random numbers)
        return fooling_rate_vs_m(clf, held, bases, ms, xi=xi, n_samples=args.samples, random_state=args.seed)

    def summary(c, name: str) -> dict:
        mean, best = c.mean[name], c.best[name]
        i = int(mean.argmax())
        return {
            "m1_mean": float(mean[0]),
            "m1_best": float(best[0]),
            "max_mean": float(mean[i]),
            "argmax_m": ms[i],
            "max_best": float(best.max()),
            "argmax_best_m": ms[int(best.argmax())],
            "mean": [float(v) for v in mean],
            "best": [float(v) for v in best],
        }

    out: dict = {
        "model": args.model,
        "dataset": dataset,
        "test_accuracy": clf.test_accuracy,
        "d": clf.d,
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "m_values": ms,
        "h_authors": h_authors,
        "median_r_heldout": r_med,
        "median_x_norm_heldout": x_med,
        "deepfool_converged_est": float(df_est.converged.double().mean()),
        "deepfool_converged_heldout": float(df_held.converged.double().mean()),
        "noise": {
            str(s): {"quantile": r.quantile, "xi": xis[s], "infinite_share": r.infinite_share, "max_norm": r.max_norm}
            for s, r in noise.items()
        },
        "fig7b": {},
        "h_sweep": {},
        "variants": [],
    }

    S_c_cache: dict = {}
    sc_curves: dict = {}

    def sc_curve(h: float, xi: float, point: str = args.point, tangent: bool = not args.no_tangent):
        key = (round(h, 10), point, tangent, xi)
        if key not in sc_curves:
            sc_curves[key] = curve({"S_c": s_c(h, point, tangent)}, xi)
        return sc_curves[key]

    def s_c(h: float, point: str = args.point, tangent: bool = not args.no_tangent):
        key = (round(h, 10), point, tangent)
        if key not in S_c_cache:
            t0 = time.perf_counter()
            S_c_cache[key] = cached_subspace(
                "curved",
                clf,
                est,
                args.m_max,
                data_key=data_key,
                estimator=CurvatureEstimator(h=h, point=point, tangent=tangent),
                random_state=args.seed,
                deepfool_result=df_est,
            )
            tick(f"S_c h={h:.3g} {point} tangent={tangent} ({time.perf_counter() - t0:.0f} s, cached or computed)")
        return S_c_cache[key]

    # ---------------------------------------------------------------- Fig. 7b for both shares, authors' h and h = ξ
    uaps = {}
    for share, xi in xis.items():
        if not math.isfinite(xi):
            out["fig7b"][str(share)] = {"skipped": "random-noise norm infinite"}
            continue
        hs = {"authors": h_authors, "ξ": xi}
        c_fr = curve({"S_f": S_f, "random": S_r}, xi)
        row = {"xi": xi, "S_f": summary(c_fr, "S_f"), "random": summary(c_fr, "random"), "S_c": {}}
        for label, h in hs.items():
            row["S_c"][label] = {"h": h, **summary(sc_curve(h, xi), "S_c")}
        tick(f"Fig. 7b curves at share {share}")
        u = universal_perturbation(
            clf, uap_xs, xi=xi, norm=2, delta=0.2, max_passes=5, batch_size=64, random_state=args.seed
        )
        uaps[share] = u
        row["uap"] = {
            "heldout": fooling_rate(clf, held, u.v),
            "train_per_pass": u.fooling_rates,
            "best_pass": u.best_pass,
            "norm": float(u.v.norm()),
        }
        tick(f"UAP at share {share}")
        out["fig7b"][str(share)] = row

    # ---------------------------------------------------------------- h sweep at each share's ξ
    for share, xi in xis.items():
        if not math.isfinite(xi):
            continue
        sweep = out["h_sweep"][str(share)] = []
        for token in args.h.split(","):
            label, h = parse_h(token, h_authors, xi)
            S_c = s_c(h)
            c = sc_curve(h, xi)
            k5 = min(5, S_c.m)
            v = uaps[share].v.reshape(-1).double()
            sweep.append(
                {
                    "label": label,
                    "h": h,
                    "h_over_xi": h / xi,
                    **summary(c, "S_c"),
                    "kappa_normal_first5": float(S_c.kappas[:k5].mean()),
                    "K_first5": float(S_c.curvatures[:k5].mean()),
                    "ritz_first5": float(S_c.spectrum[:k5].mean()),
                    "asymmetry": float(S_c.asymmetry),
                    "uap_in_S_c": float((S_c.basis.T @ v).norm() / v.norm()),
                }
            )
            tick(f"h sweep share={share} h={h:.3g}")
    xi = xis[0.5]
    if math.isfinite(xi) and args.variants:
        for point, tangent in (("inside", True), ("boundary", False)):
            for label, h in (("authors", h_authors), ("ξ/2", xi / 2)):
                c = sc_curve(h, xi, point, tangent)
                out["variants"].append(
                    {"label": label, "h": h, "point": point, "tangent": tangent, **summary(c, "S_c")}
                )
                tick(f"variant {point} tangent={tangent} h={h:.3g}")
    out["uap_in_random"] = {
        str(s): float((S_r.basis.T @ u.v.reshape(-1).double()).norm() / u.v.norm()) for s, u in uaps.items()
    }

    total = time.perf_counter() - t_start
    out["seconds"] = total
    out["timings"] = timings
    out["machine"] = (
        f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"Python {platform.python_version()}"
    )
    path = Path(args.out or f"/tmp/reproduce_universal-{args.model}.json")
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print_tables(out)
    print(f"\nwritten {path}; total {total:.0f} s")
    return 0


def print_tables(out: dict) -> None:
    ms = out["m_values"]
    print(f"\n## {out['model']} (test accuracy {100 * out['test_accuracy']:.2f} %, d = {out['d']})\n")
    print(
        f"median ‖r(x)‖ = {out['median_r_heldout']:.3g} (median ‖x‖ = {out['median_x_norm_heldout']:.3g}); "
        f"authors' h = {out['h_authors']:.3g}"
    )
    for s, nz in out["noise"].items():
        print(
            f"share {float(s):.0%}: noise norm {nz['quantile']:.4g}, ξ = {nz['xi']:.4g}, "
            f"rays never fooling {100 * nz['infinite_share']:.1f} % (searched up to {nz['max_norm']:.4g})"
        )
    for s, row in out["fig7b"].items():
        if "skipped" in row:
            print(f"\nshare {s}: skipped ({row['skipped']})")
            continue
        print(
            f"\n### Fig. 7b, ξ = {row['xi']:.4g} (share {float(s):.0%}); UAP: {pct(row['uap']['heldout'])} % held-out "
            f"(train per pass {', '.join(pct(v) for v in row['uap']['train_per_pass'])})\n"
        )
        print(
            "| m | "
            + " | ".join(f"S_c h={v['h']:.3g} mean / best" for v in row["S_c"].values())
            + " | S_f mean / best | random mean / best |"
        )
        print("|---:|" + "---:|" * (len(row["S_c"]) + 2))
        for i, m in enumerate(ms):
            cells = [f"{pct(v['mean'][i])} / {pct(v['best'][i])}" for v in row["S_c"].values()]
            cells += [f"{pct(row[k]['mean'][i])} / {pct(row[k]['best'][i])}" for k in ("S_f", "random")]
            print(f"| {m} | " + " | ".join(cells) + " |")
    for s, sweep in out["h_sweep"].items():
        ref = out["fig7b"][s]
        print(f"\n### h sweep at ξ = {out['noise'][s]['xi']:.4g} (share {float(s):.0%})\n")
        print(
            "| h | h/ξ | S_c mean at m=1 | S_c best mean (m) | S_c best vector | S_f best mean (m) | S_f best vector "
            "| random best mean | κ normal (first 5, 1/pixel) | asymmetry | UAP in S_c |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in sweep:
            mark = " ← h = ξ" if r["label"] == "ξ" else ""
            print(
                f"| {r['h']:.3g} ({r['label']}){mark} | {r['h_over_xi']:.2f} | {pct(r['m1_mean'])} | "
                f"{pct(r['max_mean'])} ({r['argmax_m']}) | {pct(r['max_best'])} | {pct(ref['S_f']['max_mean'])} "
                f"({ref['S_f']['argmax_m']}) | {pct(ref['S_f']['max_best'])} | {pct(ref['random']['max_mean'])} | "
                f"{r['kappa_normal_first5']:.3g} | {r['asymmetry']:.2f} | {pct(r['uap_in_S_c'])} |"
            )
        print(f"\nUAP in a random {ms[-1]}-dim subspace: {pct(out['uap_in_random'][s])} %")
    for r in out["variants"]:
        print(
            f"variant point={r['point']} tangent={r['tangent']} h={r['h']:.3g}: S_c m=1 {pct(r['m1_mean'])} %, "
            f"best mean {pct(r['max_mean'])} % (m={r['argmax_m']}), best vector {pct(r['max_best'])} %"
        )


if __name__ == "__main__":
    raise SystemExit(main())
