"""The command line's options, defined once and shared by the sub-commands; every default read from the
study settings classes (:mod:`geometry.study.settings`, :class:`geometry.study.report.ReportSettings`).

Option groups: :func:`add_zoo_option` / :func:`add_model_options` (``--zoo``, ``--model`` and the user
model's format, architecture, shape, normalisation), :func:`add_data_options` (``--dataset``,
``--data``, ``--split``), :func:`add_point_options` (``--n-points``, ``--n-heldout``, ``--seed``),
:func:`add_curvature_options` (m, method, h, β, boundary point, directions), :func:`add_output_options`.
:func:`curvature_settings` and :func:`report_settings` turn parsed arguments into settings objects;
:func:`report_argv` is the inverse (the app shows the command line of its settings).

Sizes are checked by argparse (``type=``) before anything is loaded, trained or allocated.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from ..study.report import ReportSettings
from ..study.settings import (
    BOUNDARY_POINTS,
    CURVATURE_METHODS,
    H_PRESETS,
    RX_PROTOCOLS,
    CurvatureSettings,
    HScale,
    PointSplit,
)
from ..validation import HPreset

__all__ = [
    "PROG",
    "DATASET_NAMES",
    "FORMAT_NAMES",
    "MAX_RESOLUTION",
    "MAX_POINTS",
    "MAX_M",
    "MAX_SECTIONS",
    "MAX_DRAWS",
    "SEED_RANGE",
    "Parser",
    "int_in",
    "positive_int",
    "positive_float",
    "share",
    "add_zoo_option",
    "add_model_options",
    "add_data_options",
    "add_point_options",
    "add_curvature_options",
    "add_output_options",
    "curvature_settings",
    "report_settings",
    "report_argv",
]

PROG = "boundary-atlas"
# Copies of geometry.data.DATASETS and geometry.loading.FORMATS (tests check they agree): the choices of
# --dataset / --format without importing the loaders.
DATASET_NAMES = ("digits", "mnist", "cifar10", "imagefolder")
FORMAT_NAMES = ("torchscript", "export", "onnx", "state_dict", "safetensors")

#: grid points per axis of a cross-section; a copy of geometry.sections.MAX_RESOLUTION (tests check they agree)
MAX_RESOLUTION = 4096
MAX_POINTS = 100_000  # --n-points, --n-heldout (the largest built-in split, MNIST train, has 60,000 images)
MAX_M = 1_000  # --m: a basis of m vectors of R^d per subspace, m Lanczos steps per point
MAX_SECTIONS = 100  # --sections: one HTML figure each
MAX_DRAWS = 1_000  # --n-directions, --n-samples: random vectors per m, each evaluated on every point
SEED_RANGE = (0, 2**63 - 1)  # PointSplit.seed

#: The defaults, read from the settings classes (never retyped here).
_REPORT = ReportSettings()
_CURVATURE = CurvatureSettings()


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line ``PROG: error: …`` (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


# ------------------------------------------------------------------------------------------ value types
def positive_int(text: str) -> int:
    """argparse ``type=``: an integer ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse ``type=``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def share(text: str) -> float:
    """argparse ``type=``: a share in (0, 1]."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], got {text!r}")
    return value


def xi_ratio(text: str) -> float:
    """ξ / ‖x‖: a number in (0, 10]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 10], got {text!r}") from None
    if not 0.0 < value <= 10.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 10], got {text!r}")
    return value


def int_in(lo: int, hi: int, what: str) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in [lo, hi], so a size is refused before anything is allocated; the
    message of a value outside says the limit (``what`` names the quantity, e.g. "grid points per axis")."""

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


# ------------------------------------------------------------------------------------------ option groups
def add_zoo_option(parser: argparse.ArgumentParser | Any, *, required: bool = False) -> None:
    """``--zoo NAME``."""
    parser.add_argument(
        "--zoo", metavar="NAME", required=required, help="a zoo network (trained on first use), e.g. digits-lenet"
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--zoo`` or ``--model`` (one of them), and the user model's options."""
    g = parser.add_argument_group("model (one of)")
    src = g.add_mutually_exclusive_group(required=True)
    add_zoo_option(src)
    src.add_argument(
        "--model",
        metavar="PATH",
        help="your model file: TorchScript, torch.export (.pt2), ONNX (.onnx), state_dict (.pt/.pth, "
        "needs --architecture) or safetensors (needs --architecture)",
    )
    g = parser.add_argument_group("user model options (with --model)")
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
        type=positive_int,
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


def add_data_options(parser: argparse.ArgumentParser, *, dataset: bool = True) -> argparse._ArgumentGroup:
    """``--dataset`` (when ``dataset``), ``--data``, ``--split``; returns the group."""
    g = parser.add_argument_group("data")
    if dataset:
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
        help="split of the evaluated (held-out) points: accuracy, DeepFool, sections, curves (default: %(default)s)",
    )
    return g


def add_point_options(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    """``--n-points``, ``--n-heldout``, ``--seed``: the :class:`~geometry.study.settings.PointSplit`."""
    points = _CURVATURE.points
    group.add_argument(
        "--n-points",
        metavar="N",
        type=int_in(1, MAX_POINTS, "points"),
        default=points.n_estimate,
        help=f"training points S_c / S_f are estimated from (default: %(default)s, at most {MAX_POINTS:,})",
    )
    group.add_argument(
        "--n-heldout",
        metavar="N",
        type=int_in(1, MAX_POINTS, "points"),
        default=points.n_heldout,
        help="evaluated (held-out) points: the first N of --split; DeepFool, sections, curves, fooling rates "
        f"(default: %(default)s, at most {MAX_POINTS:,})",
    )
    group.add_argument(
        "--seed",
        metavar="SEED",
        type=int_in(*SEED_RANGE, "a seed"),
        default=points.seed,
        help="seed of every random choice (default: %(default)s)",
    )


def add_curvature_options(
    group: argparse._ArgumentGroup | argparse.ArgumentParser, *, m_flag: str = "--m", h_flag: str = "--h"
) -> None:
    """m, the Hessian estimator, h (preset or value), β, the boundary point and the directions per m: the
    :class:`~geometry.study.settings.CurvatureSettings`. ``m_flag`` / ``h_flag``: ``study`` under torchrun
    takes ``--m-max`` / ``--h-scale`` (torchrun's parser reads ``--m`` / ``--h`` as abbreviations of its own)."""
    c = _CURVATURE
    group.add_argument(
        m_flag,
        dest="m",
        metavar="M",
        type=int_in(1, MAX_M, "subspace dimensions"),
        default=c.m_max,
        help=f"dimension of S_c, S_f and the random subspace: the largest m (default: %(default)s, at most {MAX_M:,} "
        "and below d)",
    )
    group.add_argument(
        "--method",
        choices=CURVATURE_METHODS,
        default=c.method,
        help="Hessian-vector products: finite differences at scale h, exact autograd, or the exact "
        "Hessian of the softplus twin (default: %(default)s)",
    )
    group.add_argument(
        "--h-preset",
        choices=H_PRESETS,
        default=c.scale.preset,
        help="how h is chosen: authors (10·√d·range/512), xi (h = ξ, 1/5 of the random-noise norm fooling "
        f"{100 * c.scale.noise_share:g} %% of the held-out points) or custom (the value of {h_flag}) (default: %(default)s; "
        f"{h_flag} H implies custom)",
    )
    group.add_argument(
        "--h-noise-share",
        metavar="SHARE",
        type=share,
        default=c.scale.noise_share,
        help="for --h-preset xi: ξ of h from the random-noise norm fooling this share (default: %(default)s)",
    )
    group.add_argument(
        "--h-xi-factor",
        metavar="F",
        type=positive_float,
        default=c.scale.xi_factor,
        help="for --h-preset xi: h = F·ξ (default: %(default)s; 0.5 is Compare networks' h = ξ/2)",
    )
    group.add_argument(
        h_flag,
        dest="h",
        metavar="H",
        type=positive_float,
        default=c.scale.value,
        help="finite-difference scale h in pixel units (sets --h-preset custom)",
    )
    group.add_argument(
        "--beta",
        metavar="BETA",
        type=positive_float,
        default=c.beta,
        help="softplus sharpness for --method smoothed (default: the backend's)",
    )
    group.add_argument(
        "--point",
        choices=BOUNDARY_POINTS,
        default=c.point,
        help="where the boundary Hessian is taken: z = x + r(x), or x + 0.8·r(x) as in the authors' code "
        "(default: %(default)s)",
    )
    group.add_argument(
        "--rx",
        choices=RX_PROTOCOLS,
        default=c.rx,
        help="how r(x) and the boundary points z = x + r(x) are found: box (DeepFool with every iterate clamped "
        "to the pixel box, z is an image) or unconstrained (the paper's protocol, CVPR 2016 Alg. 2; z may leave "
        "the box) (default: %(default)s)",
    )
    group.add_argument(
        "--paper-protocol",
        dest="rx",
        action="store_const",
        const="unconstrained",
        help="the paper's protocol: unconstrained DeepFool (the same as --rx unconstrained)",
    )
    group.add_argument(
        "--n-directions",
        metavar="K",
        type=int_in(1, MAX_DRAWS, "random directions per m"),
        default=c.n_directions,
        help="random directions per m for the curvature curves K_S (default: %(default)s)",
    )


def add_output_options(parser: argparse.ArgumentParser, *, quiet_help: str = "no progress bar") -> None:
    """``--out DIR`` and ``-q``."""
    g = parser.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", required=True, help="output folder (created; files are overwritten)")
    g.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def add_report_options(group: argparse._ArgumentGroup) -> None:
    """The report's own options: sections and the fooling-rate curve (:class:`ReportSettings`)."""
    r = _REPORT
    group.add_argument(
        "--sections",
        metavar="K",
        type=int_in(0, MAX_SECTIONS, "cross-sections"),
        default=r.sections,
        help="cross-sections at the first K converged points, each along its own random v (default: %(default)s)",
    )
    group.add_argument(
        "--resolution",
        metavar="R",
        type=int_in(2, MAX_RESOLUTION, "grid points per axis"),
        default=r.resolution,
        help=f"grid points per axis of a cross-section (default: %(default)s, 2 to {MAX_RESOLUTION})",
    )
    group.add_argument(
        "--extent",
        metavar="F",
        type=positive_float,
        default=r.extent_factor,
        help="half-width of a cross-section in multiples of ‖r(x)‖₂ (default: %(default)s)",
    )
    group.add_argument(
        "--n-samples",
        metavar="K",
        type=int_in(1, MAX_DRAWS, "random vectors per m"),
        default=r.n_samples,
        help="random vectors per m for the fooling-rate curves (default: %(default)s)",
    )
    group.add_argument(
        "--noise-share",
        metavar="SHARE",
        type=share,
        default=r.share,
        help="the share of points the random noise fools (reported; with --xi-from-noise, ξ of the fooling-rate "
        "curves = 1/5 of that noise norm, ICLR 2018 Fig. 7b) (default: %(default)s)",
    )
    group.add_argument(
        "--xi-ratio",
        metavar="R",
        type=xi_ratio,
        default=r.xi_ratio,
        help="ξ of the fooling-rate curves = R × the median ‖x‖₂ of the points (default: %(default)s, the ratio of "
        "CVPR 2017 §3: ξ = 2000 on ImageNet images of ‖x‖₂ ≈ 5·10⁴; the Universal page's default)",
    )
    group.add_argument(
        "--xi-from-noise",
        dest="xi_ratio",
        action="store_const",
        const=None,
        help="ξ of the fooling-rate curves = 1/5 of the random-noise norm fooling --noise-share of the points "
        "(ICLR 2018 Fig. 7b) instead of --xi-ratio",
    )


# ------------------------------------------------------------------------------------------ settings
def curvature_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> CurvatureSettings:
    """The :class:`CurvatureSettings` of parsed point and curvature options (``--h H`` implies ``custom``)."""
    preset: HPreset = "custom" if args.h is not None else args.h_preset
    if preset == "custom" and args.h is None:
        parser.error("--h-preset custom needs the value of h (--h H)")
    return CurvatureSettings(
        points=PointSplit(n_estimate=args.n_points, n_heldout=args.n_heldout, seed=int(args.seed)),
        m_max=args.m,
        method=args.method,
        scale=HScale(preset, args.h, noise_share=args.h_noise_share, xi_factor=args.h_xi_factor),
        beta=args.beta,
        point=args.point,
        n_directions=args.n_directions,
        rx=args.rx,
    )


def report_settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> ReportSettings:
    """The :class:`ReportSettings` of ``boundary-atlas report``'s parsed options."""
    return ReportSettings(
        curvature=curvature_settings(args, parser),
        share=args.noise_share,
        n_samples=args.n_samples,
        xi_ratio=args.xi_ratio,
        sections=args.sections,
        resolution=args.resolution,
        extent_factor=args.extent,
    )


def report_argv(model: str, dataset: str, settings: ReportSettings, *, out: str = "report") -> list[str]:
    """The arguments of ``boundary-atlas report`` that give ``settings`` (options at their default left out).

    Parsed by this command line they give ``settings`` back (tests check), except what the command line does
    not expose: ``tangent`` (always True in a report).
    """
    c, default = settings.curvature, _REPORT
    argv = ["report", "--zoo", model, "--dataset", dataset]
    scale = c.scale
    opts: list[tuple[str, Any, Any]] = [
        ("--n-points", c.points.n_estimate, _CURVATURE.points.n_estimate),
        ("--n-heldout", c.points.n_heldout, _CURVATURE.points.n_heldout),
        ("--seed", c.points.seed, _CURVATURE.points.seed),
        ("--m", c.m_max, _CURVATURE.m_max),
        ("--method", c.method, _CURVATURE.method),
        ("--h-preset", scale.preset if scale.preset != "custom" else None, _CURVATURE.scale.preset),
        ("--h-noise-share", scale.noise_share, _CURVATURE.scale.noise_share),
        ("--h-xi-factor", scale.xi_factor, _CURVATURE.scale.xi_factor),
        ("--h", scale.value if scale.preset == "custom" else None, None),
        ("--beta", c.beta, _CURVATURE.beta),
        ("--point", c.point, _CURVATURE.point),
        ("--n-directions", c.n_directions, _CURVATURE.n_directions),
        ("--rx", c.rx, _CURVATURE.rx),
        ("--sections", settings.sections, default.sections),
        ("--resolution", settings.resolution, default.resolution),
        ("--extent", settings.extent_factor, default.extent_factor),
        ("--n-samples", settings.n_samples, default.n_samples),
        ("--noise-share", settings.share, default.share),
    ]
    if settings.xi_ratio != default.xi_ratio:
        opts.append(("--xi-ratio", settings.xi_ratio, None))  # None: ξ from the noise norm (below)
        if settings.xi_ratio is None:
            argv.append("--xi-from-noise")
    for flag, value, dflt in opts:
        if value is not None and value != dflt:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    return [*argv, "--out", out]
