"""The report: one network's decision boundary measured by the pages' own studies (issue 19, item 2).

:func:`build_report` computes, for one classifier and one dataset, what ``boundary-atlas report`` and
the app's "Prepare report" write out — with the study functions the pages call:

==============================  ===================================================================
DeepFool statistics             :func:`geometry.deepfool.deepfool` on the held-out points,
                                :func:`deepfool_statistics` (CVPR 2016 Table 1: ρ_adv, ‖r‖₂)
cross-sections                  :func:`geometry.study.section_study` (the Cross-sections page),
                                ``direction="random"``, section k with seed ``points.seed + k``
S_c, S_f, K_S versus m          :func:`geometry.study.curvature_study` (Curvature vs m, Fig. 7a)
ξ and fooling rate versus m     :func:`geometry.study.noise_norm`, :func:`geometry.study.xi`,
                                :func:`geometry.study.fooling_curve` (Fig. 7b's curve, on the
                                curvature study's S_c, S_f and random subspace)
==============================  ===================================================================

Writing the result out is a separate step (:func:`geometry.output.report.write_report`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..classifier import Classifier
from ..data import Dataset
from ..deepfool import DeepFoolResult, deepfool, rho_adv
from ..errors import AtlasError, DatasetNotFoundError, InvalidInputError
from ..progress import ProgressFn, stage
from ..subspaces import principal_angles
from ..universal import FoolingCurve, NoiseNormResult
from .curvature import CurvatureStudy, curvature_study
from .noise import noise_norm, vectors_xi
from .points import StudyPoints, network_fingerprint, split_points
from .sections import SectionSettings, SectionStudy, section_study
from .settings import (
    RX_LABELS,
    CompareSettings,
    CurvatureSettings,
    UniversalSettings,
    _int,
    _Settings,
    _share,
    check_xi_ratio,
)
from .universal import fooling_curve

__all__ = [
    "ReportSettings",
    "ReportData",
    "ReportSection",
    "Report",
    "load_report_data",
    "zoo_source",
    "deepfool_statistics",
    "build_report",
]

#: Cross-sections drawn by default (one HTML figure each).
REPORT_SECTIONS = 3


@dataclass(frozen=True)
class ReportSettings(_Settings):
    """What defines a report (every default is the pages' own, read from their settings classes).

    Attributes
    ----------
    curvature : CurvatureSettings — the points (S_c / S_f from ``n_estimate`` training points, DeepFool, the
        sections and the curves on the first ``n_heldout`` evaluated points, ``seed``), m, the Hessian
        estimator and its h (default h = ξ at 50 %, as on Curvature vs m)
    xi_ratio : float or None — ξ of the fooling-rate curve = xi_ratio · the median ‖x‖₂ of the (first 200)
        evaluated points (default :attr:`UniversalSettings.xi_ratio`, the Universal page's: 0.04, CVPR 2017 §3's
        ratio); None: 1/5 of the random-noise norm fooling ``share`` (ICLR 2018 Fig. 7b)
    share : float in (0, 1] — the random-noise norm's share (default :attr:`UniversalSettings.share`, the
        Universal page's); sets ξ when ``xi_ratio`` is None
    n_samples : int ≥ 1 — random vectors per m of the fooling-rate curve (default the Universal page's)
    sections : int ≥ 0 — cross-sections drawn, at the first converged evaluated points
    resolution : int — grid points per axis of a section (default :attr:`SectionSettings.resolution`)
    extent_factor : float > 0 — half-width of a section in multiples of ‖r(x)‖₂ (default the section study's)

    The sections' curvature along v uses the curvature settings' method and boundary point at the h the
    curvature study resolved (as the Cross-sections page does).
    """

    curvature: CurvatureSettings = field(default_factory=CurvatureSettings)
    share: float = UniversalSettings.share
    n_samples: int = UniversalSettings.n_samples
    xi_ratio: float | None = UniversalSettings.xi_ratio
    sections: int = REPORT_SECTIONS
    resolution: int = SectionSettings.resolution
    extent_factor: float = SectionSettings.extent_factor

    def __post_init__(self) -> None:
        if not isinstance(self.curvature, CurvatureSettings):
            raise InvalidInputError(f"curvature must be a CurvatureSettings, got {type(self.curvature).__name__}")
        _share("share", self.share)
        _int("n_samples", self.n_samples, 1)
        check_xi_ratio(self.xi_ratio)
        _int("sections", self.sections, 0)
        SectionSettings(resolution=self.resolution, extent_factor=self.extent_factor)  # validates both

    def section(self, k: int, *, h: float | None) -> SectionSettings:
        """The settings of cross-section ``k`` (0-based): a random v of seed ``points.seed + k``, the curvature
        along v by this report's estimator at ``h`` (the resolved h of the curvature study)."""
        c = self.curvature
        return SectionSettings(
            direction="random",
            seed=(c.points.seed + int(k)) % 2**63,
            extent_factor=self.extent_factor,
            resolution=self.resolution,
            method=c.method,
            h=h,
            point=c.point,
            rx=c.rx,
        )

    @classmethod
    def following(cls, settings: Any = None) -> ReportSettings:
        """The report of a page's settings: its points, m, estimator and h where it has them.

        ``CurvatureSettings``: as they are; ``UniversalSettings``: its points (no UAP), m, h, share and
        samples; ``CompareSettings``: its points, m_estimated, h; each page's r(x) protocol (``rx``); anything else:
        the defaults.
        """
        if isinstance(settings, CurvatureSettings):
            return cls(curvature=settings)
        if isinstance(settings, UniversalSettings):
            return cls(
                curvature=CurvatureSettings(
                    points=dataclasses.replace(settings.points, n_uap=0),
                    m_max=settings.m_max,
                    scale=settings.scale,
                    rx=settings.rx,
                ),
                share=settings.share,
                n_samples=settings.n_samples,
                xi_ratio=settings.xi_ratio,
            )
        if isinstance(settings, CompareSettings):
            return cls(
                curvature=CurvatureSettings(
                    points=settings.points, m_max=settings.m_estimated, scale=settings.scale, rx=settings.rx
                )
            )
        return cls()


@dataclass(frozen=True)
class ReportData:
    """The data of a report.

    Attributes
    ----------
    evaluated : Dataset — the split whose points are evaluated (accuracy on all of it; DeepFool, sections,
        curves and fooling rates on its first ``n_heldout``)
    train : Dataset or None — the training split S_c / S_f are estimated from (None: the evaluated split is
        halved, :func:`geometry.study.split_points`)
    """

    evaluated: Dataset
    train: Dataset | None = None


def load_report_data(name: str, *, root: Any = None, split: str = "test") -> ReportData:
    """The evaluated ``split`` of dataset ``name`` and, unless ``split`` is ``"train"``, its training split
    (None when the dataset has none).

    Raises
    ------
    DatasetNotFoundError, UnknownNameError
        from :func:`geometry.data.load_dataset`.
    """
    from ..data import load_dataset

    evaluated = load_dataset(name, root=root, split=split)
    train = None
    if split != "train":
        try:
            train = load_dataset(name, root=root, split="train")
        except DatasetNotFoundError:
            train = None
    return ReportData(evaluated, train)


def zoo_source(name: str, clf: Classifier) -> dict[str, Any]:
    """The model card's source facts of the zoo network ``name`` (architecture, recipe, cache file)."""
    from ..zoo import ZOO

    entry = ZOO[name]
    return {
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


def deepfool_statistics(df: DeepFoolResult, xs: torch.Tensor) -> dict[str, Any]:
    """DeepFool's summary on the points ``xs`` (N, C, H, W) (CVPR 2016 Table 1).

    Returns
    -------
    dict — ``rho_adv`` (mean over converged points of ‖r(x)‖₂ / ‖x‖₂, Eq. 15), ``mean_norm``, ``median_norm``,
    ``std_norm`` (of ‖r(x)‖₂ over converged points, pixel-space ℓ2; NaN when none converged),
    ``converged_share``, ``n``, ``n_converged``, ``overshoot``, ``norm``, ``mean_iterations``,
    ``n_forward``, ``n_backward``.
    """
    n = len(xs)
    conv = df.converged.bool()
    norms = df.norms.double()
    any_conv = bool(conv.any())
    return {
        "rho_adv": rho_adv(df, xs),
        "rho_adv_definition": "mean over converged points of ‖r(x)‖₂ / ‖x‖₂ (CVPR 2016 Eq. 15)",
        "mean_norm": float(norms[conv].mean()) if any_conv else float("nan"),
        "median_norm": float(norms[conv].quantile(0.5)) if any_conv else float("nan"),
        "std_norm": float(norms[conv].std(correction=0)) if any_conv else float("nan"),
        "norm_unit": "pixel-space ℓ2, inputs in [0, 1]",
        "converged_share": float(conv.double().mean()) if n else float("nan"),
        "n": n,
        "n_converged": int(conv.sum()),
        "overshoot": df.overshoot,
        "norm": "l2",
        "mean_iterations": float(df.n_iter.double().mean()) if n else float("nan"),
        "n_forward": df.n_forward,
        "n_backward": df.n_backward,
    }


@dataclass(frozen=True)
class ReportSection:
    """One cross-section of the report.

    Attributes
    ----------
    position : int — the point's position among the evaluated points
    index : int — its index in the evaluated dataset; true_label : int
    settings : SectionSettings — as given to :func:`geometry.study.section_study`
    study : SectionStudy — DeepFool at x, the section on (r(x), v), the curvature along v
    kappa : float or None — normal curvature κ along v at z = x + r(x) (1/pixel; > 0: the other class wraps
        around x); None when not evaluated
    """

    position: int
    index: int
    true_label: int
    settings: SectionSettings
    study: SectionStudy
    kappa: float | None


@dataclass(frozen=True)
class Report:
    """Everything a report shows, for one classifier, dataset and :class:`ReportSettings`.

    Attributes
    ----------
    settings : ReportSettings
    name : str — the classifier's name; card : dict — the model card (source, shapes, classes, accuracy,
        fingerprint)
    dataset, split : str — the evaluated dataset and split; fit_split : str — the split of S_c / S_f
    accuracy : float — on the whole evaluated split (``card["accuracy_n"]`` images)
    points : StudyPoints — from :func:`geometry.study.split_points` with ``settings.curvature.points``
    true_labels : (n_heldout,) int64 — the evaluated points' labels
    deepfool : DeepFoolResult — on the evaluated (held-out) points; deepfool_stats : dict
        (:func:`deepfool_statistics`)
    sections : tuple of ReportSection
    curvature : CurvatureStudy — S_c, S_f, random subspace and K_S versus m (Fig. 7a)
    cosines : (m,) — cosines of the principal angles between S_c and S_f, descending
    noise : NoiseNormResult — the random-noise norm at ``settings.share``
    xi : float or None — ξ = noise quantile / 5 (None: the quantile is infinite, no fooling curve)
    fooling : FoolingCurve or None — fooling rate versus m of random vectors of norm ξ (Fig. 7b)
    notes : tuple of str — what a reader should know (dropped points, skipped parts)
    timings : dict step → seconds
    """

    settings: ReportSettings
    name: str
    card: dict
    dataset: str
    split: str
    fit_split: str
    accuracy: float
    points: StudyPoints
    true_labels: torch.Tensor
    deepfool: DeepFoolResult
    deepfool_stats: dict
    sections: tuple[ReportSection, ...]
    curvature: CurvatureStudy
    cosines: torch.Tensor
    noise: NoiseNormResult
    xi: float | None
    fooling: FoolingCurve | None
    notes: tuple[str, ...]
    timings: dict

    @property
    def n(self) -> int:
        """Number of evaluated points."""
        return len(self.points.heldout)


def _check_data(clf: Classifier, data: Dataset) -> None:
    if tuple(data.images.shape[1:]) != tuple(clf.input_shape):
        raise InvalidInputError(
            f"{clf.name} takes inputs of shape {tuple(clf.input_shape)}, the {data.name} images have shape "
            f"{tuple(data.images.shape[1:])}; choose the dataset the network was trained on"
        )
    n_labels = int(data.labels.max()) + 1 if len(data.labels) else 0
    if n_labels > clf.num_classes:
        raise InvalidInputError(
            f"{clf.name} has {clf.num_classes} classes, the {data.name} labels go up to "
            f"{n_labels - 1}; choose the dataset the network was trained on"
        )


def _model_card(clf: Classifier, data: Dataset, accuracy: float, source: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": clf.name,
        **source,
        "device": str(clf.device),
        "input_shape": list(clf.input_shape),
        "d": clf.d,
        "classes": list(clf.class_names),
        "num_classes": clf.num_classes,
        "parameters": int(sum(p.numel() for p in clf.model.parameters())),
        "bounds": list(clf.bounds),
        "normalisation": None if clf.mean is None else {"mean": list(clf.mean), "std": list(clf.std or ())},
        "dataset": data.name,
        "dataset_source": data.source,
        "accuracy_split": data.split,
        "accuracy_n": len(data.labels),
        "test_accuracy": accuracy,
        "fingerprint": network_fingerprint(clf),
    }


def _sections(
    clf: Classifier, report: ReportSettings, xs: torch.Tensor, df: DeepFoolResult, h: float | None, progress: ProgressFn
) -> tuple[list[tuple[int, SectionSettings, SectionStudy, float | None]], list[str]]:
    """Sections at the first ``report.sections`` converged points: (position, settings, study, κ), notes."""
    notes: list[str] = []
    converged = df.converged.bool().nonzero().flatten().tolist()
    if report.sections and not converged:
        notes.append("no converged DeepFool point: no cross-section drawn")
    chosen = converged[: report.sections]
    out = []
    for k, i in enumerate(chosen):
        progress(k / max(len(chosen), 1), f"{k + 1}/{len(chosen)}")
        settings = report.section(k, h=h)
        try:
            sec = section_study(clf, xs[i], settings)
        except AtlasError as exc:  # e.g. the smoothed estimator on a network without ReLU
            notes.append(f"section {k + 1}: not drawn ({' '.join(str(exc).split())})")
            continue
        kappa = float(sec.along.kappa[0, 0]) if sec.along is not None else None
        out.append((i, settings, sec, kappa))
    progress(1.0, "done")
    return out, notes


def build_report(
    classifier: Classifier,
    data: ReportData,
    settings: ReportSettings,
    *,
    progress: ProgressFn | None = None,
    model_source: Mapping[str, Any] | None = None,
) -> Report:
    """Measure ``classifier``'s decision boundary on ``data`` with the pages' studies (module docstring).

    Parameters
    ----------
    classifier : Classifier — on the device it should run on
    data : ReportData — the evaluated split and the training split (:func:`load_report_data`)
    settings : ReportSettings
    progress : ``progress(fraction, message)``
    model_source : the model card's source facts (:func:`zoo_source`, or a model file's format / hash)

    Returns
    -------
    Report

    Raises
    ------
    InvalidInputError
        the images do not fit the classifier's input shape, or their labels go beyond its classes.
    AtlasError
        from the studies.

    References: Moosavi-Dezfooli et al., DeepFool (CVPR 2016); Robustness of classifiers to universal
    perturbations: a geometric perspective (ICLR 2018), §4–5, Fig. 5, 7a, 7b.
    """
    clf, ev, cs_settings = classifier, data.evaluated, settings.curvature
    _check_data(clf, ev)
    t_start = t = time.perf_counter()
    timings: dict[str, float] = {}
    notes: list[str] = []

    def tick(name: str, t0: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - t0, 3)
        return now

    report = stage(progress, 0.0, 1.0)
    report(0.0, f"accuracy on the {ev.split} split ({len(ev.labels)} images)")
    accuracy = clf.accuracy(ev.images, ev.labels)
    t = tick("accuracy", t)
    if data.train is None:
        notes.append(
            "no train split: S_c / S_f estimated from one half of the evaluated split, the evaluated "
            "points drawn from the other half"
        )
    points = split_points(ev, data.train, cs_settings.points)
    xs = points.heldout
    fit_split = "train" if data.train is not None else ev.split
    card = _model_card(clf, ev, accuracy, model_source or {"source": "classifier", **dict(clf.info)})

    report(0.05, f"DeepFool on {len(xs)} points")
    df = deepfool(clf, xs, clip=cs_settings.rx == "box")  # the sections' and the pages' r(x)
    stats = {**deepfool_statistics(df, xs), "split": ev.split, "rx": RX_LABELS[cs_settings.rx]}
    t = tick("deepfool", t)

    report(
        0.1,
        f"curvature study: S_c (m = {cs_settings.m_max}) and S_f from {len(points.estimate)} {fit_split} points, "
        f"K_S versus m on {len(xs)} points",
    )
    cs = curvature_study(clf, points, cs_settings, progress=stage(progress, 0.1, 0.6, "curvature study"))
    if cs.flat.m < cs_settings.m_max:
        notes.append(f"S_f has only {cs.flat.m} dimensions (≤ number of converged estimation points)")
    cosines = principal_angles(cs.curved.basis, cs.flat.basis)
    t = tick("curvature study", t)

    drawn, section_notes = _sections(clf, settings, xs, df, cs.h, stage(progress, 0.6, 0.75, "cross-sections"))
    notes += section_notes
    labels = ev.labels[points.heldout_indices]
    sections = tuple(
        ReportSection(i, int(points.heldout_indices[i]), int(labels[i]), s, sec, kappa) for i, s, sec, kappa in drawn
    )
    t = tick("sections", t)

    report(0.75, f"random-noise norm ({round(100 * settings.share)} % quantile)")
    noise = noise_norm(clf, points, settings.share)
    xi: float | None = None
    fool = None
    if math.isfinite(vectors_xi(noise, points, settings.xi_ratio)):
        xi = vectors_xi(noise, points, settings.xi_ratio)
        S_c, S_f, S_r = cs.curved, cs.flat, cs.random
        fool = fooling_curve(
            clf,
            points,
            {"S_c": S_c, "S_f": S_f, "random": S_r},
            m_values=[m for m in cs.m_values if m <= min(S_c.m, S_f.m, S_r.m)],
            xi=xi,
            n_samples=settings.n_samples,
            seed=int(cs_settings.points.seed),
            progress=stage(progress, 0.8, 0.97, "fooling rate versus m"),
        )
        if cs.h is not None and cs.h < xi / 4:
            notes.append(
                f"S_c was computed at the finite-difference scale h = {cs.h:.3g}, far below ξ = {xi:.3g}: "
                f"it describes the boundary's curvature at a smaller scale than the perturbations; "
                f"try h = {xi / 2:.2g} (--h {xi / 2:.2g} on the command line)"
            )
    else:
        notes.append(
            f"the random-noise norm that fools {100 * noise.share:g} % of the points is infinite: "
            f"{100 * noise.infinite_share:.0f} % of the random rays never change the label within "
            f"‖noise‖₂ ≤ {noise.max_norm:.3g} (common for ReLU networks); fooling rate versus m skipped"
        )
    t = tick("fooling rate vs m", t)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    report(1.0, "done")
    return Report(
        settings=settings,
        name=clf.name,
        card=card,
        dataset=ev.name,
        split=ev.split,
        fit_split=fit_split,
        accuracy=accuracy,
        points=points,
        true_labels=labels,
        deepfool=df,
        deepfool_stats=stats,
        sections=sections,
        curvature=cs,
        cosines=cosines,
        noise=noise,
        xi=xi,
        fooling=fool,
        notes=tuple(notes),
        timings=timings,
    )
