"""Benchmark: CROWN's direct backward pass against the original autograd one (geometry.crown, issue 21).

Both paths are in the library: ``CrownNetwork(..., backward="autograd")`` passes the coefficient rows back
through every affine layer by vmapped autograd vjps and sums constants elementwise (the code as it was
before the speed-up); ``backward="direct"`` (the default) uses closed-form transposes (a matmul with the
weight, a small convolution's dense matrix or ``conv_transpose2d``, batch norm's per-channel scale),
Hölder bounds of the first layer from its weight rows, and matrix-product constants. Same network, same
points, same bisection, in one run, alternating the two paths ``--repeat`` times (ABAB…):

* digits-lenet, the first ``--n`` digits test points: the certified ℓ2 and ℓ∞ radii (bisection to a
  relative ``--tol``) — what the Certified page computes;
* mnist-lenet (when cached, or ``--mnist``), the first ``--n-mnist`` MNIST test points: one margin-bound
  computation at ε = 0.5 (ℓ2), where the 24×24 first layer goes by ``conv_transpose2d``.

Reported: median seconds of each path, the ratio autograd / direct, and the largest difference of the
radii and bounds (the paths must agree to rounding). Timings on a shared machine are only meaningful as
the ratio within one run; the machine's load average is printed with them.

Usage::

    python -m benchmarks.crown                 # digits-lenet, 10 points, tol 0.01, 2 repeats
    python -m benchmarks.crown --n 20 --repeat 3 --mnist
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402

from geometry import zoo  # noqa: E402
from geometry.crown import CrownNetwork  # noqa: E402
from geometry.data import load_dataset  # noqa: E402


def _alternate(label: str, run_a, run_b, repeat: int) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    times: dict[str, list[float]] = {"autograd": [], "direct": []}
    out = {}
    for _ in range(repeat):
        for name, run in (("autograd", run_a), ("direct", run_b)):
            t = time.perf_counter()
            out[name] = run()
            times[name].append(time.perf_counter() - t)
    a, b = statistics.median(times["autograd"]), statistics.median(times["direct"])
    print(f"{label}: autograd {a:.2f} s, direct {b:.2f} s, ratio {a / b:.2f}×", flush=True)
    return a, b, out["autograd"], out["direct"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10, help="digits test points")
    parser.add_argument("--tol", type=float, default=0.01, help="relative bisection tolerance")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each path (alternating)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--mnist", action="store_true", help="also mnist-lenet (trains it if not cached)")
    parser.add_argument("--n-mnist", type=int, default=2, help="MNIST test points")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s)")
    print("| case | autograd (s) | direct (s) | autograd / direct | max difference |")
    rows = []
    clf = zoo.load_model("digits-lenet")
    test = load_dataset("digits", split="test", limit=args.n)
    x, y = test.images.double(), clf.predict(test.images)
    nets = {b: CrownNetwork(clf, tuple(clf.input_shape), backward=b) for b in ("autograd", "direct")}
    for net in nets.values():  # warm-up: vjps, dense matrices, first-layer rows
        net.radius(x[:2], y[:2], norm="l2", tol=0.5)
        net.radius(x[:2], y[:2], norm="linf", tol=0.5)
    for norm in ("l2", "linf"):
        a, b, ra, rb = _alternate(
            f"digits-lenet radius {norm}",
            lambda norm=norm: nets["autograd"].radius(x, y, norm=norm, tol=args.tol),
            lambda norm=norm: nets["direct"].radius(x, y, norm=norm, tol=args.tol),
            args.repeat,
        )
        rows.append(
            (f"digits-lenet, {args.n} points, {norm} radius (tol {args.tol:g})", a, b, float((ra - rb).abs().max()))
        )
    if args.mnist or zoo.is_cached("mnist-lenet"):
        clf = zoo.load_model("mnist-lenet")
        test = load_dataset("mnist", split="test", limit=args.n_mnist)
        x, y = test.images.double(), clf.predict(test.images)
        nets = {b: CrownNetwork(clf, tuple(clf.input_shape), backward=b) for b in ("autograd", "direct")}
        for net in nets.values():
            net.margin_bounds(x[:1], y[:1], 0.5, "l2")
        a, b, la, lb = _alternate(
            "mnist-lenet margin bounds l2",
            lambda: nets["autograd"].margin_bounds(x, y, 0.5, "l2"),
            lambda: nets["direct"].margin_bounds(x, y, 0.5, "l2"),
            args.repeat,
        )
        fin = torch.isfinite(la)
        rows.append(
            (
                f"mnist-lenet, {args.n_mnist} points, ℓ2 margin bounds at ε = 0.5",
                a,
                b,
                float((la - lb)[fin].abs().max()),
            )
        )
    print()
    print("| case | autograd (s) | direct (s) | autograd / direct | max difference |")
    print("|---|---|---|---|---|")
    for label, a, b, diff in rows:
        print(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.2f}× | {diff:.1e} |")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
