"""Benchmark: the S_c study sharded over K gloo processes (issue 15, item 4).

S_c of ``digits-lenet`` (ICLR 2018 §5: top-m eigenvectors of the average tangent boundary Hessian
of n points, here by Lanczos, ``solver="eigsh"``, m = 10) with its points split over K processes
launched by ``torchrun --nproc_per_node K`` (gloo on CPU): DeepFool on the n points
(:func:`geometry.runtime.distributed.sharded_deepfool`), then the Lanczos iteration whose every operator
application is an all-reduced sum of per-rank Hessian-vector products
(:func:`geometry.curvature.curved_subspace` with the process group as its executor,
:class:`geometry.runtime.distributed.ShardContext`). Reported per K: wall time of each step
(rank 0, after a barrier, without process start-up and model loading), the speed-up over one
process with the same threads per process, the *CPU speed-up* (CPU seconds of one process over the
largest CPU seconds of one rank: the speed-up with a free core per process, robust to other load),
and the principal cosines between the K-process subspace and the one-process one
(``scipy.linalg.subspace_angles``; goal ≥ 0.999).

``--method smoothed`` (default) applies the exact Hessian of the softplus twin: a symmetric
operator, for which Lanczos is well posed. With ``--method finite_difference`` (the authors'
estimator) the operator is not symmetric (asymmetry ≈ 0.03 here) and beyond its first few
directions S_c is not determined by it: reordering the float32 sums changes those directions —
in one process too, by changing nothing but ``chunk_size`` (docs/benchmarks.md, "Sharded studies").

Each process runs ``--threads`` intra-op threads (default 1, so that K processes use K cores);
``--default-threads-row`` adds one process with PyTorch's own thread count. On a 2-core machine
K = 4 oversubscribes the cores. Speed claims are ratios within the same run (DESIGN §5); the load
average is printed with the table because other work on the machine changes the ratios.

Usage::

    python -m benchmarks.distributed                    # n = 1000, m = 10, K = 1, 2, 4, smoothed
    python -m benchmarks.distributed --n-points 200 --procs 1 2 --method finite_difference
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args) -> None:
    """One rank under torchrun: time sharded DeepFool and sharded S_c; rank 0 writes the result."""
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from geometry import zoo
    from geometry.curvature import curved_subspace
    from geometry.data import load_dataset
    from geometry.hessian import CurvatureEstimator
    from geometry.runtime.distributed import init_distributed, sharded_deepfool, shutdown
    from geometry.study.points import choose_points

    ctx = init_distributed()
    clf = zoo.load_model("digits-lenet", train=False)
    train = load_dataset("digits", split="train")
    xs = train.images[choose_points(len(train), args.n, random_state=0)]
    ctx.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    df = sharded_deepfool(clf, xs, ctx)
    c1 = time.process_time()
    ctx.barrier()
    t1 = time.perf_counter()
    S = curved_subspace(
        clf,
        xs,
        args.m,
        estimator=CurvatureEstimator(method=args.method),
        deepfool_result=df,
        solver="eigsh",
        random_state=0,
        executor=ctx,
    )
    c2 = time.process_time()
    ctx.barrier()
    t2 = time.perf_counter()
    cpu = ctx.all_gather((c1 - c0, c2 - c1))  # CPU seconds of each rank (waiting excluded)
    if ctx.is_leader:
        torch.save({"basis": S.basis, "curvatures": S.curvatures}, Path(args.out) / "basis.pt")
        row = {
            "procs": ctx.world_size,
            "threads": torch.get_num_threads(),
            "deepfool_s": t1 - t0,
            "sc_s": t2 - t1,
            "n": S.n,
            "n_matvec": S.n_matvec,
            "cpu_deepfool": [c[0] for c in cpu],
            "cpu_sc": [c[1] for c in cpu],
        }
        (Path(args.out) / "row.json").write_text(json.dumps(row))
    shutdown(ctx)


def run(procs: int, threads: int, n: int, m: int, port: int, method: str) -> tuple[dict, object]:
    import torch

    with tempfile.TemporaryDirectory() as out:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
            "--master_port", str(port), str(Path(__file__).resolve()), "--worker",
            "--n-points", str(n), "--m-max", str(m), "--threads", str(threads), "--out", out, "--method", method,
        ]  # fmt: skip
        env = dict(os.environ)
        env.pop("OMP_NUM_THREADS", None)
        if threads > 0:
            env["OMP_NUM_THREADS"] = str(threads)
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        row = json.loads((Path(out) / "row.json").read_text())
        basis = torch.load(Path(out) / "basis.pt")
    return row, basis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n-points", dest="n", type=int, default=1000, help="estimation points (default 1000)")
    ap.add_argument("--m-max", dest="m", type=int, default=10, help="subspace dimension (default 10)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads per process (0: PyTorch's default)")
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2, 4], help="process counts (default 1 2 4)")
    ap.add_argument("--port", type=int, default=29712)
    ap.add_argument(
        "--method",
        default="smoothed",
        choices=("smoothed", "finite_difference", "exact"),
        help="Hessian-vector products (default smoothed: a symmetric operator, see the module docstring)",
    )
    ap.add_argument("--default-threads-row", action="store_true", help="also one process with PyTorch's threads")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return

    import numpy as np
    from scipy.linalg import subspace_angles

    from geometry import zoo

    zoo.load_model("digits-lenet")  # trained once here, not by every rank
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")
    rows = []
    if args.default_threads_row:
        row, b = run(1, 0, args.n, args.m, args.port, args.method)
        row["label"], row["basis"] = "1 (default threads)", b["basis"]
        rows.append(row)
    ref_row = None
    for k in args.procs:
        row, b = run(k, args.threads, args.n, args.m, args.port + k, args.method)
        row["label"] = f"{k} × {args.threads} thread"
        row["basis"] = b["basis"]
        rows.append(row)
        if ref_row is None:
            ref_row = row  # the first process count (1 by default) is the reference
    t_ref = ref_row["deepfool_s"] + ref_row["sc_s"]
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    print(
        f"\nS_c of digits-lenet, n = {args.n} points (kept {ref_row['n']}), m = {args.m}, eigsh, "
        f"method {args.method}, gloo\n"
    )
    print(
        "| processes × threads | DeepFool (s) | S_c Lanczos (s) | total (s) | speed-up | CPU speed-up "
        "| operator applications | min principal cosine vs 1 process |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cpu_ref = sum(ref_row["cpu_deepfool"]) + sum(ref_row["cpu_sc"])
    for r in rows:
        total = r["deepfool_s"] + r["sc_s"]
        cpu_max = max(a + b for a, b in zip(r["cpu_deepfool"], r["cpu_sc"], strict=True))
        cos = np.sort(np.cos(subspace_angles(r["basis"].numpy(), ref_row["basis"].numpy())))
        print(
            f"| {r['label']} | {r['deepfool_s']:.2f} | {r['sc_s']:.2f} | {total:.2f} | {t_ref / total:.2f}× "
            f"| {cpu_ref / cpu_max:.2f}× | {r['n_matvec']} | {cos.min():.6f} |"
        )
    print(
        "\nall principal cosines: "
        + "; ".join(
            f"{r['label']}: "
            + " ".join(
                f"{c:.4f}" for c in np.sort(np.cos(subspace_angles(r["basis"].numpy(), ref_row["basis"].numpy())))[::-1]
            )
            for r in rows
        )
    )
    print(
        "\nspeed-up: wall time of the 1-process row / this row; CPU speed-up: CPU seconds of the 1-process row / the "
        "largest CPU seconds of one rank here (the wall speed-up with a free core per process)."
    )


if __name__ == "__main__":
    main()
