"""The command line ``boundary-atlas``: the atlas's computations without the browser, writing files.

Sub-commands
------------
``boundary-atlas train NAME [--data ROOT]``
    Train a zoo network (or load it from the on-disk cache), print its test accuracy and the
    cache file.
``boundary-atlas models``
    List the zoo's networks and whether they are trained yet.
``boundary-atlas study curvature|deepfool --zoo NAME --out DIR [...]``
    One heavy study, its points sharded over the processes of ``torchrun --nproc_per_node K -m
    geometry.cli study …`` (one process without torchrun); resumable. See :mod:`geometry.cli.study`.
``boundary-atlas robust (--zoo NAME | --model PATH) --out DIR [...]``
    The Robust page's numbers for one network: PGD accuracy beside the AutoAttack-style ensemble's robust
    accuracy on the same points, the distance to the boundary as the minimal ensemble's (with who won),
    every masking flag with its remedy; ``robust.json``, ``robust.csv``. See :mod:`geometry.cli.robust`.
``boundary-atlas certify (--zoo NAME | --model PATH) [--crown|--no-crown] [--norm 2|inf] [--points N] --out DIR``
    The Certified page's ladder: every certificate (global Lipschitz, LMT pair, CROWN) and the best per point
    beside the best attack radius, the soundness check and the flags; ``certify.json``, ``certify.csv``. See
    :mod:`geometry.cli.certify`.
``boundary-atlas report (--zoo NAME | --model PATH) --dataset NAME --out DIR [...]``
    Measure a network's decision boundary (:func:`geometry.study.report.build_report`, the pages'
    own studies) and write a self-contained report folder (:func:`geometry.output.report.write_report`):

    ========================  ==================================================================
    ``model_card.json``       name, format / architecture, input shape, classes, parameters,
                              normalisation, accuracy on the chosen split measured here
    ``deepfool.json``         ρ_adv, mean / median ‖r‖₂, converged share, n (CVPR 2016 Table 1)
    ``deepfool.csv``          per point: index, label, adv_label, norm, converged, true_label
    ``deepfool_norms.html``   histogram of ‖r(x)‖₂
    ``sections.json``         the cross-sections drawn (point index, labels, ‖r‖, κ along v)
    ``section_<i>.html``      normal cross-sections along (r(x), random v) (ICLR 2018 Fig. 5, 6),
                              :func:`geometry.study.section_study` as on the Cross-sections page
    ``subspaces.json``        S_c: Ritz values, re-evaluated curvatures, asymmetry, method, h, n;
                              S_f: singular values; principal angles S_c / S_f; K_S versus m
    ``curvature_vs_m.csv``    K_S(x) mean ± std over held-out points versus m for S_c, S_f,
    ``curvature_vs_m.html``   a random subspace (ICLR 2018 Fig. 7a)
    ``fooling_rate_vs_m.json``  ξ = 1/5 of the random-noise norm that fools 80 % of the points
                              (or why the curve was skipped: that norm is infinite)
    ``fooling_rate_vs_m.csv`` fooling rate of random vectors of norm ξ in the first m directions
    ``fooling_rate_vs_m.html``  of S_c, S_f, a random subspace (ICLR 2018 Fig. 7b)
    ``report.json``           settings, timings, file list
    ``index.html``            one page to read: the summary, every figure inline beside its
                              numbers with a one-line reading, links to every file
    ``plotly.min.js``         the Plotly library, written once and shared by every HTML file
    ========================  ==================================================================

    The HTML figures are written with ``include_plotlyjs="directory"``: each refers to the
    ``plotly.min.js`` next to it (≈ 4.7 MB, once per folder), so the report opens offline. Move
    or copy the folder as a whole.

Protocol: the dashboard's, through :mod:`geometry.study`, with the pages' defaults (every default
is read from the settings classes, :mod:`geometry.cli.options`): S_c and S_f from ``--n-points``
images of the *train* split chosen by ``--seed``; DeepFool, the cross-sections, curvature versus m
and the fooling rates on the first ``--n-heldout`` images of ``--split`` (default the test split;
with ``--split train``, or when the dataset has no train split, the one split is halved by
``--seed``); h = ξ at 50 % by default (``--h-preset``, ``--h``); ξ of the fooling rates = 1/5 of
the random-noise norm fooling ``--noise-share`` of the first 200 evaluated points. This package only
parses arguments: options → settings → study → output.

Errors: every :class:`~geometry.errors.AtlasError` (unknown name, missing dataset, bad model
file, …) and every file-system error is reported as one line ``error: …`` on stderr with exit
status 2 (no traceback); argparse's usage errors are one line too, exit status 2, and include sizes
over their limits (``--resolution`` ≤ 4096, ``--n-points`` ≤ 100,000, ``--m`` ≤ 1000, …), which are
refused before any model is loaded or any memory allocated
(:mod:`geometry.cli.options`). Progress goes to stderr as a
plain-text bar (``[#####.....] 50% computing S_c``), one line per step when stderr is not a
terminal (:class:`geometry.cli.progress.ProgressBar`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..progress import stage
from .options import (
    DATASET_NAMES,
    FORMAT_NAMES,
    PROG,
    Parser,
    add_curvature_options,
    add_data_options,
    add_model_options,
    add_output_options,
    add_point_options,
    add_report_options,
    report_settings,
)
from .progress import ProgressBar

__all__ = ["main", "build_parser", "DATASET_NAMES", "FORMAT_NAMES"]


def _error_message(exc: BaseException) -> str:
    """The message on one line (``KeyError`` subclasses quote their message: take ``args[0]``)."""
    if isinstance(exc, OSError) and exc.strerror:
        msg = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    elif exc.args and isinstance(exc.args[0], str):
        msg = exc.args[0]
    else:
        msg = str(exc)
    msg = " ".join(str(msg).split())
    return msg or type(exc).__name__


# ---------------------------------------------------------------------------------------- parser
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("boundary-atlas")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``boundary-atlas`` (sub-commands ``train``, ``models``, ``report``, ``study``,
    ``robust``)."""
    from .certify import add_certify_command
    from .robust import add_robust_command
    from .study import add_study_command

    parser = Parser(
        prog=PROG,
        description="Boundary Atlas from the command line: train zoo networks and write reports on the "
        "geometry of a classifier's decision boundary (DeepFool, cross-sections, curved and flat "
        "subspaces, fooling rate versus m).",
        epilog="Errors are one line 'error: …' on stderr with exit status 2. "
        "Run 'boundary-atlas COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        default="auto",
        help="where the geometry runs: auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto); "
        "goes before the command, e.g. 'boundary-atlas --device cpu report …'",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train_command(sub)
    p = sub.add_parser(
        "models",
        help="list the zoo's networks",
        description="List the zoo's networks, their datasets and whether they are trained (cached) yet.",
    )
    p.set_defaults(func=_cmd_models)
    _add_report_command(sub)
    add_study_command(sub)  # `study`: sharded under torchrun (issue 15)
    add_robust_command(sub, _cmd_robust)  # `robust`: PGD beside the AutoAttack-style ensemble (issue 21)
    add_certify_command(sub, _cmd_certify)  # `certify`: the ladder of certificates beside the attack (issue 21)
    return parser


def _add_train_command(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a zoo network (or load it from the cache) and print its test accuracy",
        description="Train the zoo network NAME on its dataset (seconds for digits-*, about a minute "
        "for mnist-*, minutes for cifar10-* on 2 CPU cores), or load it from the on-disk "
        "cache ($BOUNDARY_ATLAS_CACHE). Prints the test accuracy and the cache file.",
    )
    p.add_argument("name", metavar="NAME", help="zoo network, e.g. digits-lenet (see 'boundary-atlas models')")
    p.add_argument(
        "--data",
        metavar="ROOT",
        default=None,
        help="data root (else $BOUNDARY_ATLAS_DATA / the offline data; digits needs none)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_train)


def _add_report_command(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="measure a network's decision boundary and write a report folder",
        description="Measure the decision boundary of a zoo network or of your own model file and write a report "
        "folder: model card, DeepFool statistics, normal cross-sections, curved / flat subspaces and "
        "curvature versus m, fooling rate versus m, index.html. Figures are HTML files sharing one "
        "plotly.min.js written next to them (opens offline; keep the folder together). Every default is the "
        "app's (the study settings classes).",
    )
    add_model_options(p)
    add_point_options(add_data_options(p))
    g = p.add_argument_group("geometry")
    add_curvature_options(g)
    add_report_options(g)
    add_output_options(p)
    p.set_defaults(func=_cmd_report)


# ---------------------------------------------------------------------------------------- train / models
def _unknown_zoo(name: str) -> Exception:
    from ..errors import UnknownNameError
    from ..zoo import model_names

    return UnknownNameError(f"unknown zoo network {name!r}; choose one of {', '.join(model_names())}")


def _cmd_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..output.report import pct
    from ..zoo import ZOO, is_cached, load_model

    if args.name not in ZOO:
        raise _unknown_zoo(args.name)
    cached = is_cached(args.name)
    bar = ProgressBar(enabled=not args.quiet)
    t0 = time.perf_counter()
    try:
        clf = load_model(args.name, root=args.data, progress=bar.stage(0.0, 1.0, args.name))
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    entry = ZOO[args.name]
    how = "loaded from cache" if cached else f"trained in {seconds:.1f} s"
    print(f"{args.name}: {how}")
    print(f"test accuracy: {pct(clf.test_accuracy)} ({entry.dataset} test split)")
    print(f"cache file: {clf.info.get('cache_file', 'n/a')}")
    return 0


def _cmd_models(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ..zoo import ZOO, is_cached

    width = max(len(n) for n in ZOO)
    for name, e in ZOO.items():
        state = "cached " if is_cached(name) else "untrained"
        print(f"{name:<{width}}  {e.dataset:<8} {e.architecture:<15} {state}  {e.description}")
    return 0


# ---------------------------------------------------------------------------------------- report
def _zoo_classifier(args: argparse.Namespace, parser: argparse.ArgumentParser, bar: ProgressBar) -> tuple:
    """(classifier, dataset name, model-card source) of ``--zoo``."""
    from ..study.report import zoo_source
    from ..zoo import ZOO, load_model

    for opt in ("format", "architecture", "input_shape", "mean", "std", "class_names"):
        if getattr(args, opt) is not None:
            parser.error(f"--{opt.replace('_', '-')} applies to --model only (a zoo network knows its own)")
    if args.zoo not in ZOO:
        raise _unknown_zoo(args.zoo)
    clf = load_model(args.zoo, root=args.data, progress=bar.stage(0.0, 0.08, args.zoo))
    return clf, args.dataset or ZOO[args.zoo].dataset, zoo_source(args.zoo, clf)


def _file_classifier(args: argparse.Namespace, parser: argparse.ArgumentParser, bar: ProgressBar, data: Any) -> tuple:
    """(classifier, model-card source) of ``--model`` for the evaluated images of ``data``."""
    from ..errors import InvalidInputError
    from ..loading import load_classifier

    images = data.evaluated
    shape = tuple(args.input_shape) if args.input_shape else tuple(int(s) for s in images.images.shape[1:])
    if tuple(images.images.shape[1:]) != shape:
        raise InvalidInputError(
            f"--input-shape {shape} does not match the {images.name} images {tuple(images.images.shape[1:])}"
        )
    bar(0.02, f"loading {Path(args.model).name}")
    clf = load_classifier(
        args.model,
        format=args.format,
        architecture=args.architecture,
        input_shape=shape,
        mean=args.mean,
        std=args.std,
        isolate=not args.trust_model_code,
        class_names=args.class_names if args.class_names else images.class_names,
    )
    info = clf.info
    source = {
        "source": "file",
        "format": info.get("format"),
        "detected": info.get("detected"),
        "architecture": info.get("architecture") or f"(inside the {info.get('format')} file)",
        "file": str(Path(args.model).expanduser().resolve()),
        "bytes": info.get("bytes"),
        "sha256": info.get("sha256"),
        "notes": info.get("notes", []),
    }
    return clf, source


def _load_target(args: argparse.Namespace, parser: argparse.ArgumentParser, bar: ProgressBar) -> tuple:
    """(classifier on ``--device``, dataset name, :class:`~geometry.study.report.ReportData`, model-card source) of
    ``--zoo`` or ``--model`` with ``--dataset``: the one loading path of ``report``, ``robust`` and ``certify``."""
    from ..study.report import load_report_data

    if args.zoo is not None:
        clf, dataset, source = _zoo_classifier(args, parser, bar)
        bar(0.08, "loading the dataset")
        data = load_report_data(dataset, root=args.data, split=args.split)
    else:
        dataset = args.dataset
        bar(0.0, "loading the dataset")
        data = load_report_data(dataset, root=args.data, split=args.split)
        clf, source = _file_classifier(args, parser, bar, data)
    return clf.to(getattr(args, "device", "auto")), dataset, data, source  # the global --device option


def _cmd_report(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """options → :class:`ReportSettings` → :func:`build_report` → :func:`write_report`; prints the summary."""
    from ..errors import InvalidInputError
    from ..output.report import report_summary, write_report
    from ..study.report import build_report

    settings = report_settings(args, parser)  # usage errors before anything is loaded
    if args.model is not None:
        if args.dataset is None:
            parser.error("--dataset is required with --model (it gives the input shape, classes and points)")
        if (args.mean is None) != (args.std is None):
            parser.error("--mean and --std go together")
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")
    bar = ProgressBar(enabled=not args.quiet)
    try:
        clf, _, data, source = _load_target(args, parser, bar)
        report = build_report(clf, data, settings, progress=stage(bar, 0.1, 0.97), model_source=source)
        bar(0.97, "writing index.html")
        index = write_report(report, out)
        bar(1.0, "done")
    finally:
        bar.close()
    print(report_summary(report, index))
    return 0


def _cmd_robust(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``robust``: :func:`geometry.cli.robust.run_robust` with this module's model loader."""
    from .robust import run_robust

    return run_robust(args, parser, _load_target)


def _cmd_certify(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """``certify``: :func:`geometry.cli.certify.run_certify` with this module's model loader."""
    from .certify import run_certify

    return run_certify(args, parser, _load_target)


# ---------------------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> int:
    """Run ``boundary-atlas`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    0 on success; 2 for a usage error (argparse, raised as ``SystemExit(2)``) or for any
    :class:`~geometry.errors.AtlasError` / file-system error, printed as one line ``error: …`` on
    stderr without a traceback; 130 when interrupted.
    """
    from ..errors import AtlasError

    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    try:
        from ..device import resolve_device

        resolve_device(args.device)  # an unknown or absent device fails before any work
        return int(args.func(args, parser) or 0)
    except AtlasError as exc:
        print(f"error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {_error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
