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
``boundary-atlas report (--zoo NAME | --model PATH) --dataset NAME --out DIR [...]``
    Measure a network's decision boundary and write a self-contained report folder:

    ========================  ==================================================================
    ``model_card.json``       name, format / architecture, input shape, classes, parameters,
                              normalisation, accuracy on the chosen split measured here
    ``deepfool.json``         ρ_adv, mean / median ‖r‖₂, converged share, n (CVPR 2016 Table 1)
    ``deepfool.csv``          per point: index, label, adv_label, norm, converged, true_label
    ``deepfool_norms.html``   histogram of ‖r(x)‖₂
    ``sections.json``         the cross-sections drawn (point index, labels, ‖r‖, κ along v)
    ``section_<i>.html``      normal cross-sections along (r(x), random v) (ICLR 2018 Fig. 5, 6)
    ``subspaces.json``        S_c: Ritz values, re-evaluated curvatures, asymmetry, method, h, n;
                              S_f: singular values; principal angles S_c / S_f; K_S versus m
    ``curvature_vs_m.csv``    K_S(x) mean ± std over held-out points versus m for S_c, S_f,
    ``curvature_vs_m.html``   a random subspace (ICLR 2018 Fig. 7a)
    ``fooling_rate_vs_m.json``  ξ = 1/5 of the random-noise norm that fools 50 % of the points
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

Protocol: the dashboard's, through :mod:`geometry.study` (the same network, data and settings
give the same numbers). Points (:func:`geometry.study.split_points`): the DeepFool statistics,
the cross-sections, curvature versus m and the fooling rates use the first ``--n-points`` images
of ``--split`` (default the test split: held-out points); S_c and S_f are estimated from
``--n-points`` images of the *train* split chosen by ``--seed`` (with ``--split train``, or when
the dataset has no train split, the one split is halved by ``--seed``: estimation points from one
half, evaluated points from the other). ξ = 1/5 of the random-noise norm measured on the first 200
evaluated points. Every random choice derives from ``--seed``. This module only parses arguments
and writes; :mod:`geometry.output.report` writes the files.

Errors: every :class:`~geometry.errors.AtlasError` (unknown name, missing dataset, bad model
file, …) and every file-system error is reported as one line ``error: …`` on stderr with exit
status 2 (no traceback); argparse's usage errors are one line too, exit status 2, and include sizes
over their limits (``--resolution`` ≤ 4096, ``--n-points`` ≤ 100,000, ``--m`` ≤ 1000, …), which are
refused before any model is loaded or any memory allocated. Progress goes to stderr as a
plain-text bar (``[#####.....] 50% computing S_c``), one line per step when stderr is not a
terminal.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "ProgressBar", "run_report"]

PROG = "boundary-atlas"
# Copies of geometry.data.DATASETS and geometry.loading.FORMATS (tests check they agree), so that
# ``--help`` and usage errors answer without importing torch.
DATASET_NAMES = ("digits", "mnist", "cifar10", "imagefolder")
FORMAT_NAMES = ("torchscript", "export", "onnx", "state_dict", "safetensors")


# ---------------------------------------------------------------------------------------- progress
class ProgressBar:
    """A plain-text progress bar on a stream (stderr by default): ``[#####.....]  50% label: detail``.

    On a terminal the line is redrawn in place (at most every ``min_interval`` seconds); otherwise
    (a log, a pipe, a test's captured stderr) one line is printed whenever the step label changes
    or the percentage passes another ``log_step`` percent.
    """

    def __init__(
        self, stream=None, *, width: int = 20, enabled: bool = True, min_interval: float = 0.1, log_step: int = 10
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.width = int(width)
        self.enabled = bool(enabled)
        self.min_interval = float(min_interval)
        self.log_step = int(log_step)
        try:
            self.tty = bool(self.stream.isatty())
        except Exception:
            self.tty = False
        self._fraction = 0.0
        self._last_time = 0.0
        self._last_label: str | None = None
        self._last_logged = -100
        self._line_len = 0
        self._open = False

    def render(self, fraction: float, text: str) -> str:
        f = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
        k = round(f * self.width)
        return f"[{'#' * k}{'.' * (self.width - k)}] {round(100 * f):3d}% {text}"

    def update(self, fraction: float, label: str, detail: str = "") -> None:
        """Show ``fraction`` ∈ [0, 1] with the step ``label`` (and an optional ``detail``)."""
        if not self.enabled:
            return
        fraction = (
            max(self._fraction, min(max(float(fraction), 0.0), 1.0)) if math.isfinite(fraction) else self._fraction
        )
        self._fraction = fraction
        text = detail if detail and label in detail else (f"{label}: {detail}" if detail else label)
        pct = round(100 * fraction)
        now = time.monotonic()
        if self.tty:
            if label == self._last_label and pct < 100 and now - self._last_time < self.min_interval:
                return
            line = self.render(fraction, text)
            if len(line) > 119:
                line = line[:118] + "…"
            self.stream.write("\r" + line.ljust(self._line_len))
            self._line_len = len(line)
            self._open = True
        else:
            if (
                label == self._last_label
                and pct < self._last_logged + self.log_step
                and not (pct == 100 and self._last_logged < 100)
            ):
                return
            self.stream.write(self.render(fraction, text) + "\n")
            self._last_logged = pct
        self._last_label = label
        self._last_time = now
        self.stream.flush()

    def stage(self, start: float, end: float, label: str) -> Callable[[float, str], None]:
        """A ``progress(fraction, message)`` callback mapping [0, 1] onto [start, end] of the bar."""
        self.update(start, label)

        def callback(fraction: float, message: str = "") -> None:
            try:
                f = float(fraction)
            except (TypeError, ValueError):
                f = 0.0
            self.update(start + (end - start) * min(max(f, 0.0), 1.0), label, str(message or ""))

        return callback

    def close(self) -> None:
        """End the bar's line (on a terminal)."""
        if self.enabled and self.tty and self._open:
            self.stream.write("\n")
            self.stream.flush()
        self._open = False


# ---------------------------------------------------------------------------------------- helpers
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


# Size limits of ``report``, checked by argparse before anything is loaded, trained or allocated.
#: grid points per axis of a cross-section; a copy of geometry.sections.MAX_RESOLUTION (tests check
#: they agree), so that usage errors answer without importing torch
MAX_RESOLUTION = 4096
MAX_POINTS = 100_000  # --n-points (the largest built-in split, MNIST train, has 60,000 images)
MAX_M = 1_000  # --m: a basis of m vectors of R^d per subspace, m Lanczos steps per point
MAX_SECTIONS = 100  # --sections: one HTML figure each
MAX_DRAWS = 1_000  # --n-directions, --n-samples: random vectors per m, each evaluated on every point
SEED_RANGE = (-(2**63), 2**63 - 2)  # torch generator seeds (the sections use seed + 1)


def _int_in(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in [lo, hi], so a size is refused before anything is
    allocated; the message of a value outside says the limit (``what`` names the quantity, e.g.
    "grid points per axis")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lo:
            kind = "a positive integer" if lo == 1 else f"an integer ≥ {lo:,}"
            raise argparse.ArgumentTypeError(f"expected {kind} ({what}), got {value}")
        if value > hi:
            raise argparse.ArgumentTypeError(f"at most {hi:,} ({what}), got {text.strip()}")
        return value

    parse.__name__ = "integer"  # argparse names the type in its messages
    return parse


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line ``PROG: error: …`` (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


def _share(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text!r}")
    return value


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``boundary-atlas`` (sub-commands ``train``, ``models``, ``report``)."""
    try:
        from importlib.metadata import version

        ver = version("boundary-atlas")
    except Exception:  # pragma: no cover - not installed
        ver = "unknown"

    parser = _Parser(
        prog=PROG,
        description="Boundary Atlas from the command line: train zoo networks and write reports on the "
        "geometry of a classifier's decision boundary (DeepFool, cross-sections, curved and flat "
        "subspaces, fooling rate versus m).",
        epilog="Errors are one line 'error: …' on stderr with exit status 2. "
        "Run 'boundary-atlas COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {ver}")
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        default="auto",
        help="where the geometry runs: auto (CUDA when present, else CPU), cpu, cuda or cuda:N (default: auto); "
        "goes before the command, e.g. 'boundary-atlas --device cpu report …'",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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

    p = sub.add_parser(
        "models",
        help="list the zoo's networks",
        description="List the zoo's networks, their datasets and whether they are trained (cached) yet.",
    )
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser(
        "report",
        help="measure a network's decision boundary and write a report folder",
        description="Measure the decision boundary of a zoo network or of your own model file and write a report "
        "folder: model card, DeepFool statistics, normal cross-sections, curved / flat subspaces and "
        "curvature versus m, fooling rate versus m, index.html. Figures are HTML files sharing one "
        "plotly.min.js written next to them (opens offline; keep the folder together).",
    )
    g = p.add_argument_group("model (one of)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--zoo", metavar="NAME", help="a zoo network (trained on first use), e.g. digits-lenet")
    src.add_argument(
        "--model",
        metavar="PATH",
        help="your model file: TorchScript, torch.export (.pt2), ONNX (.onnx), state_dict (.pt/.pth, "
        "needs --architecture) or safetensors (needs --architecture)",
    )
    g = p.add_argument_group("user model options (with --model)")
    g.add_argument("--format", choices=FORMAT_NAMES, default=None, help="model file format (default: detected)")
    g.add_argument(
        "--architecture",
        metavar="ARCH",
        default=None,
        help="architecture for weights-only files: lenet, lenet-softplus, mlp, nin, resnet20, torchvision:<name>",
    )
    g.add_argument(
        "--input-shape",
        metavar=("C", "H", "W"),
        nargs=3,
        type=_positive_int,
        default=None,
        help="input shape (default: the dataset's)",
    )
    g.add_argument(
        "--mean",
        metavar="M",
        nargs="+",
        type=float,
        default=None,
        help="per-channel mean the model was trained with (normalisation goes inside the classifier)",
    )
    g.add_argument("--std", metavar="S", nargs="+", type=float, default=None, help="per-channel std, with --mean")
    g.add_argument(
        "--class-names", metavar="NAME", nargs="+", default=None, help="class names (default: the dataset's)"
    )
    g.add_argument(
        "--trust-model-code",
        action="store_true",
        help="load and probe the model in this process instead of a resource-limited child process "
        "(faster start; the file is screened all the same). Only for a file you trust",
    )
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        metavar="NAME",
        default=None,
        help=f"one of {', '.join(DATASET_NAMES)} (required with --model; default with --zoo: the network's)",
    )
    g.add_argument("--data", metavar="ROOT", default=None, help="data root (else $BOUNDARY_ATLAS_DATA / offline data)")
    g.add_argument(
        "--split",
        choices=("test", "train"),
        default="test",
        help="split of the evaluated points: accuracy, DeepFool, sections, curves (default: %(default)s)",
    )
    g.add_argument(
        "--n-points",
        metavar="N",
        type=_int_in(1, MAX_POINTS, "points"),
        default=100,
        help=f"points evaluated, and points used to estimate S_c / S_f (default: %(default)s, at most {MAX_POINTS:,})",
    )
    g = p.add_argument_group("geometry")
    g.add_argument(
        "--m",
        metavar="M",
        type=_int_in(1, MAX_M, "subspace dimensions"),
        default=20,
        help=f"largest subspace dimension m (default: %(default)s, at most {MAX_M:,} and below d)",
    )
    g.add_argument(
        "--method",
        choices=("finite_difference", "exact", "smoothed"),
        default="finite_difference",
        help="Hessian-vector products: finite differences at scale h, exact autograd, or the exact "
        "Hessian of the softplus twin (default: %(default)s)",
    )
    g.add_argument(
        "--h",
        metavar="H",
        type=_positive_float,
        default=None,
        help="finite-difference scale in pixel units (default 10·√d·range/512)",
    )
    g.add_argument(
        "--beta",
        metavar="BETA",
        type=_positive_float,
        default=None,
        help="softplus sharpness for --method smoothed (default: the backend's)",
    )
    g.add_argument(
        "--sections",
        metavar="K",
        type=_int_in(0, MAX_SECTIONS, "cross-sections"),
        default=3,
        help="number of cross-sections: points, each along its own random direction (default: %(default)s)",
    )
    g.add_argument(
        "--resolution",
        metavar="R",
        type=_int_in(2, MAX_RESOLUTION, "grid points per axis"),
        default=200,
        help=f"grid points per axis of a cross-section (default: %(default)s, 2 to {MAX_RESOLUTION})",
    )
    g.add_argument(
        "--n-directions",
        metavar="K",
        type=_int_in(1, MAX_DRAWS, "random directions per m"),
        default=10,
        help="random directions per m for the curvature curves (default: %(default)s)",
    )
    g.add_argument(
        "--n-samples",
        metavar="K",
        type=_int_in(1, MAX_DRAWS, "random vectors per m"),
        default=10,
        help="random vectors per m for the fooling-rate curves (default: %(default)s)",
    )
    g.add_argument(
        "--noise-share",
        metavar="SHARE",
        type=_share,
        default=0.5,
        help="ξ = 1/5 of the random-noise norm that fools this share of the points (default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        metavar="SEED",
        type=_int_in(*SEED_RANGE, "a torch generator seed"),
        default=0,
        help="seed of every random choice (default: %(default)s)",
    )
    g = p.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=True, help="output folder (created; files are overwritten)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_report)

    from .study import add_study_command  # `study`: sharded under torchrun (issue 15)

    add_study_command(sub)
    return parser


# ---------------------------------------------------------------------------------------- train / models
def _cmd_train(args, parser) -> int:
    from ..zoo import ZOO, is_cached, load_model, model_names

    if args.name not in ZOO:
        from ..errors import UnknownNameError

        raise UnknownNameError(f"unknown zoo network {args.name!r}; choose one of {', '.join(model_names())}")
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
    from ..output.report import pct

    print(f"test accuracy: {pct(clf.test_accuracy)} ({entry.dataset} test split)")
    print(f"cache file: {clf.info.get('cache_file', 'n/a')}")
    return 0


def _cmd_models(args, parser) -> int:
    from ..zoo import ZOO, is_cached

    width = max(len(n) for n in ZOO)
    for name, e in ZOO.items():
        state = "cached " if is_cached(name) else "untrained"
        print(f"{name:<{width}}  {e.dataset:<8} {e.architecture:<15} {state}  {e.description}")
    return 0


# ---------------------------------------------------------------------------------------- report
def _slice_deepfool(df, idx):
    """The DeepFool result of the points ``idx`` (a list of positions)."""
    import torch

    i = torch.as_tensor(idx, dtype=torch.long)
    return dataclasses.replace(
        df,
        r=df.r[i],
        x_adv=df.x_adv[i],
        label=df.label[i],
        adv_label=df.adv_label[i],
        n_iter=df.n_iter[i],
        converged=df.converged[i],
        norms=df.norms[i],
    )


def _load_classifier(args, parser, bar):
    """(clf, dataset name, model-card facts) for --zoo or --model."""
    from ..data import load_dataset
    from ..errors import InvalidInputError
    from ..zoo import ZOO, load_model, model_names

    if args.zoo is not None:
        for opt in ("format", "architecture", "input_shape", "mean", "std", "class_names"):
            if getattr(args, opt) is not None:
                parser.error(f"--{opt.replace('_', '-')} applies to --model only (a zoo network knows its own)")
        if args.zoo not in ZOO:
            from ..errors import UnknownNameError

            raise UnknownNameError(f"unknown zoo network {args.zoo!r}; choose one of {', '.join(model_names())}")
        dataset = args.dataset or ZOO[args.zoo].dataset
        clf = load_model(args.zoo, root=args.data, progress=bar.stage(0.0, 0.08, args.zoo))
        entry = ZOO[args.zoo]
        source = {
            "source": "zoo",
            "format": "zoo (safetensors cache)",
            "architecture": entry.architecture,
            "architecture_kwargs": entry.arch_kwargs,
            "file": clf.info.get("cache_file"),
            "description": entry.description,
            "trained_on": entry.dataset,
            "recorded_test_accuracy": clf.test_accuracy,
            "recipe": entry.recipe(),
        }
        return clf, dataset, source, None
    if args.dataset is None:
        parser.error("--dataset is required with --model (it gives the input shape, classes and points)")
    if (args.mean is None) != (args.std is None):
        parser.error("--mean and --std go together")
    bar.update(0.0, "loading the dataset")
    eval_set = load_dataset(args.dataset, root=args.data, split=args.split)
    shape = tuple(args.input_shape) if args.input_shape else tuple(int(s) for s in eval_set.images.shape[1:])
    if tuple(eval_set.images.shape[1:]) != shape:
        raise InvalidInputError(
            f"--input-shape {shape} does not match the {eval_set.name} images {tuple(eval_set.images.shape[1:])}"
        )
    from ..loading import load_classifier

    bar.update(0.02, f"loading {Path(args.model).name}")
    clf = load_classifier(
        args.model,
        format=args.format,
        architecture=args.architecture,
        input_shape=shape,
        mean=args.mean,
        std=args.std,
        isolate=not args.trust_model_code,
        class_names=args.class_names if args.class_names else eval_set.class_names,
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
    return clf, args.dataset, source, eval_set


def _cmd_report(args, parser) -> int:
    bar = ProgressBar(enabled=not args.quiet)
    try:
        summary = run_report(args, parser, bar)
    finally:
        bar.close()
    print(summary)
    return 0


def run_report(args, parser, bar: ProgressBar) -> str:
    """Compute everything of ``boundary-atlas report`` through :mod:`geometry.study` and write the
    files through :mod:`geometry.output.report`; returns the stdout summary.

    The protocol is the dashboard's: :func:`geometry.study.split_points` with
    ``PointSplit(n_estimate=n_points, n_heldout=n_points, seed=seed)`` (S_c / S_f from the training
    split, the evaluated points are the first ``n_points`` of ``--split``; one split halved when
    there is no training split), :func:`geometry.study.curvature_study` for S_c, S_f and K_S
    versus m, and ξ / :func:`geometry.study.fooling_curve` for the fooling rates — so the same
    network, data and settings give the same numbers here and in the app.
    """
    import torch

    from .. import study
    from ..curvature import curvature_along
    from ..data import load_dataset
    from ..deepfool import deepfool, rho_adv
    from ..errors import AtlasError, DatasetNotFoundError, InvalidInputError
    from ..output.report import ReportPanel, fmt, pct, write_csv, write_html, write_index, write_json
    from ..plotting import curvature_vs_m_figure, fooling_rate_vs_m_figure, norm_histogram_figure, section_figure
    from ..sections import normal_section, random_direction
    from ..subspaces import principal_angles

    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    files: list[str] = []
    notes: list[str] = []
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {str(out)!r} exists and is not a folder")

    def tick(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        return now

    # ------------------------------------------------------------------ model + data
    t = time.perf_counter()
    clf, dataset_name, source, eval_set = _load_classifier(args, parser, bar)
    clf = clf.to(getattr(args, "device", "auto"))  # the global --device option
    source["device"] = str(clf.device)
    t = tick("load model", t)
    bar.update(0.08, "loading the dataset")
    if eval_set is None:
        eval_set = load_dataset(dataset_name, root=args.data, split=args.split)
    if tuple(eval_set.images.shape[1:]) != tuple(clf.input_shape):
        raise InvalidInputError(
            f"{clf.name} takes inputs of shape {tuple(clf.input_shape)}, the {eval_set.name} images have shape "
            f"{tuple(eval_set.images.shape[1:])}; choose the dataset the network was trained on"
        )
    n_labels = int(eval_set.labels.max()) + 1 if len(eval_set.labels) else 0
    if n_labels > clf.num_classes:
        raise InvalidInputError(
            f"{clf.name} has {clf.num_classes} classes, the {eval_set.name} labels go up to "
            f"{n_labels - 1}; choose the dataset the network was trained on"
        )
    out.mkdir(parents=True, exist_ok=True)
    bar.update(0.09, f"accuracy on the {eval_set.split} split ({len(eval_set.labels)} images)")
    accuracy = clf.accuracy(eval_set.images, eval_set.labels)
    t = tick("accuracy", t)

    train_set = None
    if args.split != "train":
        try:
            train_set = load_dataset(dataset_name, root=args.data, split="train")
        except DatasetNotFoundError:
            notes.append(
                "no train split: S_c / S_f estimated from one half of the evaluated split, the evaluated "
                "points drawn from the other half"
            )
    split = study.PointSplit(n_estimate=args.n_points, n_heldout=args.n_points, seed=int(args.seed))
    points = study.split_points(eval_set, train_set, split)
    xs, eval_idx = points.heldout, points.heldout_indices
    fit_split = "train" if train_set is not None else eval_set.split
    n = len(xs)

    card = {
        "name": clf.name,
        **source,
        "input_shape": list(clf.input_shape),
        "d": clf.d,
        "classes": list(clf.class_names),
        "num_classes": clf.num_classes,
        "parameters": int(sum(p.numel() for p in clf.model.parameters())),
        "bounds": list(clf.bounds),
        "normalisation": None if clf.mean is None else {"mean": list(clf.mean), "std": list(clf.std)},
        "dataset": eval_set.name,
        "dataset_source": eval_set.source,
        "accuracy_split": eval_set.split,
        "accuracy_n": len(eval_set.labels),
        "test_accuracy": accuracy,
        "fingerprint": study.network_fingerprint(clf),
    }
    write_json(out / "model_card.json", card)
    files.append("model_card.json")

    # ------------------------------------------------------------------ DeepFool
    bar.update(0.12, f"DeepFool on {n} points")
    df = deepfool(clf, xs)
    conv = df.converged.bool()
    norms = df.norms.double()
    rho = rho_adv(df, xs)
    df_stats = {
        "rho_adv": rho,
        "rho_adv_definition": "mean over converged points of ‖r(x)‖₂ / ‖x‖₂ (CVPR 2016 Eq. 15)",
        "mean_norm": float(norms[conv].mean()) if bool(conv.any()) else float("nan"),
        "median_norm": float(norms[conv].quantile(0.5)) if bool(conv.any()) else float("nan"),
        "std_norm": float(norms[conv].std(correction=0)) if bool(conv.any()) else float("nan"),
        "norm_unit": "pixel-space ℓ2, inputs in [0, 1]",
        "converged_share": float(conv.double().mean()) if n else float("nan"),
        "n": n,
        "n_converged": int(conv.sum()),
        "split": eval_set.split,
        "overshoot": df.overshoot,
        "norm": "l2",
        "mean_iterations": float(df.n_iter.double().mean()) if n else float("nan"),
        "n_forward": df.n_forward,
        "n_backward": df.n_backward,
    }
    write_json(out / "deepfool.json", df_stats)
    write_csv(
        out / "deepfool.csv",
        ["index", "label", "adv_label", "norm", "converged", "true_label"],
        [
            [
                int(eval_idx[i]),
                int(df.label[i]),
                int(df.adv_label[i]),
                float(norms[i]),
                bool(conv[i]),
                int(eval_set.labels[eval_idx[i]]),
            ]
            for i in range(n)
        ],
    )
    fig = norm_histogram_figure(
        norms,
        conv,
        title=f"DeepFool ‖r(x)‖₂ of {clf.name} on {int(conv.sum())} "
        f"{eval_set.name} {eval_set.split} points (ρ_adv = {fmt(rho, '.3f')})",
    )
    write_html(fig, out / "deepfool_norms.html")
    files += ["deepfool.json", "deepfool.csv", "deepfool_norms.html"]
    panels = [  # index.html: every figure inline beside its numbers
        ReportPanel(
            "Distance to the decision boundary (DeepFool)",
            fig,
            f"Each point's smallest perturbation ‖r(x)‖₂ that changes the label: the median point is "
            f"{fmt(df_stats['median_norm'], '.3g')} away (ρ_adv = {fmt(rho, '.3f')} of ‖x‖).",
            (
                ("ρ_adv", fmt(rho, ".4f")),
                ("median ‖r‖₂", fmt(df_stats["median_norm"])),
                ("mean ‖r‖₂", fmt(df_stats["mean_norm"])),
                ("converged", f"{pct(df_stats['converged_share'])} of {n}"),
            ),
            ("deepfool_norms.html", "deepfool.csv", "deepfool.json"),
        )
    ]
    t = tick("deepfool", t)

    # ------------------------------------------------------------------ cross-sections
    scale = study.HScale("custom", args.h) if args.h is not None else study.HScale("authors")
    settings = study.CurvatureSettings(
        points=split, m_max=args.m, method=args.method, scale=scale, beta=args.beta, n_directions=args.n_directions
    )
    section_rows = []
    conv_pos = conv.nonzero().flatten().tolist()
    k_sections = min(args.sections, len(conv_pos))
    if args.sections and not conv_pos:
        notes.append("no converged DeepFool point: no cross-section drawn")
    sec_gen = torch.Generator().manual_seed(int(args.seed) + 1)
    for s in range(k_sections):
        bar.update(0.22 + 0.1 * s / max(k_sections, 1), "cross-sections", f"{s + 1}/{k_sections}")
        i = conv_pos[s]
        v = random_direction(clf.input_shape, random_state=sec_gen, dtype=xs.dtype)
        sec = normal_section(clf, xs[i], df.r[i], v, resolution=args.resolution)
        kappa = None
        try:
            ca = curvature_along(
                clf,
                xs[i : i + 1],
                v,
                method=args.method,
                h=args.h,
                beta=args.beta,
                deepfool_result=_slice_deepfool(df, [i]),
            )
            kappa = float(ca.kappa[0, 0])
        except AtlasError as exc:  # e.g. smoothed on a network without ReLU: draw the section anyway
            notes.append(f"section {s + 1}: curvature not evaluated ({_error_message(exc)})")
        lab, adv = int(df.label[i]), int(df.adv_label[i])
        name = f"section_{s + 1}.html"
        fig = section_figure(
            sec,
            clf.class_names,
            direction_label="random v",
            curvature=kappa,
            title=f"Point #{int(eval_idx[i])} ({clf.class_names[lab]} → {clf.class_names[adv]}): "
            f"normal cross-section along (r(x), random v)",
        )
        write_html(fig, out / name)
        files.append(name)
        if s < 6:  # more sections stay one link each
            panels.append(
                ReportPanel(
                    f"Cross-section {s + 1}: point #{int(eval_idx[i])}, {clf.class_names[lab]} → "
                    f"{clf.class_names[adv]}",
                    fig,
                    "The plane through x spanned by r(x) and a random v: x at the origin, the nearest boundary "
                    "point at (‖r‖, 0); "
                    + (
                        f"κ = {fmt(kappa, '.3g')} along v ({'the other class wraps around x' if kappa > 0 else 'the boundary bends away from x'})."
                        if kappa is not None and math.isfinite(kappa)
                        else "curvature along v not evaluated."
                    ),
                    (
                        ("‖r(x)‖₂", fmt(sec.r_norm)),
                        ("κ along v (1/pixel)", fmt(kappa)),
                        ("cos(v, r)", fmt(sec.cos_v_r, ".3f")),
                    ),
                    (name, "sections.json"),
                )
            )
        section_rows.append(
            {
                "file": name,
                "index": int(eval_idx[i]),
                "label": lab,
                "adv_label": adv,
                "true_label": int(eval_set.labels[eval_idx[i]]),
                "r_norm": sec.r_norm,
                "kappa_along_v": kappa,
                "cos_v_r": sec.cos_v_r,
                "extent": list(sec.extent),
                "resolution": args.resolution,
                "n_forward": sec.n_forward,
                "dense_forward": sec.dense_forward,
            }
        )
    write_json(
        out / "sections.json",
        {
            "direction": "random unit vector (uniform on the sphere), orthogonalised against r(x)",
            "kappa_unit": "normal curvature κ = K/‖∇F(z)‖ along v at z = x + r(x), 1/pixel distance; > 0: the other "
            "class wraps around x",
            "method": args.method,
            "sections": section_rows,
        },
    )
    files.append("sections.json")
    t = tick("sections", t)

    # ------------------------------------------------------------------ S_c, S_f, curvature versus m (Fig. 7a)
    bar.update(
        0.33,
        f"curvature study: S_c (m = {args.m}) and S_f from {len(points.estimate)} {fit_split} points, "
        f"K_S versus m on {n} points",
    )
    cs = study.curvature_study(clf, points, settings, progress=bar.stage(0.33, 0.78, "curvature study"))
    S_c, S_f, S_r, curves, m_values = cs.curved, cs.flat, cs.random, cs.curves, list(cs.m_values)
    if S_f.m < args.m:
        notes.append(f"S_f has only {S_f.m} dimensions (≤ number of converged estimation points)")
    cosines = principal_angles(S_c.basis, S_f.basis)
    t = tick("curvature study", t)
    c0 = curves["S_c"]
    subspaces_json = {
        "method": S_c.method,
        "h": S_c.h,
        "h_rule": cs.h_text,
        "beta": S_c.beta,
        "n": S_c.n,
        "n_dropped": S_c.n_dropped,
        "estimation_split": fit_split,
        "estimation_indices": points.estimate_indices.tolist(),
        "m": S_c.m,
        "points": points.source,
        "settings": settings.describe(),
        "settings_key": settings.key(),
        "eigenvalues": S_c.spectrum,
        "curvatures": S_c.curvatures,
        "kappas": S_c.kappas,
        "asymmetry": S_c.asymmetry,
        "solver": S_c.solver,
        "point": S_c.point,
        "tangent": S_c.tangent,
        "n_hvp": S_c.n_hvp,
        "n_matvec": S_c.n_matvec,
        "units": {
            "eigenvalues": "Ritz values of the average tangent Hessian (logit / pixel²); NOT curvatures at a "
            "finite-difference scale — read 'curvatures'",
            "curvatures": "paper's unnormalised K(u_k) = u_kᵀ P H P u_k re-evaluated along each S_c vector, "
            "mean over the n points (logit / pixel²)",
            "kappas": "normal curvature K/‖∇F(z)‖ (1/pixel distance)",
            "asymmetry": "relative asymmetry of the averaged operator (≈ 0 when symmetric)",
        },
        "S_f": {"m": S_f.m, "singular_values": S_f.spectrum, "n": S_f.n, "n_dropped": S_f.n_dropped},
        "principal_angles_S_c_S_f": {
            "cosines": cosines,
            "note": "cosines of the principal angles between S_c and S_f, descending",
        },
        "curvature_vs_m": {
            "m_values": m_values,
            "n_points": c0.n,
            "n_dropped": c0.n_dropped,
            "n_directions": c0.n_directions,
            "split": eval_set.split,
            "quantity": "K_S(x) = E_v (Pv)ᵀH(Pv)/‖Pv‖² over random unit v of the first m directions (logit / "
            "pixel²), mean ± std over held-out points; kappa = K_S/‖∇F(z)‖ (1/pixel)",
            **{
                nm: {
                    "m_values": c.m_values,
                    "mean": c.mean,
                    "std": c.std,
                    "kappa_mean": c.kappa_mean,
                    "kappa_std": c.kappa_std,
                    "share_positive": c.share_positive,
                }
                for nm, c in curves.items()
            },
        },
    }
    write_json(out / "subspaces.json", subspaces_json)
    rows = []
    for nm, c in curves.items():
        for a, mm in enumerate(c.m_values.tolist()):
            rows.append(
                [
                    nm,
                    mm,
                    float(c.mean[a]),
                    float(c.std[a]),
                    float(c.kappa_mean[a]),
                    float(c.kappa_std[a]),
                    float(c.share_positive[a]),
                    c.n,
                    c.n_directions,
                ]
            )
    write_csv(
        out / "curvature_vs_m.csv",
        ["subspace", "m", "mean", "std", "kappa_mean", "kappa_std", "share_positive", "n_points", "n_directions"],
        rows,
    )
    h_text = f", h = {S_c.h:.3g}" if S_c.h is not None else (f", β = {S_c.beta:.3g}" if S_c.beta is not None else "")
    fig = curvature_vs_m_figure(curves)
    fig.update_layout(title=f"Curvature versus m: {clf.name}, {c0.n} held-out points ({S_c.method}{h_text})")
    write_html(fig, out / "curvature_vs_m.html")
    files += ["subspaces.json", "curvature_vs_m.csv", "curvature_vs_m.html"]
    panels.append(
        ReportPanel(
            "Curvature versus m (ICLR 2018 Fig. 7a)",
            fig,
            f"Mean curvature K_S of held-out points along random directions of the first m directions of each "
            f"subspace: at m = {m_values[0]}, S_c {fmt(float(curves['S_c'].mean[0]), '+.3g')} against random "
            f"{fmt(float(curves['random'].mean[0]), '+.3g')} (positive: the other class wraps around x).",
            tuple(
                (f"{nm}, m = {mm}", f"{fmt(float(c.mean[a]), '+.3g')} ± {fmt(float(c.std[a]), '.2g')}")
                for nm, c in curves.items()
                for a, mm in ((0, m_values[0]), (len(m_values) - 1, m_values[-1]))
            ),
            ("curvature_vs_m.html", "curvature_vs_m.csv", "subspaces.json"),
        )
    )
    t = tick("write subspaces", t)

    # ------------------------------------------------------------------ fooling rate versus m (Fig. 7b)
    bar.update(0.78, f"random-noise norm ({round(100 * args.noise_share)} % quantile)")
    noise = study.noise_norm(clf, points, args.noise_share)
    fool_json: dict[str, Any] = {
        "noise_norm_share": noise.share,
        "noise_norm_quantile": noise.quantile,
        "infinite_share": noise.infinite_share,
        "max_norm": noise.max_norm,
        "noise_points": len(points.noise),
        "n_points": n,
        "split": eval_set.split,
        "xi_rule": f"ξ = 1/{study.XI_DIVISOR:g} of the ℓ2 norm of random noise that changes the label of "
        f"{100 * noise.share:g} % of the first {len(points.noise)} evaluated points (ICLR 2018 Fig. 7b)",
    }
    fool = None
    if math.isfinite(noise.quantile):
        xi = study.xi(noise)
        fool_ms = [m for m in m_values if m <= min(S_c.m, S_f.m, S_r.m)]
        fool = study.fooling_curve(
            clf,
            points,
            {"S_c": S_c, "S_f": S_f, "random": S_r},
            m_values=fool_ms,
            xi=xi,
            n_samples=args.n_samples,
            seed=int(args.seed),
            progress=bar.stage(0.82, 0.95, "fooling rate versus m"),
        )
        if S_c.h is not None and S_c.h < xi / 4:
            notes.append(
                f"S_c was computed at the finite-difference scale h = {S_c.h:.3g}, far below ξ = {xi:.3g}: "
                f"it describes the boundary's curvature at a smaller scale than the perturbations; "
                f"try --h {xi / 2:.2g}"
            )
        fool_json.update(
            {
                "skipped": False,
                "xi": xi,
                "h": S_c.h,
                "m_values": fool_ms,
                "n_samples": fool.n_samples,
                **{nm: {"mean": fool.mean[nm], "std": fool.std[nm], "best": fool.best[nm]} for nm in fool.names},
            }
        )
        rows = [
            [
                nm,
                mm,
                float(fool.mean[nm][a]),
                float(fool.std[nm][a]),
                float(fool.best[nm][a]),
                xi,
                fool.n_points,
                fool.n_samples,
            ]
            for nm in fool.names
            for a, mm in enumerate(fool.m_values.tolist())
        ]
        write_csv(
            out / "fooling_rate_vs_m.csv", ["subspace", "m", "mean", "std", "best", "xi", "n_points", "n_samples"], rows
        )
        fig = fooling_rate_vs_m_figure(fool, h=S_c.h)
        fig.update_layout(
            title=f"Fooling rate of random vectors of norm ξ = {xi:.3g} in the first m directions "
            f"({clf.name}, {n} points)"
        )
        write_html(fig, out / "fooling_rate_vs_m.html")
        files += ["fooling_rate_vs_m.csv", "fooling_rate_vs_m.html"]
        last_m = len(fool.m_values) - 1
        panels.append(
            ReportPanel(
                "Fooling rate versus m (ICLR 2018 Fig. 7b)",
                fig,
                f"Share of points whose label a random vector of norm ξ = {fmt(xi, '.3g')} in the first m directions "
                f"changes: at m = {int(fool.m_values[last_m])}, S_c {pct(float(fool.mean['S_c'][last_m]))} against "
                f"random {pct(float(fool.mean['random'][last_m]))}.",
                (
                    ("ξ", fmt(xi, ".3g")),
                    *(
                        (f"{nm}, m = {int(fool.m_values[last_m])}", pct(float(fool.mean[nm][last_m])))
                        for nm in fool.names
                    ),
                ),
                ("fooling_rate_vs_m.html", "fooling_rate_vs_m.csv", "fooling_rate_vs_m.json"),
            )
        )
    else:
        reason = (
            f"the random-noise norm that fools {100 * noise.share:g} % of the points is infinite: "
            f"{100 * noise.infinite_share:.0f} % of the random rays never change the label within "
            f"‖noise‖₂ ≤ {noise.max_norm:.3g} (common for ReLU networks); fooling rate versus m skipped"
        )
        fool_json.update({"skipped": True, "reason": reason, "xi": None})
        notes.append(reason)
    write_json(out / "fooling_rate_vs_m.json", fool_json)
    files.append("fooling_rate_vs_m.json")
    t = tick("fooling rate vs m", t)

    # ------------------------------------------------------------------ report.json, index.html, summary
    bar.update(0.97, "writing index.html")
    timings["total"] = round(time.perf_counter() - t_start, 3)
    run_settings = {
        k: getattr(args, k)
        for k in (
            "zoo",
            "model",
            "dataset",
            "data",
            "split",
            "n_points",
            "m",
            "method",
            "h",
            "beta",
            "sections",
            "resolution",
            "n_directions",
            "n_samples",
            "noise_share",
            "seed",
            "format",
            "architecture",
        )
    }
    run_settings["dataset"] = eval_set.name
    files += ["report.json", "index.html", "plotly.min.js"]
    write_json(
        out / "report.json",
        {
            "settings": run_settings,
            "study_settings": settings.describe(),
            "timings_s": timings,
            "files": files,
            "notes": notes,
            "evaluated_indices": eval_idx.tolist(),
        },
    )
    last = len(m_values) - 1
    facts = [
        ("network", f"{clf.name} ({card['format']}, {card['architecture']}), {card['parameters']:,} parameters"),
        ("data", f"{eval_set.name}, input {tuple(clf.input_shape)}, d = {clf.d}, {clf.num_classes} classes"),
        (f"accuracy ({eval_set.split} split)", f"{pct(accuracy)} of {len(eval_set.labels)} images"),
        (
            "DeepFool",
            f"ρ_adv = {fmt(rho, '.4f')}, median ‖r‖₂ = {fmt(df_stats['median_norm'])}, mean ‖r‖₂ = "
            f"{fmt(df_stats['mean_norm'])}, converged {pct(df_stats['converged_share'])} of n = {n}",
        ),
        (
            "S_c",
            f"m = {S_c.m} from {S_c.n} {fit_split} points, {S_c.method}{h_text}; top curvature "
            f"(re-evaluated) K = {fmt(float(S_c.curvatures[0]))}, top Ritz value {fmt(float(S_c.spectrum[0]))}, "
            f"asymmetry {fmt(S_c.asymmetry, '.3f')}",
        ),
        (
            f"curvature at m = {m_values[last]}",
            ", ".join(f"{nm} {fmt(float(c.mean[-1]))} ± {fmt(float(c.std[-1]), '.2g')}" for nm, c in curves.items()),
        ),
    ]
    if fool is not None:
        lf = len(fool.m_values) - 1
        facts.append(
            (
                f"fooling rate at m = {int(fool.m_values[lf])}",
                f"ξ = {fmt(fool.xi, '.3g')}: "
                + ", ".join(f"{nm} {pct(float(fool.mean[nm][lf]))}" for nm in fool.names),
            )
        )
    else:
        facts.append(("fooling rate versus m", "skipped (random-noise norm infinite)"))
    facts.append(("time", f"{timings['total']:.1f} s"))
    write_index(out, clf.name, facts, files, notes, panels)
    bar.update(1.0, "done")

    width = max(len(k) for k, _ in facts)
    lines = [f"Boundary Atlas report: {clf.name} on {eval_set.name} ({eval_set.split} split)"]
    lines += [f"  {k:<{width}}  {v}" for k, v in facts]
    lines += [f"  note: {m}" for m in notes]
    lines.append(f"  report: {(out / 'index.html').resolve()}")
    return "\n".join(lines)


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
