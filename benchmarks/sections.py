"""Benchmark: adaptive versus dense normal cross-sections (``geometry.sections.normal_section``).

For several test points x of a LeNet, with r = DeepFool r(x), and several directions v (a random
unit vector; the DeepFool normal of another image, a structured direction) and extents (the default
±2.5‖r‖ and a wide ±10‖r‖ that shows more classes), the 256×256 section is computed twice in the
same run — adaptively (coarse grid + refinement of cells whose corner labels disagree) and densely —
and compared: images evaluated (forward passes), label agreement, wall time.

Goals: ≥ 99.5 % identical labels, ≤ 10 % of the dense forward passes, 256×256 well under a second.

Usage::

    python -m benchmarks.sections                    # mnist-lenet, 3 points × 2 directions × 2 extents
    python -m benchmarks.sections --model cifar10-lenet
    python -m benchmarks.sections --random-weights   # no trained model needed (smoke test)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from benchmarks.deepfool import DOCS, load_inputs, machine, update_docs_section  # noqa: E402

SECTION = "sections"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mnist-lenet")
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--extents", type=float, nargs="+", default=[2.5, 10.0], help="half-widths in units of ‖r‖")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)
    args.n = args.points + 1
    if args.threads:
        torch.set_num_threads(args.threads)

    from geometry.deepfool import deepfool
    from geometry.sections import normal_section, random_direction

    clf, xs, model_desc, data_desc = load_inputs(args)
    xs = xs[: args.points + 1].to(clf.dtype)
    df = deepfool(clf, xs)
    print(f"[bench] {model_desc} on {data_desc}; {machine()}", file=sys.stderr)
    # warm-up, untimed
    normal_section(clf, xs[0], df.r[0], random_direction(clf.input_shape, random_state=0), resolution=32)

    res = args.resolution
    rows = []
    for i in range(args.points):
        x, r = xs[i], df.r[i]
        directions = [
            ("random", random_direction(clf.input_shape, random_state=i)),
            (f"r(x_{i + 1})", df.r[(i + 1) % len(xs)]),
        ]
        for vname, v in directions:
            for fac in args.extents:
                ext = fac * float(r.norm())
                t0 = time.perf_counter()
                ada = normal_section(clf, x, r, v, extent=ext, resolution=res)
                t_ada = time.perf_counter() - t0
                t0 = time.perf_counter()
                dense = normal_section(clf, x, r, v, extent=ext, resolution=res, adaptive=False)
                t_dense = time.perf_counter() - t0
                agree = float((ada.labels == dense.labels).double().mean())
                n_cls = len(torch.unique(dense.labels))
                rows.append(
                    dict(
                        point=i,
                        v=vname,
                        ext=fac,
                        classes=n_cls,
                        n_ada=ada.n_forward,
                        n_dense=dense.n_forward,
                        ratio=ada.n_forward / dense.n_forward,
                        agree=agree,
                        t_ada=t_ada,
                        t_dense=t_dense,
                    )
                )
                print(
                    f"[bench] point {i} v={vname} ±{fac}‖r‖: {ada.n_forward} vs {dense.n_forward} forwards, "
                    f"agreement {agree:.4%}, {t_ada:.2f}s vs {t_dense:.2f}s",
                    file=sys.stderr,
                )

    lines = [
        "| point | v | extent | classes in view | adaptive forwards | ratio | label agreement | adaptive (s) | dense (s) | speed-up |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in rows:
        lines.append(
            f"| {w['point']} | {w['v']} | ±{w['ext']:g}‖r‖ | {w['classes']} | {w['n_ada']} | {w['ratio']:.1%} | "
            f"{w['agree']:.3%} | {w['t_ada']:.2f} | {w['t_dense']:.2f} | {w['t_dense'] / w['t_ada']:.1f}× |"
        )
    mean = lambda k: sum(w[k] for w in rows) / len(rows)
    lines.append(
        f"| **all** | | | | {mean('n_ada'):.0f} (mean) | {max(w['ratio'] for w in rows):.1%} (max) | "
        f"{min(w['agree'] for w in rows):.3%} (min) | {mean('t_ada'):.2f} (mean) | {mean('t_dense'):.2f} (mean) | "
        f"{mean('t_dense') / mean('t_ada'):.1f}× |"
    )
    table = "\n".join(lines)
    print(table)

    if not args.no_docs:
        cmd = " ".join(["python -m benchmarks.sections", *(argv if argv is not None else sys.argv[1:])])
        body = [
            "## Normal cross-sections: adaptive vs dense",
            "",
            f"Measured {_dt.date.today().isoformat()} with `{cmd}`.",
            "",
            f"- Machine: {machine()} — shared with other jobs, so absolute times are noisy.",
            f"- Model: {model_desc}; points: {data_desc} "
            f"(the first {args.points} as x), r = DeepFool r(x) (ℓ2, overshoot 0.02).",
            f"- Grid {res}×{res} = {res * res} points; adaptive: default coarse spacing (16 grid steps), refinement of "
            "cells whose corners disagree (plus their 8 neighbours while cells are ≥ 5 steps wide); directions v: "
            "a random unit vector and the "
            "DeepFool normal of the next image; extent ±2.5‖r‖ (the default) and ±10‖r‖.",
            "",
            table,
            "",
            f"Goals: ≥ 99.5 % identical labels (worst case measured: {min(w['agree'] for w in rows):.3%}), ≤ 10 % of the "
            f"dense forward passes (worst: {max(w['ratio'] for w in rows):.1%}), 256×256 well under a second "
            f"(adaptive mean {mean('t_ada'):.2f} s, max {max(w['t_ada'] for w in rows):.2f} s).",
        ]
        update_docs_section(DOCS, SECTION, "\n".join(body))
        print(f"[bench] wrote the '{SECTION}' section of {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
