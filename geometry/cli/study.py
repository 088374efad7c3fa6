"""``boundary-atlas study KIND``: one heavy study, sharded over processes with ``torchrun``.

``python -m geometry.cli study curvature --zoo digits-lenet --n-points 200 --m-max 10 --out DIR`` runs in one
process; ``torchrun --nproc_per_node K -m geometry.cli study curvature …`` splits the points over
K processes (``--nnodes`` / ``--rdzv-endpoint`` for several machines; README "Scaling out") and
writes the same files (rank 0 writes; the numbers agree up to floating-point summation order):

``study curvature`` (ICLR 2018 §5, Fig. 7a; the protocol of :func:`geometry.study.curvature_study`)
    ``subspaces.json`` — S_c (Ritz values, re-evaluated curvatures, asymmetry, method, h, n),
    S_f (singular values), principal cosines S_c / S_f; ``curvature_vs_m.csv`` — K_S(x) mean ± std
    versus m on the held-out points for S_c, S_f and a random subspace; ``S_c.safetensors``,
    ``S_f.safetensors`` (:func:`geometry.curvature.load_subspace` reads them).
``study deepfool`` (CVPR 2016)
    ``deepfool.csv`` — per point: index, label, adv_label, norm, converged, true_label;
    ``deepfool.json`` — ρ_adv, mean / median ‖r‖₂, converged share, n.

Both also write ``run.json`` (world size, backend, seconds; the only file that depends on how the
run was launched). Points: as ``boundary-atlas report`` (:func:`geometry.study.split_points` with
``n_estimate = n_heldout = --n-points`` and ``--seed``). Resumable: each rank keeps its finished
parts in the cache (``$BOUNDARY_ATLAS_CACHE/shards``) and a restarted run logs
``shard i/K: cached`` for them instead of recomputing (``--no-resume`` recomputes everything).

Options differ from ``report`` where torchrun would steal them: ``--m-max`` (not ``--m``) and
``--h-scale`` (not ``--h``), which torchrun's parser reads as abbreviations of its own options.
This module imports no torch at parse time (``--help`` stays fast).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["add_study_command", "run_study"]

STUDIES = ("curvature", "deepfool")


def add_study_command(sub) -> None:
    """Add the ``study`` sub-command to the sub-parsers ``sub`` of ``boundary-atlas``."""
    from .commands import MAX_DRAWS, MAX_M, MAX_POINTS, SEED_RANGE, _int_in, _positive_float

    p = sub.add_parser(
        "study",
        help="run one heavy study, sharded over processes under torchrun",
        description="Run the curvature-versus-m study (S_c, S_f, K_S versus m) or DeepFool over a dataset, "
        "its points split over the processes of 'torchrun --nproc_per_node K -m geometry.cli study …' (one "
        "process without torchrun). Rank 0 writes the result files; a restarted run reuses every finished "
        "shard from the cache.",
    )
    p.add_argument("kind", choices=STUDIES, metavar="KIND", help=f"one of {', '.join(STUDIES)}")
    p.add_argument("--zoo", metavar="NAME", required=True, help="a zoo network, e.g. digits-lenet")
    p.add_argument("--data", metavar="ROOT", default=None, help="data root (else $BOUNDARY_ATLAS_DATA / offline data)")
    p.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="split of the evaluated points (DeepFool, held-out points) (default: %(default)s)",
    )
    p.add_argument(
        "--n-points",
        metavar="N",
        type=_int_in(1, MAX_POINTS, "points"),
        default=100,
        help="points evaluated, and points used to estimate S_c / S_f (default: %(default)s)",
    )
    # no --m / --h here: torchrun's own parser would take them for abbreviations of its options
    p.add_argument(
        "--m-max",
        metavar="M",
        type=_int_in(1, MAX_M, "subspace dimensions"),
        default=20,
        help="dimension of S_c, S_f and the random subspace: the largest m (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        choices=("finite_difference", "exact", "smoothed"),
        default="finite_difference",
        help="Hessian-vector products (default: %(default)s)",
    )
    p.add_argument(
        "--h-scale",
        metavar="H",
        type=_positive_float,
        default=None,
        help="finite-difference scale h in pixel units (default 10·√d·range/512)",
    )
    p.add_argument("--beta", metavar="BETA", type=_positive_float, default=None, help="softplus sharpness (smoothed)")
    p.add_argument(
        "--n-directions",
        metavar="K",
        type=_int_in(1, MAX_DRAWS, "random directions per m"),
        default=10,
        help="random directions per m for K_S (default: %(default)s)",
    )
    p.add_argument("--seed", metavar="SEED", type=_int_in(0, SEED_RANGE[1], "a seed"), default=0, help="seed")
    p.add_argument("--no-resume", action="store_true", help="do not read or write the shard cache")
    p.add_argument("--out", metavar="DIR", required=True, help="output folder (created; files are overwritten)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no shard log")
    p.set_defaults(func=_cmd_study)


def _cmd_study(args, parser) -> int:
    from ..runtime.distributed import init_distributed, shutdown
    from .commands import ProgressBar

    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    ctx = init_distributed(log=log)
    bar = ProgressBar(enabled=not args.quiet and ctx.is_leader)
    try:
        summary = run_study(args, ctx, bar)
    finally:
        bar.close()
    shutdown(ctx)
    if ctx.is_leader:
        print(summary)
    return 0


def run_study(args, ctx, bar) -> str:
    """Run ``study KIND`` for this rank (``ctx``); rank 0 writes the files. Returns the summary."""
    from dataclasses import replace

    import torch

    from .. import study
    from ..data import load_dataset
    from ..errors import DatasetNotFoundError, InvalidInputError, UnknownNameError
    from ..output.report import write_csv, write_json
    from ..runtime.distributed import principal_cosines, sharded_deepfool
    from ..zoo import ZOO, load_model, model_names

    t0 = time.perf_counter()
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")
    if args.zoo not in ZOO:
        raise UnknownNameError(f"unknown zoo network {args.zoo!r}; choose one of {', '.join(model_names())}")
    # rank 0 loads first (and trains a network that is not cached yet); the others then read the cache
    if ctx.is_leader:
        clf = load_model(args.zoo, root=args.data, progress=bar.stage(0.0, 0.05, args.zoo))
    ctx.barrier()
    if not ctx.is_leader:
        clf = load_model(args.zoo, root=args.data)
    # the global --device: 'auto' / 'cuda' under torchrun means this rank's own GPU (LOCAL_RANK)
    device = getattr(args, "device", "auto") or "auto"
    if ctx.world_size > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{ctx.local_rank}"
    clf = clf.to(device)
    dataset = ZOO[args.zoo].dataset
    eval_set = load_dataset(dataset, root=args.data, split=args.split)
    train_set = None
    if args.split != "train":
        try:
            train_set = load_dataset(dataset, root=args.data, split="train")
        except DatasetNotFoundError:
            train_set = None
    split = study.PointSplit(n_estimate=args.n_points, n_heldout=args.n_points, seed=int(args.seed))
    points = study.split_points(eval_set, train_set, split)
    resume = not args.no_resume
    run: dict = {
        "study": args.kind,
        "network": args.zoo,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "device": str(clf.device),
    }
    files: list[str] = []
    if args.kind == "deepfool":
        xs, idx = points.heldout, points.heldout_indices
        bar.update(0.05, f"DeepFool on {len(xs)} points over {ctx.world_size} process(es)")
        df = sharded_deepfool(clf, xs, ctx, cache=resume)
        if ctx.is_leader:
            from ..deepfool import rho_adv

            out.mkdir(parents=True, exist_ok=True)
            conv, norms = df.converged.bool(), df.norms.double()
            stats = {
                "rho_adv": rho_adv(df, xs),
                "mean_norm": float(norms[conv].mean()) if bool(conv.any()) else float("nan"),
                "median_norm": float(norms[conv].quantile(0.5)) if bool(conv.any()) else float("nan"),
                "converged_share": float(conv.double().mean()),
                "n": len(xs),
                "n_converged": int(conv.sum()),
                "split": eval_set.split,
                "overshoot": df.overshoot,
                "norm": "l2",
            }
            write_json(out / "deepfool.json", stats)
            write_csv(
                out / "deepfool.csv",
                ["index", "label", "adv_label", "norm", "converged", "true_label"],
                [
                    [int(idx[i]), int(df.label[i]), int(df.adv_label[i]), float(norms[i]), bool(conv[i]),
                     int(eval_set.labels[idx[i]])]
                    for i in range(len(xs))
                ],
            )  # fmt: skip
            files += ["deepfool.json", "deepfool.csv"]
            summary = (
                f"DeepFool on {len(xs)} {eval_set.name} points: ρ_adv = {stats['rho_adv']:.4f}, "
                f"converged {stats['n_converged']}/{len(xs)}"
            )
    else:
        scale = study.HScale("custom", args.h_scale) if args.h_scale is not None else study.HScale("authors")
        settings = study.CurvatureSettings(
            points=split,
            m_max=args.m_max,
            method=args.method,
            scale=scale,
            beta=args.beta,
            n_directions=args.n_directions,
        )
        res = study.curvature_study(
            clf, points, settings, progress=bar.stage(0.05, 1.0, "curvature"), executor=replace(ctx, cache=resume)
        )
        if ctx.is_leader:
            from ..curvature import save_subspace

            out.mkdir(parents=True, exist_ok=True)
            S_c, S_f = res.curved, res.flat
            cos = principal_cosines(S_c.basis, S_f.basis)
            write_json(
                out / "subspaces.json",
                {
                    "S_c": {
                        "ritz_values": S_c.spectrum.tolist(),
                        "curvatures": S_c.curvatures.tolist(),
                        "kappas": S_c.kappas.tolist(),
                        "asymmetry": S_c.asymmetry,
                        "n": S_c.n,
                        "n_dropped": S_c.n_dropped,
                        "n_matvec": S_c.n_matvec,
                        "method": S_c.method,
                        "h": S_c.h,
                        "beta": S_c.beta,
                        "solver": S_c.solver,
                    },
                    "S_f": {"singular_values": S_f.spectrum.tolist(), "n": S_f.n},
                    "principal_cosines_S_c_S_f": cos.tolist(),
                    "h_text": res.h_text,
                    "source": res.source,
                },
            )
            rows = []
            for name, c in res.curves.items():
                for i, m in enumerate(c.m_values.tolist()):
                    rows.append([name, m, float(c.mean[i]), float(c.std[i]), float(c.share_positive[i]),
                                 float(c.kappa_mean[i]), float(c.kappa_std[i]), c.n])  # fmt: skip
            write_csv(
                out / "curvature_vs_m.csv",
                ["subspace", "m", "K_mean", "K_std", "share_positive", "kappa_mean", "kappa_std", "n"],
                rows,
            )
            save_subspace(out / "S_c.safetensors", S_c)
            save_subspace(out / "S_f.safetensors", S_f)
            files += ["subspaces.json", "curvature_vs_m.csv", "S_c.safetensors", "S_f.safetensors"]
            top = ", ".join(f"{v:.3g}" for v in S_c.curvatures[:3].tolist())
            summary = (
                f"S_c of {clf.name} from {S_c.n} boundary points (m = {S_c.m}, {S_c.solver}): curvature along "
                f"the first directions {top}; K_S on {len(points.heldout)} held-out points"
            )
    if ctx.is_leader:
        run["seconds"] = round(time.perf_counter() - t0, 3)
        run["torch"] = torch.__version__
        write_json(out / "run.json", run)
        files.append("run.json")
        bar.update(1.0, "done")
        return f"{summary}\n  processes: {ctx.world_size}\n  files: {', '.join(files)} in {out.resolve()}"
    return ""
