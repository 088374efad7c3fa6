"""Benchmark: matrix-free S_c (eigsh on batched average HVPs) versus the dense averaged Hessian.

Cases (each in its own subprocess so that peak memory is per case):

* ``cifar``: S_c with n = 100 points, m = 20 on a CIFAR-sized (3×32×32) LeNet (the zoo's
  ``cifar10-lenet`` if it is trained and cached, else the same architecture with random weights),
  then, in the same process and on the same boundary points, the dense average tangent Hessian
  (d = 3072 operator columns, i.e. d·n HVPs) and its eigen-decomposition;
* ``large``: S_c with m = 10 at 3×224×224 (d = 150 528) on a small random-weight conv net, where
  a dense d×d float64 matrix would need 181 GB: memory stays O(d·(m + ncv)).

Peak memory is the peak growth of the process's resident set size during the computation
(sampled every 5 ms from ``/proc/self/statm``) over its value just before, with the model, the
points and DeepFool already done (torch allocations are invisible to tracemalloc). Speed claims are ratios within the same run (DESIGN §5).

Usage::

    python -m benchmarks.curvature                 # both cases, prints a table
    python -m benchmarks.curvature --skip-dense    # without the (slow) dense baseline
    python -m benchmarks.curvature --method smoothed
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakRSS:
    """Peak growth of the current RSS over its value on entry, sampled every 5 ms by a thread."""

    def __enter__(self):
        import threading

        self.base = _current_rss_mb()
        self.peak = self.base
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, _current_rss_mb())
                self._stop.wait(0.005)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _current_rss_mb())
        self.mb = self.peak - self.base
        return False


def _boundary_inputs(clf, xs):
    """DeepFool on xs (geometry.deepfool; a top-2 stand-in with r = 0 if it is not there yet)."""
    import torch

    try:
        from geometry.deepfool import deepfool
    except ImportError:
        deepfool = None
    if deepfool is not None:
        return deepfool(clf, xs), "deepfool"
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class _DF:
        r: torch.Tensor
        label: torch.Tensor
        adv_label: torch.Tensor
        converged: torch.Tensor

    order = clf.logits(xs).argsort(1, descending=True)
    return _DF(
        torch.zeros_like(xs), order[:, 0].clone(), order[:, 1].clone(), torch.ones(len(xs), dtype=torch.bool)
    ), "top-2 stand-in (r = 0)"


def _cifar_classifier(seed: int):
    import torch

    from geometry import zoo
    from geometry.classifier import make_classifier

    try:
        if zoo.is_cached("cifar10-lenet"):
            return zoo.load_model("cifar10-lenet", train=False), "cifar10-lenet (trained)"
    except Exception:  # pragma: no cover - zoo not ready
        pass
    torch.manual_seed(seed)  # a benchmark script: weight init only
    net = zoo.build_architecture("lenet", input_shape=(3, 32, 32), num_classes=10, channels=(32, 64), hidden=(256, 128))
    return make_classifier(
        net, input_shape=(3, 32, 32), class_names=[str(i) for i in range(10)], name="lenet-random"
    ), "LeNet(32,64;256,128), random weights"


def _cifar_points(n: int, seed: int):
    import torch

    try:
        from geometry.data import load_dataset

        ds = load_dataset("cifar10", split="test", limit=n)
        if len(ds.images) >= n:
            return ds.images[:n].float(), "CIFAR-10 test"
    except Exception:
        pass
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 32, 32, generator=gen), "uniform random images"


def _large_classifier(seed: int):
    import torch
    from torch import nn

    from geometry.classifier import make_classifier

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(256, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )
    return make_classifier(
        net, input_shape=(3, 224, 224), class_names=[str(i) for i in range(10)], name="small-conv-224"
    ), "small conv net, random weights"


def run_case(case: str, args) -> dict:
    import numpy as np
    import scipy.linalg
    import torch

    from geometry.curvature import curved_subspace
    from geometry.hessian import CurvatureEstimator, boundary_operator

    torch.set_num_threads(args.threads)
    if case == "cifar":
        clf, model_desc = _cifar_classifier(args.seed)
        xs, data_desc = _cifar_points(args.n, args.seed)
        m = args.m
    else:
        clf, model_desc = _large_classifier(args.seed)
        xs = torch.rand(args.large_n, 3, 224, 224, generator=torch.Generator().manual_seed(args.seed))
        data_desc = "uniform random images"
        m = args.large_m
    t0 = time.perf_counter()
    df, df_desc = _boundary_inputs(clf, xs)
    t_df = time.perf_counter() - t0
    rows = []
    import gc

    gc.collect()
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        est = CurvatureEstimator(method=args.method, chunk_size=args.chunk)
        s = curved_subspace(clf, xs, m, estimator=est, solver="eigsh", deepfool_result=df, tol=args.tol)
        t_eigsh = time.perf_counter() - t0
    peak_eigsh = mem.mb
    ncv = min(clf.d, max(2 * m + 1, 20))
    rows.append(
        dict(
            case=case,
            what="S_c eigsh (matrix-free)",
            d=clf.d,
            n=s.n,
            m=m,
            method=s.method,
            scale=s.h if s.h is not None else s.beta,
            seconds=t_eigsh,
            n_hvp=s.n_hvp,
            n_matvec=s.n_matvec,
            peak_mb=peak_eigsh,
            dm_mb=clf.d * (m + ncv) * 8 / 2**20,
            dense_matrix_mb=clf.d**2 * 8 / 2**20,
            top_ritz=[round(float(v), 4) for v in s.spectrum[:3]],
            top_curv=[round(float(v), 4) for v in s.curvatures[:3]],
            asymmetry=s.asymmetry,
        )
    )

    if case == "cifar" and not args.skip_dense:
        keep = torch.as_tensor(df.converged).bool()
        z = xs[keep] + torch.as_tensor(df.r)[keep]
        op = boundary_operator(
            clf,
            z,
            torch.as_tensor(df.label)[keep],
            torch.as_tensor(df.adv_label)[keep],
            estimator=est,
        )
        from geometry.curvature import _average_operator  # the same batched average as the matvec

        gc.collect()
        mem = PeakRSS().__enter__()
        t0 = time.perf_counter()
        grad = op.gradient()
        normals = grad / grad.norm(dim=1, keepdim=True)
        d = clf.d
        n_cols = d if args.dense_columns <= 0 else min(d, args.dense_columns)
        A = torch.zeros(d, d, dtype=torch.float64)
        block = max(1, op.chunk_size // op.n) * 4
        eye = torch.eye(d, dtype=torch.float64)
        for k in range(0, n_cols, block):
            kk = min(n_cols, k + block)
            A[:, k:kk] = _average_operator(op, normals, eye[k:kk], tangent=True).double().T
        t_cols = time.perf_counter() - t0
        extra = {}
        if n_cols == d:
            t1 = time.perf_counter()
            evals, evecs = torch.linalg.eigh(0.5 * (A + A.T))
            t_eigh = time.perf_counter() - t1
            top = evecs[:, -m:].flip(1)
            cos = np.cos(scipy.linalg.subspace_angles(s.basis.numpy(), top.numpy()))
            extra = dict(
                top_ritz=[round(float(v), 4) for v in evals.flip(0)[:3]],
                asymmetry=float((A - A.T).norm() / (A.norm() + A.T.norm())),
                mean_cos_principal_angles_vs_eigsh=float(cos.mean()),
                extrapolated=False,
            )
        else:  # every column costs n HVPs: the time is linear in the number of columns
            t1 = time.perf_counter()
            torch.linalg.eigh(
                torch.eye(d, dtype=torch.float64)
                + 1e-3 * torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0)).tril()
            )
            t_eigh = time.perf_counter() - t1
            extra = dict(top_ritz=None, asymmetry=float("nan"), extrapolated=True)
        mem.__exit__(None, None, None)
        rows.append(
            dict(
                case=case,
                what=f"dense averaged Hessian + eigh{'' if n_cols == d else f' (timed {n_cols} of {d} columns, extrapolated)'}",
                d=d,
                n=op.n,
                m=m,
                method=op.method,
                scale=op.scale,
                seconds=t_cols * d / n_cols + t_eigh,
                n_hvp=d * op.n,
                n_matvec=d,
                peak_mb=mem.mb,
                dm_mb=clf.d * (m + ncv) * 8 / 2**20,
                dense_matrix_mb=d * d * 8 / 2**20,
                top_curv=None,
                **extra,
            )
        )
    for r in rows:
        r.update(
            model=model_desc, data=data_desc, deepfool=df_desc, deepfool_seconds=t_df, threads=torch.get_num_threads()
        )
    return {"rows": rows}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=["cifar", "large"], help="run one case in this process and print JSON")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--m", type=int, default=20)
    p.add_argument("--large-n", type=int, default=8)
    p.add_argument("--large-m", type=int, default=10)
    p.add_argument("--method", default="finite_difference", choices=["finite_difference", "exact", "smoothed"])
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument(
        "--chunk", type=int, default=None, help="pairs per batched call (default: geometry.hessian.default_chunk_size)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-dense", action="store_true")
    p.add_argument(
        "--dense-columns",
        type=int,
        default=128,
        help="operator columns actually computed for the dense baseline (time extrapolated to d); 0 = all d",
    )
    p.add_argument("--skip-large", action="store_true")
    args = p.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return 0
    rows = []
    cases = ["cifar"] + ([] if args.skip_large else ["large"])
    passthrough = [a for a in (argv if argv is not None else sys.argv[1:]) if a not in ("--skip-large",)]
    for case in cases:
        out = subprocess.run(
            [sys.executable, __file__, "--case", case, *passthrough],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        rows += json.loads(out.stdout.strip().splitlines()[-1])["rows"]
    header = "| case | what | d | n | m | method (scale) | time s | HVPs | peak ΔRSS MB | d·(m+ncv)·8 B MB | dense d²·8 B MB | top-3 Ritz | top-3 re-evaluated K |"
    print(header)
    print("|" + "|".join(["---"] * (header.count("|") - 1)) + "|")
    for r in rows:
        scale = f"{r['method']} ({r['scale']:.3g})" if r["scale"] is not None else r["method"]
        print(
            f"| {r['case']} | {r['what']} | {r['d']} | {r['n']} | {r['m']} | {scale} | {r['seconds']:.1f} | {r['n_hvp']} | "
            f"{r['peak_mb']:.0f} | {r['dm_mb']:.1f} | {r['dense_matrix_mb']:.0f} | {r['top_ritz'] or '—'} | {r['top_curv'] or '—'} |"
        )
    by = {(r["case"], r["what"].split()[0]): r for r in rows}
    if ("cifar", "S_c") in by and ("cifar", "dense") in by:
        a, b = by[("cifar", "S_c")], by[("cifar", "dense")]
        msg = f"\ncifar: dense / eigsh time = {b['seconds'] / a['seconds']:.1f}×, HVPs = {b['n_hvp'] / a['n_hvp']:.1f}×"
        if not b["extrapolated"]:
            msg += (
                f"; mean cos(principal angles) eigsh vs dense top-{a['m']} = {b['mean_cos_principal_angles_vs_eigsh']:.3f}; "
                f"dense ‖A−Aᵀ‖/(‖A‖+‖Aᵀ‖) = {b['asymmetry']:.3f}"
            )
        print(msg + f"; asymmetry of the operator on random pairs = {a['asymmetry']:.3f}")
    first = rows[0]
    print(
        f"\nmodel: {first['model']}; data: {first['data']}; DeepFool: {first['deepfool']}; threads: {first['threads']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
