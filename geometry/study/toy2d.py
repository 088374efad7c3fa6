"""The 2-D geometry lab (DESIGN §9): one point's DeepFool iterates, normal and osculating circle on
a toy model in the plane, and universal vectors — the flat model's S_f against the curved model's S_c.

Used by the "Geometry in 2-D" page. Every quantity comes from the atlas's own functions
(:mod:`geometry.toy2d` supplies data, models, the region grid and the osculating circle).

References: ICLR 2018 Fig. 3 (flat / curved boundary, universal direction / vector), CVPR 2016
Algorithm 2 (DeepFool's iterates), the talk's "flat model" / "curved model" slides.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..certify import certify
from ..classifier import Classifier
from ..crown import crown_radius
from ..curvature import curved_subspace, flat_subspace
from ..deepfool import deepfool
from ..errors import AtlasError, InvalidInputError
from ..minimal import minimal_perturbation
from ..regions2d import BoundarySegments, exact_distance
from ..testing import FunctionModule
from ..toy2d import (
    SMOOTH_MODELS,
    TOY_DATASETS,
    TOY_MODELS,
    DecisionRegions,
    Osculating,
    ToyData,
    as_points,
    decision_regions,
    fooled_mask,
    osculating_circle,
    path_of,
    toy_classifier,
    toy_data,
)
from ..validation import check_float, check_int
from .settings import _Settings

__all__ = [
    "LabSettings",
    "LabStudy",
    "LadderRow",
    "CertificateLadder",
    "UniversalPanel",
    "certificate_ladder",
    "ladder_window",
    "lab_study",
    "toy_model",
    "universal_panel",
]


@dataclass(frozen=True)
class LabSettings(_Settings):
    """What defines a view of the 2-D lab.

    Attributes
    ----------
    dataset : key of :data:`geometry.toy2d.TOY_DATASETS`
    model : key of :data:`geometry.toy2d.TOY_MODELS`
    n_points : int in [20, 1000]; noise : float in [0, 0.5]; seed : int ≥ 0 — the data
    point : int ≥ 0 — index of the point x whose DeepFool path and osculating circle are shown
    h : float > 0 — finite-difference curvature scale for the ReLU MLP (data units)
    resolution : int — grid of the decision regions
    """

    dataset: str = "circles"
    model: str = "mlp-tanh"
    n_points: int = 200
    noise: float = 0.08
    seed: int = 0
    point: int = 1
    h: float = 0.1
    resolution: int = 150

    def __post_init__(self) -> None:
        if self.dataset not in TOY_DATASETS:
            raise InvalidInputError(f"dataset must be one of {', '.join(TOY_DATASETS)}, got {self.dataset!r}")
        if self.model not in TOY_MODELS:
            raise InvalidInputError(f"model must be one of {', '.join(TOY_MODELS)}, got {self.model!r}")
        check_int("n_points", self.n_points, 20, 1000, plain=True)
        check_int("seed", self.seed, 0, 2**31 - 1, plain=True)
        check_int("point", self.point, 0, self.n_points - 1, plain=True)
        check_int("resolution", self.resolution, 16, 400, plain=True)
        check_float("noise", self.noise, low=0.0, high=0.5)
        check_float("h", self.h, low=0.0, low_open=True, finite=False)


@dataclass(frozen=True)
class LabStudy:
    """One view of the lab.

    Attributes
    ----------
    settings : LabSettings
    data : ToyData
    clf : Classifier — the trained (or analytic) model
    regions : DecisionRegions
    predicted : (N,) int64 — ``k̂`` of every data point
    x : (2,) — the chosen point
    iterates : (T+1, 2) — DeepFool's points x_0 … x_T (overshoot 0.02)
    steps : (T, 2) — its steps r_1 … r_T; step i's linearised boundary is the line through
        ``iterates[i] + steps[i]`` orthogonal to ``steps[i]``
    r : (2,) — r(x); distance : float — ‖r(x)‖₂
    converged : bool
    osculating : Osculating or None — None when the curvature could not be measured (message in ``note``)
    note : str
    accuracy : float or None — training accuracy of a trained model
    """

    settings: LabSettings
    data: ToyData
    clf: Classifier
    regions: DecisionRegions
    predicted: np.ndarray
    x: np.ndarray
    iterates: np.ndarray
    steps: np.ndarray
    r: np.ndarray
    distance: float
    converged: bool
    osculating: Osculating | None
    note: str
    accuracy: float | None


def _lab_box(data: ToyData, margin: float = 0.5) -> tuple[float, float, float, float]:
    lo, hi = data.x.min(0).values, data.x.max(0).values
    return float(lo[0]) - margin, float(hi[0]) + margin, float(lo[1]) - margin, float(hi[1]) + margin


def _curvature_kwargs(model: str, h: float) -> dict:
    return {"method": "exact"} if model in SMOOTH_MODELS else {"method": "finite_difference", "h": float(h)}


def lab_study(settings: LabSettings, *, clf: Classifier | None = None) -> LabStudy:
    """Data, model, regions, DeepFool's iterates and the osculating circle for one lab view.

    ``clf`` may be passed to reuse a model already trained for the same data and model settings.

    Raises
    ------
    InvalidInputError — settings out of range.
    """
    s = settings
    data = toy_data(s.dataset, n_points=s.n_points, noise=s.noise, random_state=s.seed)
    clf = clf if clf is not None else toy_classifier(s.model, data, random_state=s.seed)
    regions = decision_regions(clf, _lab_box(data), resolution=s.resolution)
    xs = as_points(data.x)
    predicted = clf.predict(xs).cpu().numpy()
    x = xs[s.point : s.point + 1]
    df = deepfool(clf, x, return_iterates=True, max_iter=50)
    pts, st = path_of(df)
    osc, note = None, ""
    if bool(df.converged[0]):
        try:
            osc = osculating_circle(clf, x, **_curvature_kwargs(s.model, s.h))
        except AtlasError as e:
            note = str(e)
    else:
        note = "DeepFool did not reach the boundary from this point within 50 steps."
    return LabStudy(
        settings=s,
        data=data,
        clf=clf,
        regions=regions,
        predicted=predicted,
        x=x.reshape(2).numpy(),
        iterates=pts,
        steps=st,
        r=df.r.reshape(2).double().numpy(),
        distance=float(df.norms[0]),
        converged=bool(df.converged[0]),
        osculating=osc,
        note=note,
        accuracy=clf.test_accuracy,
    )


@dataclass(frozen=True)
class UniversalPanel:
    """One universal vector ``v`` on a 2-D model and the points it fools.

    Attributes
    ----------
    v : (2,) — the perturbation (data units)
    fooled : (N,) bool — ``k̂(x + v) ≠ k̂(x)``
    fooling_rate : float — mean of ``fooled`` (CVPR 2017 §2)
    kind : {"custom", "S_f", "S_c"} — where v came from
    """

    v: np.ndarray
    fooled: np.ndarray
    fooling_rate: float
    kind: str


def universal_panel(
    clf: Classifier,
    data: ToyData,
    *,
    kind: str,
    xi: float,
    v: np.ndarray | Sequence[float] | None = None,
    model: str = "mlp-tanh",
    h: float = 0.1,
) -> UniversalPanel:
    """A vector of norm ``xi`` along ``kind`` — "S_f" (top flat direction: the normals' shared
    direction, ICLR 2018 Theorem 1), "S_c" (top curved direction, Theorem 2) — or the given ``v``
    ("custom"), and the points it fools. Of ±u the sign that fools more points is taken.

    Raises
    ------
    InvalidInputError — unknown kind, xi ≤ 0, v missing for "custom".
    """
    if kind not in ("custom", "S_f", "S_c"):
        raise InvalidInputError(f"kind must be 'custom', 'S_f' or 'S_c', got {kind!r}")
    xs = as_points(data.x)
    if kind == "custom":
        if v is None:
            raise InvalidInputError("kind='custom' needs v")
        vv = np.asarray(v, dtype=np.float64).reshape(2)
        mask = fooled_mask(clf, xs, vv)
        return UniversalPanel(v=vv, fooled=mask, fooling_rate=float(mask.mean()), kind=kind)
    if not float(xi) > 0:
        raise InvalidInputError(f"xi must be > 0, got {xi}")
    if kind == "S_f":
        u = flat_subspace(clf, xs, 1).basis[:, 0]
    else:
        u = curved_subspace(clf, xs, 1, **_curvature_kwargs(model, h)).basis[:, 0]
    best: UniversalPanel | None = None
    for sign in (1.0, -1.0):
        vv = (sign * float(xi) * u).numpy()
        mask = fooled_mask(clf, xs, vv)
        if best is None or mask.mean() > best.fooling_rate:
            best = UniversalPanel(v=vv, fooled=mask, fooling_rate=float(mask.mean()), kind=kind)
    assert best is not None
    return best


def toy_model(settings: LabSettings, model: str | None = None) -> tuple[ToyData, Classifier]:
    """The data and a model (``settings.model`` or ``model``) of a lab view, for the side-by-side panels."""
    data = toy_data(settings.dataset, n_points=settings.n_points, noise=settings.noise, random_state=settings.seed)
    return data, toy_classifier(model or settings.model, data, random_state=settings.seed)


# ---------------------------------------------------------------------------- the certificate ladder at one point
@dataclass(frozen=True)
class LadderRow:
    """One rung of the ladder: a radius around x (ℓ2, data units).

    Attributes
    ----------
    name : str — "exact distance", "global Lipschitz", "LMT pair", "CROWN", "DeepFool r(x)", "minimal ensemble"
    kind : {"exact", "certificate", "attack"} — a certificate is a sound lower bound of the exact distance,
        an attack's radius an upper bound (it found a point of another class)
    radius : float — NaN where it could not be computed (``note`` says why); inf where an attack failed
    note : str — how it was computed, or why it is missing
    """

    name: str
    kind: str
    radius: float
    note: str


@dataclass(frozen=True)
class CertificateLadder:
    """Every sound certificate and every attack radius at one point, against the exact distance.

    Attributes
    ----------
    x : (2,) — the point (data units); label : int — ``k̂(x)``
    exact : float — the exact ℓ2 distance to another class (NaN where the model is not piecewise affine
        nor the analytic circle); nearest : (2,) — a nearest boundary point (NaN then)
    rows : tuple of LadderRow — exact first, then the certificates, then the attacks
    attack_point : (2,) or None — the best attack's adversarial point ``x + δ``
    """

    x: np.ndarray
    label: int
    exact: float
    nearest: np.ndarray
    rows: tuple[LadderRow, ...]
    attack_point: np.ndarray | None

    def of(self, kind: str) -> tuple[LadderRow, ...]:
        """The rows of one kind."""
        return tuple(r for r in self.rows if r.kind == kind)

    def ratio(self, row: LadderRow) -> float:
        """``radius / exact`` (NaN without an exact distance or a radius)."""
        if not (math.isfinite(self.exact) and self.exact > 0 and math.isfinite(row.radius)):
            return math.nan
        return row.radius / self.exact

    @property
    def best_certificate(self) -> LadderRow | None:
        """The largest certificate (the tightest sound bound), None when none was computed."""
        rows = [r for r in self.of("certificate") if math.isfinite(r.radius)]
        return max(rows, key=lambda r: r.radius) if rows else None

    @property
    def best_attack(self) -> LadderRow | None:
        """The smallest successful attack radius, None when every attack failed."""
        rows = [r for r in self.of("attack") if math.isfinite(r.radius)]
        return min(rows, key=lambda r: r.radius) if rows else None


def certificate_ladder(
    clf: Classifier,
    x: np.ndarray | Sequence[float],
    *,
    box: tuple[float, float, float, float] | None = None,
    segments: BoundarySegments | None = None,
) -> CertificateLadder:
    """The ladder at one point of a 2-D toy model: exact ℓ2 distance, certificates, attack radii.

    * exact — :func:`geometry.regions2d.exact_distance` (linear regions of a ReLU MLP, the affine
      classifier's line, the circle's closed form); not available for the tanh MLP;
    * certificates — the global Lipschitz bound ``M(x)/(√2 L)`` and LMT's pair refinement
      (:func:`geometry.certify.certify`; Tsuzuku et al., NeurIPS 2018, Prop. 1 and §4.1) and CROWN's
      radius (:func:`geometry.crown.crown_radius`, ℓ2; Zhang et al., NeurIPS 2018) — exact on the
      analytic affine classifier; the analytic classifiers have no layers for the Lipschitz bound, and
      the circle none for CROWN, and say so;
    * attacks — DeepFool's ``‖r(x)‖₂`` (overshoot 0.02, as the lab draws it; CVPR 2016 Alg. 2) and the
      minimal-perturbation ensemble (:func:`geometry.minimal.minimal_perturbation`, issue 21 item 2).

    Parameters
    ----------
    clf : a toy classifier of :func:`geometry.toy2d.toy_classifier`
    x : (2,) — the point, data units
    box : where to enumerate regions (default: :func:`geometry.regions2d.exact_distance`'s)
    segments : precomputed boundary segments of ``clf`` (the page keeps them per model)

    Returns
    -------
    CertificateLadder

    Raises
    ------
    InvalidInputError — x not one finite point of the plane.
    """
    xv = np.asarray(x, dtype=np.float64).reshape(-1)
    if xv.shape != (2,) or not np.isfinite(xv).all():
        raise InvalidInputError(f"x must be one finite point of the plane, got {x!r}")
    xs = as_points(torch.from_numpy(xv.copy()))
    label = int(clf.predict(xs)[0])
    rows: list[LadderRow] = []
    exact, nearest = math.nan, np.full(2, np.nan)
    try:
        ed = exact_distance(clf, xv[None], box=box, segments=segments)
        if segments is not None and not bool(ed.exact[0]):  # the ball leaves the segments' box: grow a box
            ed = exact_distance(clf, xv[None], box=box)
        if bool(ed.exact[0]):
            exact, nearest = float(ed.distance[0]), ed.nearest[0]
            note = "to the nearest point of the other class (linear regions, or the circle's closed form)"
        else:
            note = "no boundary found near enough to be sure (x far outside the data)"
    except InvalidInputError as e:
        note = f"not available: {e}"
    rows.append(LadderRow("exact distance", "exact", exact, note))
    try:
        cert = certify(clf, xs)
        rows.append(LadderRow("global Lipschitz", "certificate", float(cert.radius_plain[0]), "M(x) / (√2 L)"))
        if cert.radius_pair is not None:
            rows.append(
                LadderRow(
                    "LMT pair", "certificate", float(cert.radius_pair[0]), "min_j (f_k − f_j) / (L_body ‖w_k − w_j‖)"
                )
            )
    except AtlasError as e:
        why = (
            "not available: an analytic classifier is a plain function, with no layers to bound"
            if isinstance(clf.network, FunctionModule)
            else f"not available: {e}"
        )
        rows.append(LadderRow("global Lipschitz", "certificate", math.nan, why))
    # the analytic classifiers' nominal box is [0, 1]: attack anywhere in the plane around x
    lo = min(float(xv.min()) - 10.0, clf.bounds[0]) if clf.bounds is not None else float(xv.min()) - 10.0
    hi = max(float(xv.max()) + 10.0, clf.bounds[1]) if clf.bounds is not None else float(xv.max()) + 10.0
    wide = dataclasses.replace(clf, bounds=(lo, hi))
    try:
        crown = crown_radius(clf, xs, torch.tensor([label]), norm="l2")
        rows.append(LadderRow("CROWN", "certificate", float(crown[0]), "linear bound propagation, bisection on ε"))
    except AtlasError as e:
        why = (
            "not available: an analytic classifier is a plain function, with no layers to relax"
            if isinstance(clf.network, FunctionModule)
            else f"not available: {e}"
        )
        rows.append(LadderRow("CROWN", "certificate", math.nan, why))
    df = deepfool(wide, xs, max_iter=50)
    ok = bool(df.converged[0])
    rows.append(
        LadderRow(
            "DeepFool r(x)",
            "attack",
            float(df.norms[0]) if ok else math.inf,
            "overshoot 0.02" if ok else "did not converge",
        )
    )
    mp = minimal_perturbation(wide, xs, fmn_max_stepsize=0.1)
    dist = float(mp.distance[0])
    rows.append(
        LadderRow(
            "minimal ensemble",
            "attack",
            dist,
            f"best of {', '.join(mp.attacks)}; won by {mp.winner[0]}" if math.isfinite(dist) else "every attack failed",
        )
    )
    point = (xs + mp.delta).reshape(2).numpy() if math.isfinite(dist) else None
    return CertificateLadder(x=xv, label=label, exact=exact, nearest=nearest, rows=tuple(rows), attack_point=point)


def ladder_window(ladder: CertificateLadder, *, margin: float = 1.35) -> tuple[float, float, float, float]:
    """The square around x that shows every finite radius of the ladder: half-width ``margin`` × the largest
    (at least 0.05 data units). Returns (x1_min, x1_max, x2_min, x2_max)."""
    radii = [r.radius for r in ladder.rows if math.isfinite(r.radius)]
    half = max(margin * max(radii, default=0.0), 0.05)
    x1, x2 = float(ladder.x[0]), float(ladder.x[1])
    return x1 - half, x1 + half, x2 - half, x2 + half
