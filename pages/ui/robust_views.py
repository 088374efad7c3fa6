"""Views and background studies of the Robust training, Certified vs empirical and Geometry in 2-D pages.

Each page follows the view pattern of ``pages/ui/state.py`` (issue 19, item 5): a typed view of its
controls (:class:`RobustView`, :class:`CertifyView`, :class:`LabView`, :class:`LabVectorView`), whose
defaults come from the study's settings class (:class:`geometry.study.robust.RobustSettings`,
:class:`geometry.study.certify.CertifySettings`, :class:`geometry.study.toy2d.LabSettings`) and whose
values are read from the session (the URL on a session's first run) and written back to the URL;
``view.settings()`` is the study's settings object; the study runs as a background job of
:mod:`geometry.runtime.jobs` through :func:`pages.ui.jobs.result_of` — a page left mid-study keeps its
job running, and reopened it shows the same job's progress (with Cancel) or its result.

Kept apart from ``pages/ui/state.py`` and ``pages/ui/cached.py`` (owned by another engineer while they
move toward widget-bound query parameters); the two may absorb this module later.

Every study function is looked up on its module when the job is submitted (``_robust.robust_study``,
not an imported name), so tests can replace it with a slow fake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import torch

from geometry import study
from geometry.cache import cache_key
from geometry.classifier import Classifier
from geometry.data import Dataset
from geometry.lipschitz import UnsupportedLayerError
from geometry.progress import ProgressFn
from geometry.runtime import jobs as _registry
from geometry.study import certify as _certify
from geometry.study import data_fingerprint, network_fingerprint
from geometry.study import robust as _robust
from geometry.study import toy2d as _toy2d
from geometry.toy2d import TOY_DATASETS, TOY_MODELS, ToyData, direction_vector, toy_data

from . import jobs as _jobs
from .state import init_state, share, shareable

__all__ = [
    "CERT_CROWN",
    "CERT_N",
    "G2_ANGLE",
    "G2_KINDS",
    "G2_N",
    "G2_NOISE",
    "G2_SEED",
    "G2_XI",
    "ROB_ENS",
    "ROB_EPS",
    "ROB_EXTENT",
    "ROB_H",
    "ROB_N",
    "ROB_STEPS",
    "CertifyOutcome",
    "CertifyView",
    "LabPanels",
    "LabVectorView",
    "LabView",
    "RobustPoints",
    "RobustView",
    "certified_section",
    "certify",
    "ensemble_studies",
    "lab",
    "lab_data_points",
    "lab_panels",
    "robust_points",
    "robust_studies",
    "robust_test_points",
]

# ------------------------------------------------------------------ widget bounds (each defined once)
#: Robust training: test points (slider), ℓ∞ ε of the PGD accuracy (pixel units), finite-difference scale h
#: (pixel ℓ2), PGD steps (slider), window of the sections at x (multiples of the largest distance).
ROB_N: dict[str, Any] = dict(min_value=10, max_value=300, step=10)
ROB_EPS: dict[str, Any] = dict(min_value=0.001, max_value=1.0)
ROB_H: dict[str, Any] = dict(min_value=0.01, max_value=10.0)
ROB_STEPS: dict[str, Any] = dict(min_value=5, max_value=100, step=5)
ROB_EXTENT: dict[str, Any] = dict(min_value=1.5, max_value=6.0, step=0.5)
ROB_SEED: dict[str, Any] = dict(min_value=0, max_value=10_000, step=1)
#: Robust training: test points of the AutoAttack-style ensemble (slider; it costs ≈ 3000 passes per point).
ROB_ENS: dict[str, Any] = dict(min_value=10, max_value=500, step=10)
#: Certified vs empirical: the first test points certified and attacked (slider).
CERT_N: dict[str, Any] = dict(min_value=20, max_value=1000, step=20)
#: CROWN's ball on the Certified page ("none": skip CROWN)
CERT_CROWN: tuple[str, ...] = ("l2", "linf", "none")
#: Geometry in 2-D: points, noise, seed of the toy data; v's angle (degrees) and norm ξ (data units).
G2_N: dict[str, Any] = dict(min_value=40, max_value=600, step=20)
G2_NOISE: dict[str, Any] = dict(min_value=0.0, max_value=0.5, step=0.01)
G2_SEED: dict[str, Any] = dict(min_value=0, max_value=1000, step=1)
G2_ANGLE: dict[str, Any] = dict(min_value=-180, max_value=180, step=1)
G2_XI: dict[str, Any] = dict(min_value=0.05, max_value=2.0, step=0.01)
G2_KINDS = {"S_f": "S_f (flat: the normals' shared direction)", "S_c": "S_c (curved subspace)", "custom": "my own v"}
#: The side-by-side models of the 2-D lab's "flat model vs curved model" (the talk's slides).
FLAT, CURVED = "linear", "mlp-tanh"

_ROBUST = _robust.RobustSettings()
_ENSEMBLE = _robust.EnsembleSettings()
_CERTIFY = _certify.CertifySettings()
_LAB = _toy2d.LabSettings()


def _key(kind: str, network: str, parts: dict) -> str:
    """A job key: the study's kind, the network's fingerprint and a digest of what else defines the work."""
    return f"{kind}:{network}:{cache_key(parts)}"


# ------------------------------------------------------------------ Robust training
@dataclass(frozen=True)
class RobustView:
    """The "Robust training" view (keys ``rob_*``).

    Attributes
    ----------
    nets : tuple of 2–4 network names (zoo names or this session's uploads)
    n : test points (seeded choice); eps : ℓ∞ radius of the PGD accuracy (pixel units);
    h : finite-difference curvature scale (pixel ℓ2); steps : PGD steps
    seed : the random direction's seed at the sidebar's datapoint; extent : the sections' window
        (multiples of the largest boundary distance at x)
    ens_n : test points of the ensemble's robust accuracy (:class:`geometry.study.robust.EnsembleSettings`)
    """

    nets: tuple[str, ...]
    n: int
    eps: float
    h: float
    steps: int
    seed: int
    extent: float
    ens_n: int = _ENSEMBLE.n_points

    @staticmethod
    def default_eps(d: int) -> float:
        """The zoo's ε for inputs of dimension ``d`` (:data:`geometry.study.robust.DEFAULT_EPS`), else the
        settings' default."""
        return float(_robust.DEFAULT_EPS.get(d, _ROBUST.eps))

    @classmethod
    def read(cls, names: Sequence[str], defaults: Sequence[str], d: int) -> RobustView:
        """The view from the session (the URL on first use), every value valid for its widget.

        ``names``: the networks that may be chosen; ``defaults``: the networks chosen when the URL names fewer
        than two of them; ``d``: the input dimension (it sets ε's default)."""
        ss = st.session_state
        if "rob_nets" not in ss:
            from_url = [t for t in st.query_params.get("rob_nets", "").split(",") if t in names]
            ss["rob_nets"] = from_url[:4] if len(from_url) >= 2 else list(defaults)
        ss["rob_nets"] = [nm for nm in ss["rob_nets"] if nm in names][:4]
        return cls(
            nets=tuple(ss["rob_nets"]),
            n=init_state("rob_n", _ROBUST.n_points, int, **ROB_N),
            eps=init_state("rob_eps", cls.default_eps(d), float, **ROB_EPS),
            h=init_state("rob_h", _ROBUST.h, float, **ROB_H),
            steps=init_state("rob_steps", _ROBUST.pgd_steps, int, **ROB_STEPS),
            seed=init_state("rob_seed", 0, int, **ROB_SEED),
            extent=init_state("rob_extent", 3.0, float, **ROB_EXTENT),
            ens_n=init_state("rob_ens", _ENSEMBLE.n_points, int, **ROB_ENS),
        )

    def share(self) -> None:
        """Write the view into the URL (uploads, which live in one session only, are left out)."""
        share(
            rob_n=self.n,
            rob_eps=self.eps,
            rob_h=self.h,
            rob_steps=self.steps,
            rob_seed=self.seed,
            rob_extent=self.extent,
            rob_ens=self.ens_n,
            rob_nets=",".join(nm for nm in self.nets if shareable(nm)),
        )

    def settings(self, d: int) -> _robust.RobustSettings:
        """CURE's protocol (DESIGN §7) at this view: FMN's initial step 1.0 on MNIST-sized inputs (d ≥ 784),
        0.1 on the 8×8 digits (distances ≈ 0.5)."""
        return _robust.RobustSettings(
            n_points=int(self.n),
            eps=float(self.eps),
            pgd_steps=int(self.steps),
            h=float(self.h),
            fmn_max_stepsize=_robust.fmn_stepsize(d),
            seed=_ROBUST.seed,
        )

    def ensemble_settings(self) -> _robust.EnsembleSettings:
        """The ensemble's settings at this view (its points; the attacks and Square's budget at their defaults)."""
        return _robust.EnsembleSettings(n_points=int(self.ens_n))


def robust_test_points(dataset: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` test points of ``dataset`` (seeded choice, :func:`geometry.study.choose_points`) and their labels."""
    perm = study.choose_points(len(dataset.images), min(int(n), len(dataset.images)), random_state=0)
    return dataset.images[perm], dataset.labels[perm]


def robust_studies(
    clfs: dict[str, Classifier],
    xs: torch.Tensor,
    labels: torch.Tensor,
    settings: _robust.RobustSettings,
    *,
    label: Callable[[str], str] = str,
) -> dict[str, _robust.RobustStudy]:
    """:func:`geometry.study.robust.robust_study` of every network, each a background job.

    All the networks' jobs are submitted before the page waits for the first, so leaving the page mid-study
    leaves every network's study running; reopening the page finds them (same keys). Returns
    ``{name: RobustStudy}`` in the order of ``clfs``.

    Raises
    ------
    JobFailedError
        a study failed (its message), or was cancelled.
    """
    points = {"points": data_fingerprint(xs), "labels": data_fingerprint(labels.double()), "settings": settings.key()}
    keys = {
        name: _key("robust", network_fingerprint(clf), {**points, "structure": _certify.structure_fingerprint(clf)})
        for name, clf in clfs.items()
    }
    fn = _robust.robust_study
    for name, clf in clfs.items():  # queue them all: the work goes on if the page is left
        _registry.registry().submit(
            keys[name], fn, clf, xs, labels, settings, label=f"Robust training: {label(name)}", lane="page"
        )
    return {
        name: _jobs.result_of(keys[name], f"Measuring {label(name)}", fn, clf, xs, labels, settings)
        for name, clf in clfs.items()
    }


def ensemble_studies(
    clfs: dict[str, Classifier],
    xs: torch.Tensor,
    labels: torch.Tensor,
    settings: _robust.RobustSettings,
    ensemble: _robust.EnsembleSettings,
    *,
    label: Callable[[str], str] = str,
) -> dict[str, _robust.EnsembleStudy]:
    """:func:`geometry.study.robust.ensemble_study` of every network (PGD and the AutoAttack-style ensemble on the
    first ``ensemble.n_points`` of ``xs``, and the masking flags), each a background job, all submitted before
    the page waits for the first. Returns ``{name: EnsembleStudy}`` in the order of ``clfs``.

    Raises
    ------
    JobFailedError
        a study failed (its message), or was cancelled.
    """
    n = min(int(ensemble.n_points), int(xs.shape[0]))
    parts = {
        "points": data_fingerprint(xs[:n]),
        "labels": data_fingerprint(labels[:n].double()),
        "settings": settings.key(),
        "ensemble": ensemble.key(),
    }
    keys = {
        name: _key(
            "robust-ensemble", network_fingerprint(clf), {**parts, "structure": _certify.structure_fingerprint(clf)}
        )
        for name, clf in clfs.items()
    }
    fn = _robust.ensemble_study
    for name, clf in clfs.items():
        _registry.registry().submit(
            keys[name], fn, clf, xs, labels, settings, ensemble, label=f"Ensemble: {label(name)}", lane="page"
        )
    return {
        name: _jobs.result_of(
            keys[name], f"Robust accuracy by the ensemble: {label(name)}", fn, clf, xs, labels, settings, ensemble
        )
        for name, clf in clfs.items()
    }


@dataclass(frozen=True)
class RobustPoints:
    """CURE Fig. 1 at one datapoint for several networks: one window for all.

    Attributes
    ----------
    distance : {name: float} — the boundary distance at x (inf where no attack succeeded)
    extent : float — the window (pixel ℓ2): ``factor`` × the largest finite distance (1 if none)
    points : {name: PointStudy}
    """

    distance: dict[str, float]
    extent: float
    points: dict[str, _robust.PointStudy]


def _robust_points(
    clfs: dict[str, Classifier],
    x: torch.Tensor,
    settings: _robust.RobustSettings,
    factor: float,
    v_seed: int,
    *,
    progress: ProgressFn,
) -> RobustPoints:
    distance = {}
    for i, (name, clf) in enumerate(clfs.items()):
        progress(0.5 * i / len(clfs), f"boundary distance at x: {name}")
        distance[name] = float(_robust.point_distance(clf, x, settings).distance[0])
    dist = max((v for v in distance.values() if np.isfinite(v)), default=1.0)
    extent = float(factor) * dist
    points = {}
    for i, (name, clf) in enumerate(clfs.items()):
        progress(0.5 + 0.5 * i / len(clfs), f"loss along directions and cross-section: {name}")
        points[name] = _robust.point_study(clf, x, settings, extent=extent, v_seed=int(v_seed))
    return RobustPoints(distance=distance, extent=extent, points=points)


def robust_points(
    clfs: dict[str, Classifier], x: torch.Tensor, settings: _robust.RobustSettings, *, factor: float, v_seed: int
) -> RobustPoints:
    """Boundary distances, loss along the normal and a random direction, and normal sections at ``x`` (C, H, W)
    (:func:`geometry.study.robust.point_distance`, :func:`geometry.study.robust.point_study`; CURE Fig. 1) for
    every network, one window ``factor`` × the largest distance — a background job."""
    parts = {
        "networks": [
            [name, network_fingerprint(clf), _certify.structure_fingerprint(clf)] for name, clf in clfs.items()
        ],
        "x": data_fingerprint(x),
        "settings": settings.key(),
        "factor": repr(float(factor)),
        "v": int(v_seed),
    }
    return _jobs.result_of(
        _key("robust-point", "-", parts),
        "Boundary distance, loss along directions and cross-sections at x",
        _robust_points,
        clfs,
        x,
        settings,
        float(factor),
        int(v_seed),
    )


# ------------------------------------------------------------------ Certified vs empirical
@dataclass(frozen=True)
class CertifyView:
    """The "Certified vs empirical" view (key ``cert_n``): the first ``n`` test points."""

    n: int
    crown: str = _CERTIFY.crown_norm

    @classmethod
    def read(cls) -> CertifyView:
        return cls(
            n=init_state("cert_n", _CERTIFY.n_points, int, **CERT_N),
            crown=init_state("cert_crown", _CERTIFY.crown_norm, str, options=CERT_CROWN),
        )

    def share(self) -> None:
        share(cert_n=self.n, cert_crown=self.crown)

    def settings(self) -> _certify.CertifySettings:
        """Tsuzuku et al.'s certificate and CROWN (ball ``crown``) beside box DeepFool, FMN and DDN (the settings'
        defaults), on ``n`` points."""
        return _certify.CertifySettings(n_points=int(self.n), crown_norm=self.crown)


@dataclass(frozen=True)
class CertifyOutcome:
    """What the Certified page shows: the certified study, or — for a network whose Lipschitz constant
    cannot be bounded — the attack distances alone and the reason.

    Attributes
    ----------
    study : CertifyStudy or None; attacks : AttackStudy or None (exactly one is set)
    unsupported : str or None — the :class:`geometry.lipschitz.UnsupportedLayerError` message
    """

    study: _certify.CertifyStudy | None
    attacks: _certify.AttackStudy | None
    unsupported: str | None


def _certify_or_attack(
    clf: Classifier, xs: torch.Tensor, labels: np.ndarray, settings: _certify.CertifySettings, *, progress: ProgressFn
) -> CertifyOutcome:
    try:
        _certify.lipschitz_study(clf, n_power=settings.n_power, seed=settings.seed)
    except UnsupportedLayerError as exc:
        attacks = _certify.attack_study(clf, xs, labels, settings, progress=progress)
        return CertifyOutcome(study=None, attacks=attacks, unsupported=str(exc))
    return CertifyOutcome(
        study=_certify.certify_study(clf, xs, labels, settings, progress=progress), attacks=None, unsupported=None
    )


def certify_key(clf: Classifier, dataset: Dataset, settings: _certify.CertifySettings) -> str:
    """The job key of :func:`certify`: the network's weights *and* structure (a TorchScript upload of the zoo's
    weights is another graph), the first ``settings.n_points`` test points, their labels and the settings."""
    n = min(int(settings.n_points), len(dataset.images))
    parts = {
        "structure": _certify.structure_fingerprint(clf),
        "points": data_fingerprint(dataset.images[:n]),
        "labels": data_fingerprint(torch.as_tensor(dataset.labels.numpy()[:n]).double()),
        "settings": settings.key(),
    }
    return _key("certify", network_fingerprint(clf), parts)


def certify(clf: Classifier, dataset: Dataset, settings: _certify.CertifySettings) -> CertifyOutcome:
    """:func:`geometry.study.certify.certify_study` on the first ``settings.n_points`` test points of ``dataset``
    (or :func:`geometry.study.certify.attack_study` where the network has a layer without a Lipschitz rule),
    a background job keyed by :func:`certify_key`."""
    return _jobs.result_of(
        certify_key(clf, dataset, settings),
        "Certifying and attacking",
        _certify_or_attack,
        clf,
        dataset.images,
        dataset.labels.numpy(),
        settings,
    )


def certify_or_ready(
    clf: Classifier,
    dataset: Dataset,
    settings: _certify.CertifySettings,
    *,
    name: str,
    dataset_key: str,
    notice=None,
) -> _jobs.Shown:
    """:func:`certify`, or while it runs the last finished certification shown by a page
    (:func:`pages.ui.jobs.result_or_ready`, issue 20 item 3): ``.result`` a :class:`CertifyOutcome`, ``.inputs`` =
    (network, images, labels, settings) of the result shown."""
    return _jobs.result_or_ready(
        "certify",
        certify_key(clf, dataset, settings),
        "Certifying and attacking",
        _certify_or_attack,
        clf,
        dataset.images,
        dataset.labels.numpy(),
        settings,
        name=name,
        dataset=dataset_key,
        settings=settings,
        notice=notice,
    )


def _certified_section(clf: Classifier, x: torch.Tensor, *, progress: ProgressFn) -> _certify.CertifiedSection:
    progress(0.0, "DeepFool and the normal cross-section")
    return _certify.certified_section(clf, x)


def certified_section_key(clf: Classifier, x: torch.Tensor) -> str:
    """The job key of :func:`certified_section`: the network's weights and structure, and ``x``."""
    parts = {"structure": _certify.structure_fingerprint(clf), "x": data_fingerprint(x.unsqueeze(0))}
    return _key("certified-section", network_fingerprint(clf), parts)


def certified_section(clf: Classifier, x: torch.Tensor) -> _certify.CertifiedSection:
    """:func:`geometry.study.certify.certified_section` at ``x`` (C, H, W) — a background job."""
    return _jobs.result_of(
        certified_section_key(clf, x),
        "The certified disk on a normal cross-section",
        _certified_section,
        clf,
        x,
    )


# ------------------------------------------------------------------ Geometry in 2-D
@dataclass(frozen=True)
class LabView:
    """The "Geometry in 2-D" view (keys ``g2_*``): toy data, model and the point x.

    Defaults: :class:`geometry.study.toy2d.LabSettings`'s model, points and seed; the page opens on the circles
    with noise 0.08 at point 1 (an inner-circle point, where the boundary bends around x: the teaching view)."""

    data: str
    model: str
    n: int
    noise: float
    seed: int
    point: int

    @classmethod
    def read(cls) -> LabView:
        """The view from the session (the URL on first use). The point's bounds follow ``n``."""
        n = init_state("g2_n", _LAB.n_points, int, **G2_N)
        return cls(
            data=init_state("g2_data", "circles", options=list(TOY_DATASETS)),
            model=init_state("g2_model", _LAB.model, options=list(TOY_MODELS)),
            n=n,
            noise=init_state("g2_noise", 0.08, float, **G2_NOISE),
            seed=init_state("g2_seed", _LAB.seed, int, **G2_SEED),
            point=init_state("g2_pt", 1, int, **cls.point_bounds(n)),
        )

    @staticmethod
    def point_bounds(n: int) -> dict:
        """x: a data point's index (slider), 0 … n − 1."""
        return dict(min_value=0, max_value=int(n) - 1, step=1)

    def share(self, vector: LabVectorView | None = None) -> None:
        """Write the view (and v's, if given) into the URL."""
        share(
            g2_data=self.data,
            g2_model=self.model,
            g2_n=self.n,
            g2_noise=self.noise,
            g2_seed=self.seed,
            g2_pt=self.point,
            **(vector.url() if vector is not None else {}),
        )

    def settings(self, model: str | None = None, point: int | None = None) -> _toy2d.LabSettings:
        """The lab's settings (``model`` / ``point``: another model or point on the same data)."""
        return _toy2d.LabSettings(
            dataset=self.data,
            model=self.model if model is None else model,
            n_points=int(self.n),
            noise=float(self.noise),
            seed=int(self.seed),
            point=int(self.point if point is None else point),
        )


@dataclass(frozen=True)
class LabVectorView:
    """The 2-D lab's universal vector v (keys ``g2_dir``, ``g2_xi``, ``g2_ang``): its direction's kind
    ("S_f", "S_c" or "custom"), its norm ξ (data units) and, for "custom", its angle (degrees)."""

    kind: str
    xi: float
    angle: int

    @classmethod
    def read(cls) -> LabVectorView:
        return cls(
            kind=init_state("g2_dir", "S_f", options=list(G2_KINDS)),
            xi=init_state("g2_xi", 0.3, float, **G2_XI),
            angle=init_state("g2_ang", 0, int, **G2_ANGLE),
        )

    def url(self) -> dict:
        return {"g2_dir": self.kind, "g2_xi": self.xi, "g2_ang": self.angle}


def _memo(name: str, settings: _toy2d.LabSettings, compute: Callable[[], Any], **extra: Any) -> Any:
    return study.cached_result(f"app-{name}", {"settings": settings.key(), **extra}, compute, disk=False)


def _model_settings(settings: _toy2d.LabSettings) -> _toy2d.LabSettings:
    """What defines the trained toy model: the data and the model (not the point)."""
    return _toy2d.LabSettings(
        dataset=settings.dataset,
        model=settings.model,
        n_points=settings.n_points,
        noise=settings.noise,
        seed=settings.seed,
    )


def _toy_model(settings: _toy2d.LabSettings) -> Classifier:
    base = _model_settings(settings)
    return _memo("toy-model", base, lambda: _toy2d.toy_model(base)[1])


def _lab_study(settings: _toy2d.LabSettings) -> _toy2d.LabStudy:
    return _memo("toy-lab", settings, lambda: _toy2d.lab_study(settings, clf=_toy_model(settings)))


def _lab(settings: _toy2d.LabSettings, *, progress: ProgressFn) -> _toy2d.LabStudy:
    progress(0.0, "training the toy model")
    _toy_model(settings)
    progress(0.5, "regions, DeepFool's path and the osculating circle")
    return _lab_study(settings)


def lab(settings: _toy2d.LabSettings) -> _toy2d.LabStudy:
    """:func:`geometry.study.toy2d.lab_study` (the model trained once per data and model) — a background job."""
    return _jobs.result_of(
        f"lab:{cache_key(settings.key())}", "Training the toy model and tracing DeepFool", _lab, settings
    )


def lab_data_points(view: LabView) -> np.ndarray:
    """(N, 2) the view's toy data points (data units), as the lab draws them (for clicks)."""
    s = view.settings(point=0)
    data: ToyData = _memo(
        "toy-data",
        _model_settings(s),
        lambda: toy_data(s.dataset, n_points=s.n_points, noise=s.noise, random_state=s.seed),
    )
    return data.x.numpy()


@dataclass(frozen=True)
class LabPanels:
    """The universal-vector figures of the 2-D lab.

    Attributes
    ----------
    panel : UniversalPanel — v on the view's model
    flat, curved : (LabStudy, UniversalPanel) — the linear model with v along S_f, the tanh MLP with v along S_c
        (same data, same ξ; the labs at point 0)
    """

    panel: _toy2d.UniversalPanel
    flat: tuple[_toy2d.LabStudy, _toy2d.UniversalPanel]
    curved: tuple[_toy2d.LabStudy, _toy2d.UniversalPanel]


def _panel(settings: _toy2d.LabSettings, kind: str, xi: float, angle: float) -> _toy2d.UniversalPanel:
    def compute() -> _toy2d.UniversalPanel:
        lab0 = _lab_study(settings)
        v = direction_vector(angle, xi) if kind == "custom" else None
        return _toy2d.universal_panel(lab0.clf, lab0.data, kind=kind, xi=xi, v=v, model=settings.model)

    return _memo("toy-panel", settings, compute, kind=kind, xi=repr(float(xi)), angle=repr(float(angle)))


def _panels(settings: _toy2d.LabSettings, kind: str, xi: float, angle: float, *, progress: ProgressFn) -> LabPanels:
    progress(0.0, f"v along {kind}")
    panel = _panel(settings, kind, xi, angle)
    pair = []
    for i, (model, skind) in enumerate(((FLAT, "S_f"), (CURVED, "S_c"))):
        progress(0.3 + 0.35 * i, f"{TOY_MODELS[model]}: v along {skind}")
        other = dataclasses.replace(_model_settings(settings), model=model)
        _toy_model(other)
        pair.append((_lab_study(other), _panel(other, skind, xi, 0)))
    return LabPanels(panel=panel, flat=pair[0], curved=pair[1])


def lab_panels(view: LabView, vector: LabVectorView) -> LabPanels:
    """v on the view's model (:func:`geometry.study.toy2d.universal_panel`, on the lab at point 0) and the flat
    model's S_f against the curved model's S_c at the same ξ — a background job."""
    s = view.settings(point=0)
    key = cache_key({"settings": s.key(), "kind": vector.kind, "xi": repr(float(vector.xi)), "angle": vector.angle})
    return _jobs.result_of(
        f"lab-panels:{key}",
        "Universal vectors: S_f, S_c and the flat and curved models",
        _panels,
        s,
        vector.kind,
        float(vector.xi),
        float(vector.angle),
    )
