"""Benchmark: the geometry at ImageNet scale — torchvision ResNet-18 at 3×224×224, 1000 classes.

Issue 15, item 3. The network is wrapped as a :class:`geometry.classifier.Classifier` through the
project's API (:func:`geometry.classifier.make_classifier`, ImageNet mean/std inside) and placed on
``--device`` (:meth:`Classifier.to`). Three measurements, each in a *fresh* subprocess so that its
peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is its own:

``baseline``  build the network and run one forward pass of the batch (the floor of the others)
``deepfool``  DeepFool (ℓ2, overshoot 0.02, ``candidates = 10``: the top-10 classes, as the DeepFool
              paper does for ImageNet) on ``--df-points`` images: points per second
``curved``    S_c (``curved_subspace``, m = ``--m``) from ``--n`` boundary points: eigsh on the
              matrix-free average tangent Hessian (finite differences at the default h) — time,
              operator applications, peak memory. No d×d matrix exists on this path: the
              LinearOperator's matvec is the batched average HVP (O(chunk·d)), ARPACK keeps
              ``ncv`` Lanczos vectors (O(d·ncv)), the result is (d, m): memory O(d·m)
``section``   one adaptive normal cross-section of ``--resolution``² points

Inputs are uniform random images in [0, 1] (nothing downloads here); with ``--weights PATH`` a
user's ResNet-18 ``state_dict`` is loaded with ``torch.load(weights_only=True)``. Random-init
weights make the *costs* representative (same architecture, same d, same number of classes); the
geometry itself (‖r‖, curvatures) is meaningless without trained weights.

On a GPU (``--device cuda``) the same table is printed with that device's times; peak memory is
then reported as ``torch.cuda.max_memory_allocated`` alongside the host's ru_maxrss.

Usage::

    python -m benchmarks.imagenet --device cpu --sc-applications 20   # CPU here, writes the docs section
    python -m benchmarks.imagenet --device cuda --n 100 --no-docs      # a GPU: S_c to convergence
    python -m benchmarks.imagenet --weights resnet18.pth
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SECTION = "imagenet"
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build(args):
    import torch
    import torchvision

    from geometry.classifier import make_classifier

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000)
    if args.weights:
        try:
            state = torch.load(args.weights, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:
            from geometry.errors import ModelLoadError, first_line

            raise ModelLoadError(f"could not load ResNet-18 weights from {args.weights}: {first_line(exc)}") from exc
    clf = make_classifier(
        model,
        input_shape=(3, 224, 224),
        class_names=[f"class {i}" for i in range(1000)],
        name="imagenet-resnet18",
        mean=MEAN,
        std=STD,
    ).to(args.device)
    gen = torch.Generator().manual_seed(1)
    xs = torch.rand(max(args.df_points, args.n), 3, 224, 224, generator=gen)
    return clf, xs


def measure(args) -> dict:
    """One measurement in this process; returns a JSON-able dict."""
    import torch

    torch.set_num_threads(args.threads or torch.get_num_threads())
    clf, xs = build(args)
    cuda = clf.device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    out: dict = {"what": args.measure, "device": str(clf.device), "d": clf.d}
    t0 = time.perf_counter()
    if args.measure == "baseline":
        clf.logits(xs[: args.df_points])
    elif args.measure == "deepfool":
        from geometry.deepfool import deepfool

        xb = xs[: args.df_points]
        res = deepfool(clf, xb, candidates=10, max_iter=args.max_iter)
        sync()
        out.update(
            points=len(xb),
            converged=int(res.converged.sum()),
            mean_iter=float(res.n_iter.double().mean()),
            mean_norm=float(res.norms.double().mean()),
        )
    elif args.measure == "curved":
        from geometry.curvature import curved_subspace
        from geometry.deepfool import deepfool

        x = xs[: args.n]
        df = deepfool(clf, x, candidates=10, max_iter=args.max_iter)
        sync()
        t_df = time.perf_counter()
        seen = {"k": 0, "t": t_df}

        class Budget(Exception):
            pass

        def progress(frac, msg):  # operator applications as they happen (kept if the run times out)
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
            now = time.perf_counter()
            if msg.startswith("Hessian-vector products"):
                seen["k"] += 1
                seen["t"] = now
                if args.sc_applications and seen["k"] >= args.sc_applications:
                    raise Budget
            print(
                f"[curved] {now - t0:.1f} s, peak RSS {rss:.0f} MiB: {msg}",
                file=sys.stderr,
                flush=True,
            )

        try:
            s = curved_subspace(
                clf,
                x,
                args.m,
                tol=args.tol,
                maxiter=args.maxiter,
                n_asymmetry_pairs=1,
                progress=progress,
                deepfool_result=df,
            )
        except Budget:
            sync()
            out.update(complete=False, n=args.n, applications=seen["k"], deepfool_seconds=t_df - t0)
            out["per_application"] = (seen["t"] - t_df) / max(seen["k"], 1)
        else:
            sync()
            out.update(
                complete=True,
                n=s.n,
                n_dropped=s.n_dropped,
                m=s.m,
                n_matvec=s.n_matvec,
                n_hvp=s.n_hvp,
                basis_shape=list(s.basis.shape),
                top_curvature=float(s.curvatures[0]),
                deepfool_seconds=t_df - t0,
            )
    elif args.measure == "section":
        from geometry.deepfool import deepfool
        from geometry.sections import normal_section, random_direction

        x = xs[:1]
        df = deepfool(clf, x, candidates=10, max_iter=args.max_iter)
        t0 = time.perf_counter()  # the section alone
        sec = normal_section(
            clf, x[0], df.r[0], random_direction(clf.input_shape, random_state=0), resolution=args.resolution
        )
        sync()
        out.update(resolution=args.resolution, n_forward=sec.n_forward, dense_forward=sec.dense_forward)
    else:
        raise SystemExit(f"unknown measurement {args.measure!r}")
    out["seconds"] = time.perf_counter() - t0
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB
    if cuda:
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(clf.device) / 2**20
    return out


def run_child(args, what: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--measure", what, *child_flags(args)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        last = [ln for ln in err.splitlines() if ln.startswith("[")][-1:]
        where = f" (last progress: {last[0]})" if last else ""
        return {"what": what, "error": f"over the {timeout:.0f} s limit{where}", "seconds": time.perf_counter() - t0}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"what": what, "error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child_flags(args) -> list[str]:
    flags = ["--device", args.device, "--n", str(args.n), "--m", str(args.m), "--df-points", str(args.df_points)]
    flags += ["--resolution", str(args.resolution), "--max-iter", str(args.max_iter), "--tol", str(args.tol)]
    if args.maxiter:
        flags += ["--maxiter", str(args.maxiter)]
    if args.sc_applications:
        flags += ["--sc-applications", str(args.sc_applications)]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    if args.weights:
        flags += ["--weights", args.weights]
    return flags


def table(rows: dict, args) -> str:
    base = rows.get("baseline", {})
    mem = lambda r: "—" if "maxrss_mib" not in r else f"{r['maxrss_mib']:.0f}"
    extra = lambda r: f" (GPU peak {r['cuda_peak_mib']:.0f} MiB)" if "cuda_peak_mib" in r else ""

    def line(label, r, result):
        if not r:
            return f"| {label} | not run | | |"
        if "error" in r:
            return f"| {label} | not measured: {r['error']} | | |"
        return f"| {label} | {r['seconds']:.1f} | {mem(r)}{extra(r)} | {result} |"

    out = ["| measurement | time (s) | peak RSS (MiB) | result |", "|---|---:|---:|---|"]
    out.append(line("baseline: build + 1 forward of the batch", base, f"{args.df_points} images"))
    r = rows.get("deepfool", {})
    res = (
        f"{r['points'] / r['seconds']:.2f} points/s; {r['converged']}/{r['points']} converged, "
        f"{r['mean_iter']:.1f} iterations, ‖r‖ {r['mean_norm']:.3g}"
        if "points" in r
        else ""
    )
    out.append(line(f"DeepFool, {args.df_points} points, top-10 candidates", r, res))
    r = rows.get("curved", {})
    if r.get("complete"):
        res = f"{r['n_matvec']} operator applications = {r['n_hvp']} HVPs; basis {tuple(r['basis_shape'])}"
    elif "applications" in r:
        res = (
            f"**stopped after {r['applications']} operator applications** (`--sc-applications`): "
            f"{r['per_application']:.2f} s per application of the average operator over n = {r['n']} points "
            f"({r['per_application'] / r['n']:.2f} s per HVP = 2 gradients); DeepFool before it: "
            f"{r['deepfool_seconds']:.0f} s"
        )
    else:
        res = ""
    out.append(line(f"S_c, m = {args.m}, from n = {args.n} boundary points (eigsh)", r, res))
    r = rows.get("section", {})
    res = f"{r['n_forward']} of {r['dense_forward']} grid points evaluated" if "n_forward" in r else ""
    out.append(line(f"normal section {args.resolution}×{args.resolution} (adaptive)", r, res))
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--weights", default=None, help="a ResNet-18 state_dict (.pth), loaded with weights_only=True")
    ap.add_argument("--df-points", type=int, default=4, help="DeepFool batch")
    ap.add_argument("--n", type=int, default=4, help="boundary points of S_c (the paper: 100+)")
    ap.add_argument("--m", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-2, help="eigsh tolerance (the curvatures are re-evaluated)")
    ap.add_argument("--maxiter", type=int, default=None, help="eigsh restarts cap")
    ap.add_argument(
        "--sc-applications",
        type=int,
        default=None,
        help="stop S_c after this many operator applications and report the cost per application "
        "(default: run eigsh to convergence)",
    )
    ap.add_argument("--max-iter", type=int, default=50, help="DeepFool iterations")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per measurement")
    ap.add_argument("--only", nargs="+", default=["baseline", "deepfool", "curved", "section"])
    ap.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--no-docs", action="store_true")
    args = ap.parse_args(argv)

    from geometry.device import device_label, resolve_device

    args.device = str(resolve_device(args.device))
    if args.measure:
        from geometry.errors import AtlasError

        try:
            print(json.dumps(measure(args)))
        except AtlasError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0

    from benchmarks.deepfool import DOCS, machine, update_docs_section

    load0 = os.getloadavg()
    rows = {}
    for what in args.only:
        rows[what] = run_child(args, what, args.timeout)
        print(f"[bench] {what}: {json.dumps(rows[what])}", file=sys.stderr)
    load1 = os.getloadavg()
    tbl = table(rows, args)
    print(tbl)
    if args.no_docs:
        return 0
    sc = rows.get("curved", {})
    if sc.get("complete"):
        sc_note = (
            f"* S_c: n = {args.n} boundary points, eigsh tol = {args.tol}, run to convergence. The cost of one operator "
            f"application is linear in n: n = 100 costs ≈ {100 / max(args.n, 1):.0f}× per application."
        )
    elif "per_application" in sc:
        per = sc["per_application"]
        sc_note = (
            f"* S_c was **not run to convergence here**: eigsh needs as many operator applications as the spectrum "
            f"asks — 215 (random-weight 3×224×224 conv net, n = 8, m = 10) to 371 (random-weight CIFAR LeNet) in "
            f"`docs/benchmarks-curvature.md` — i.e. ≈ {215 * per / 60:.0f}–{371 * per / 60:.0f} min at the rate "
            f"measured above for n = {args.n} (an **estimate**), and ≈ {215 * per * 100 / args.n / 3600:.0f}–"
            f"{371 * per * 100 / args.n / 3600:.0f} h for the paper's n = 100 (linear in n). The table's row stops "
            f"after {sc['applications']} applications to measure the cost per application and the peak memory "
            f"within a few minutes."
        )
    else:
        sc_note = "* S_c: not measured (see the table)."
    body = f"""## ImageNet scale (issue 15)

torchvision ResNet-18 (random init, `weights=None`: nothing downloads here) at 3×224×224
(d = 150 528), 1000 classes, ImageNet mean/std inside the classifier, on **{device_label(args.device)}**
({machine()}). Inputs: uniform
random images. Each row is a fresh subprocess; peak RSS is its `ru_maxrss` (the baseline row is the floor:
Python + torch + the network + one forward pass). Load average (1 min) {load0[0]:.2f} before, {load1[0]:.2f}
after — the 2 cores were shared with other jobs, so times are upper bounds.

{tbl}

* DeepFool restricts the candidates to the top-10 classes at x (`candidates=10`, the option DeepFool
  already had; the paper does the same on ImageNet), so one iteration costs one forward and one
  batched backward of 9 logit differences per point, whatever the number of classes.
* S_c memory is O(d·m): no d×d matrix on this path (d×d float64 would be 181 GB at this d); the eigsh
  LinearOperator's matvec is the batched average HVP, ARPACK keeps ncv = 21 Lanczos vectors (25 MB),
  the basis is (d, m) (12 MB here). The S_c row's peak RSS is no higher than DeepFool's: what lies above
  the baseline row is the network's activations for the gradient batches, not the subspace.
* The same DeepFool run on the same points is timed twice (the DeepFool row, and before S_c in the S_c
  row's subprocess): on this shared machine such times vary several-fold with the load.
{sc_note}
* Section: {args.resolution}×{args.resolution}, adaptive (coarse grid, refined where labels change; a
  random-init network has few label changes, so few evaluations). The dense grid would be
  {args.resolution**2:,} forward passes of 224² images. Its peak RSS is the activations of one batch of up
  to `batch_size` = 4096 images (no gradients): pass a smaller `batch_size` to `normal_section` to lower it.
* **GPU figures were not measured** (no GPU was lent to this session). On a GPU,
  `python -m benchmarks.imagenet --device cuda --n 100 --no-docs` prints the same table
  with that device's times and, per row, `torch.cuda.max_memory_allocated` next to the host's RSS.

Command: `python -m benchmarks.imagenet {" ".join(argv if argv is not None else sys.argv[1:])}`.
"""
    update_docs_section(DOCS, SECTION, body)
    print(f"[bench] wrote the '{SECTION}' section of {DOCS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
