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
run was launched). Points and curvature options: as ``boundary-atlas report`` (one definition,
:mod:`geometry.cli.options`; every default from :class:`geometry.study.CurvatureSettings`): S_c / S_f
from ``--n-points`` training points, DeepFool and K_S on the first ``--n-heldout`` evaluated points. Resumable: each rank keeps its finished
parts in the cache (``$BOUNDARY_ATLAS_CACHE/shards``) and a restarted run logs
``shard i/K: cached`` for them instead of recomputing (``--no-resume`` recomputes everything).

Options differ from ``report`` where torchrun would steal them: ``--m-max`` (not ``--m``) and
``--h-scale`` (not ``--h``), which torchrun's parser reads as abbreviations of its own options.
This module parses and writes; the computation is :mod:`geometry.runtime.distributed`'s (one call each).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from .options import add_curvature_options, add_data_options, add_output_options, add_point_options, add_zoo_option
from .options import curvature_settings as _curvature_settings
from .progress import ProgressBar

__all__ = ["add_study_command", "run_study"]

STUDIES = ("curvature", "deepfool")


def add_study_command(sub: Any) -> None:
    """Add the ``study`` sub-command to the sub-parsers ``sub`` of ``boundary-atlas``."""
    p = sub.add_parser(
        "study",
        help="run one heavy study, sharded over processes under torchrun",
        description="Run the curvature-versus-m study (S_c, S_f, K_S versus m) or DeepFool over a dataset, "
        "its points split over the processes of 'torchrun --nproc_per_node K -m geometry.cli study …' (one "
        "process without torchrun). Rank 0 writes the result files; a restarted run reuses every finished "
        "shard from the cache.",
    )
    p.add_argument("kind", choices=STUDIES, metavar="KIND", help=f"one of {', '.join(STUDIES)}")
    add_zoo_option(p, required=True)
    g = add_data_options(p, dataset=False)
    add_point_options(g)
    # no --m / --h here: torchrun's own parser would take them for abbreviations of its options
    add_curvature_options(p.add_argument_group("curvature"), m_flag="--m-max", h_flag="--h-scale")
    p.add_argument("--no-resume", action="store_true", help="do not read or write the shard cache")
    add_output_options(p, quiet_help="no progress bar and no shard log")
    p.set_defaults(func=_cmd_study)


def _cmd_study(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..runtime.distributed import init_distributed, shutdown

    settings = _curvature_settings(args, parser)  # usage errors before any process group is set up
    log = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    ctx = init_distributed(log=log)
    bar = ProgressBar(enabled=not args.quiet and ctx.is_leader)
    try:
        summary = run_study(args, ctx, bar, settings)
    finally:
        bar.close()
    shutdown(ctx)
    if ctx.is_leader:
        print(summary)
    return 0


def _load(args: argparse.Namespace, ctx: Any, bar: ProgressBar) -> Any:
    """The zoo network on this rank's device: rank 0 loads first (and trains a network not cached yet)."""
    import torch

    from ..errors import UnknownNameError
    from ..zoo import ZOO, load_model, model_names

    if args.zoo not in ZOO:
        raise UnknownNameError(f"unknown zoo network {args.zoo!r}; choose one of {', '.join(model_names())}")
    if ctx.is_leader:
        clf = load_model(args.zoo, root=args.data, progress=bar.stage(0.0, 0.05, args.zoo))
    ctx.barrier()
    if not ctx.is_leader:
        clf = load_model(args.zoo, root=args.data)
    # the global --device: 'auto' / 'cuda' under torchrun means this rank's own GPU (LOCAL_RANK)
    device = getattr(args, "device", "auto") or "auto"
    if ctx.world_size > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        device = f"cuda:{ctx.local_rank}"
    return clf.to(device)


def _write_deepfool(out: Path, df: Any, points: Any, labels: Any, split: str) -> str:
    from ..output.report import write_csv, write_json
    from ..study.report import deepfool_statistics

    xs, idx = points.heldout, points.heldout_indices
    stats = {**deepfool_statistics(df, xs), "split": split}
    conv, norms = df.converged.bool(), df.norms.double()
    write_json(out / "deepfool.json", stats)
    write_csv(
        out / "deepfool.csv",
        ["index", "label", "adv_label", "norm", "converged", "true_label"],
        [
            [int(idx[i]), int(df.label[i]), int(df.adv_label[i]), float(norms[i]), bool(conv[i]), int(labels[idx[i]])]
            for i in range(len(xs))
        ],
    )
    return f"ρ_adv = {stats['rho_adv']:.4f}, converged {stats['n_converged']}/{len(xs)}"


def _write_curvature(out: Path, res: Any) -> None:
    from ..curvature import save_subspace
    from ..output.report import write_csv, write_json
    from ..runtime.distributed import principal_cosines

    S_c, S_f = res.curved, res.flat
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
            "principal_cosines_S_c_S_f": principal_cosines(S_c.basis, S_f.basis).tolist(),
            "h_text": res.h_text,
            "source": res.source,
        },
    )
    rows = [
        [name, m, float(c.mean[i]), float(c.std[i]), float(c.share_positive[i]), float(c.kappa_mean[i]),
         float(c.kappa_std[i]), c.n]
        for name, c in res.curves.items()
        for i, m in enumerate(c.m_values.tolist())
    ]  # fmt: skip
    write_csv(
        out / "curvature_vs_m.csv",
        ["subspace", "m", "K_mean", "K_std", "share_positive", "kappa_mean", "kappa_std", "n"],
        rows,
    )
    save_subspace(out / "S_c.safetensors", S_c)
    save_subspace(out / "S_f.safetensors", S_f)


def run_study(args: argparse.Namespace, ctx: Any, bar: ProgressBar, settings: Any = None) -> str:
    """Run ``study KIND`` for this rank (``ctx``) at ``settings`` (a ``CurvatureSettings``; default: from
    ``args``); rank 0 writes the files. Returns the summary (empty on the other ranks)."""
    import torch

    from .. import study
    from ..errors import InvalidInputError
    from ..output.report import write_json
    from ..runtime.distributed import sharded_deepfool
    from ..study import split_points
    from ..study.report import load_report_data

    t0 = time.perf_counter()
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")
    if settings is None:
        settings = _curvature_settings(args, argparse.ArgumentParser())
    clf = _load(args, ctx, bar)
    from ..zoo import ZOO

    data = load_report_data(ZOO[args.zoo].dataset, root=args.data, split=args.split)
    points = split_points(data.evaluated, data.train, settings.points)
    resume = not args.no_resume
    run: dict[str, Any] = {
        "study": args.kind,
        "network": args.zoo,
        "world_size": ctx.world_size,
        "backend": ctx.backend,
        "device": str(clf.device),
        "settings": settings.describe(),
    }
    files: list[str] = []
    summary = ""
    if args.kind == "deepfool":
        bar(0.05, f"DeepFool on {len(points.heldout)} points over {ctx.world_size} process(es)")
        df = sharded_deepfool(clf, points.heldout, ctx, cache=resume, clip=settings.rx == "box")
        if ctx.is_leader:
            out.mkdir(parents=True, exist_ok=True)
            text = _write_deepfool(out, df, points, data.evaluated.labels, data.evaluated.split)
            files += ["deepfool.json", "deepfool.csv"]
            summary = f"DeepFool on {len(points.heldout)} {data.evaluated.name} points: {text}"
    else:
        res = study.curvature_study(
            clf, points, settings, progress=bar.stage(0.05, 1.0, "curvature"), executor=replace(ctx, cache=resume)
        )
        if ctx.is_leader:
            out.mkdir(parents=True, exist_ok=True)
            _write_curvature(out, res)
            files += ["subspaces.json", "curvature_vs_m.csv", "S_c.safetensors", "S_f.safetensors"]
            S_c = res.curved
            top = ", ".join(f"{v:.3g}" for v in S_c.curvatures[:3].tolist())
            summary = (
                f"S_c of {clf.name} from {S_c.n} boundary points (m = {S_c.m}, {S_c.solver}): curvature along "
                f"the first directions {top}; K_S on {len(points.heldout)} held-out points"
            )
    if not ctx.is_leader:
        return ""
    run["seconds"] = round(time.perf_counter() - t0, 3)
    run["torch"] = torch.__version__
    write_json(out / "run.json", run)
    files.append("run.json")
    bar.update(1.0, "done")
    return f"{summary}\n  processes: {ctx.world_size}\n  files: {', '.join(files)} in {out.resolve()}"
