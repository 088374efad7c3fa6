"""Figures of the "Certified vs empirical" page (issue 12): certified radius ε_cert(x) beside ‖r(x)‖."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .figures import section_traces
from .layout import finished
from .theme import ATTACK, CERTIFIED, ESTIMATE, GREY, VIOLATION

if TYPE_CHECKING:
    from ..lipschitz import LipschitzBound
    from ..study.certify import AttackStudy, CertifiedSection, CertifyStudy

__all__ = [
    "accuracy_vs_eps_figure",
    "certificate_ladder_figure",
    "ladder_accuracy_figure",
    "certified_scatter_figure",
    "certified_section_figure",
    "layer_norms_figure",
    "radius_ratio_figure",
]


@finished
def certified_scatter_figure(study: CertifyStudy, *, height: int = 460) -> go.Figure:
    """ε_cert(x) (sound, and with the power-iteration L) against ‖r(x)‖₂, with the diagonal.

    Every sound point must lie below the diagonal; points above it (violations) are drawn in red.
    """
    cert, check = study.certificate, study.check
    ok = check.success
    r = study.distance[ok]
    idx = np.flatnonzero(ok)
    fig = go.Figure()
    best = study.best  # the best sound radius at each point (the one the check compares)
    top = float(max(r.max() if len(r) else 1.0, best[ok].max() if ok.any() else 0.0)) * 1.05
    fig.add_trace(
        go.Scatter(
            x=[0, top],
            y=[0, top],
            mode="lines",
            line=dict(color=GREY, dash="dash"),
            name="ε_cert = ‖r‖",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=r,
            y=cert.radius_estimate[ok],
            mode="markers",
            marker=dict(color=ESTIMATE, size=5, symbol="x"),
            name="with power-iteration L (not sound)",
            customdata=idx,
            hovertemplate="point %{customdata}<br>‖r‖ = %{x:.4f}<br>ε (estimate) = %{y:.4f}<extra></extra>",
        )
    )
    bad = np.zeros(len(cert), dtype=bool)
    bad[check.violations] = True
    for mask, name, color in (
        (~bad & ok, "ε_cert (best sound bound)", CERTIFIED),
        (bad, "violation: ε_cert > ‖r‖", VIOLATION),
    ):
        if mask.any():
            fig.add_trace(
                go.Scatter(
                    x=study.distance[mask],
                    y=best[mask],
                    mode="markers",
                    marker=dict(color=color, size=7 if color == VIOLATION else 6),
                    name=name,
                    customdata=np.flatnonzero(mask),
                    hovertemplate="point %{customdata}<br>‖r‖ = %{x:.4f}<br>ε_cert = %{y:.4f}<extra></extra>",
                )
            )
    positive = np.concatenate([r[r > 0], best[ok][best[ok] > 0]])
    if len(positive):  # log-log: the gap is a ratio, and radii span decades
        low = float(positive.min()) / 1.5
        fig.data[0].update(x=[low, top], y=[low, top])
        fig.update_xaxes(type="log")
        fig.update_yaxes(type="log")
    fig.update_layout(
        height=height,
        xaxis_title="‖r(x)‖₂: smallest successful attack (pixel units)",
        yaxis_title="certified radius ε_cert(x)",
        legend=dict(orientation="h", y=1.12),
        margin=dict(l=0, r=0, t=40),  # half-width charts: automargin makes room for the axis titles
    )
    return fig


@finished
def radius_ratio_figure(study: CertifyStudy, *, height: int = 360) -> go.Figure:
    """Histogram of the gap ‖r(x)‖ / ε_cert(x) (≥ 1 for a sound certificate), log-scaled."""
    ratio = study.check.ratio[np.isfinite(study.check.ratio)]
    fig = go.Figure()
    if len(ratio):
        fig.add_trace(
            go.Histogram(
                x=np.log10(ratio),
                nbinsx=40,
                marker_color=CERTIFIED,
                name="log₁₀ ratio",
                hovertemplate="log₁₀ ratio in %{x}<br>%{y} points<extra></extra>",
            )
        )
        fig.add_vline(x=0.0, line=dict(color=VIOLATION, dash="dash"), annotation_text="ratio 1")
        fig.add_vline(
            x=float(np.log10(np.median(ratio))),
            line=dict(color="#333"),
            annotation_text=f"median {np.median(ratio):.3g}×",
        )
    fig.update_layout(
        height=height,
        xaxis_title="log₁₀ (‖r(x)‖ / ε_cert(x))",
        yaxis_title="points",
        showlegend=False,
        margin=dict(l=0, r=0, t=30),
    )
    return fig


@finished
def accuracy_vs_eps_figure(study: CertifyStudy | AttackStudy, *, height: int = 400) -> go.Figure:
    """Certified accuracy and accuracy under the attacks against ε (ℓ2, pixel units), one chart.

    ``study``: a CertifyStudy, or an AttackStudy (no certified curve: the network could not be bounded).
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=study.eps,
            y=study.attack_accuracy,
            mode="lines",
            line=dict(color=ATTACK, width=3),
            name="accuracy under attack (‖r‖ > ε): upper bound",
            hovertemplate="ε = %{x:.3g}<br>accuracy under attack %{y:.1%}<extra></extra>",
        )
    )
    certified = getattr(study, "certified_accuracy", None)
    if certified is not None:
        fig.add_trace(
            go.Scatter(
                x=study.eps,
                y=certified,
                mode="lines",
                line=dict(color=CERTIFIED, width=3),
                name="certified accuracy (ε_cert ≥ ε): lower bound",
                hovertemplate="ε = %{x:.3g}<br>certified accuracy %{y:.1%}<extra></extra>",
                fill="tonexty",
                fillcolor="rgba(150,150,150,0.15)",
            )
        )
    fig.update_layout(
        height=height,
        xaxis_title="ε (ℓ2, pixel units)",
        yaxis_title="accuracy",
        yaxis_range=[0, 1.02],
        legend=dict(orientation="h", y=1.15),
        margin=dict(l=0, r=0, t=40),  # half-width charts: automargin makes room for the axis titles
    )
    return fig


@finished
def layer_norms_figure(bound: LipschitzBound, *, height: int = 360) -> go.Figure:
    """Per-layer Lipschitz constants: the sound upper bound and the power-iteration estimate, log scale."""
    names = [lb.name if lb.name == lb.kind else f"{lb.name} ({lb.kind})" for lb in bound.layers]
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=names,
            y=[lb.upper for lb in bound.layers],
            marker_color=CERTIFIED,
            name="sound upper bound",
            customdata=[lb.method for lb in bound.layers],
            hovertemplate="%{x}<br>%{y:.4g}<br>%{customdata}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[lb.estimate for lb in bound.layers],
            marker_color=ESTIMATE,
            name="power iteration",
            hovertemplate="%{x}<br>power iteration %{y:.4g}<extra></extra>",
        )
    )
    fig.add_hline(y=1.0, line=dict(color=GREY, dash="dot"))
    fig.update_layout(
        height=height,
        barmode="group",
        yaxis_type="log",
        yaxis_title="layer Lipschitz constant",
        legend=dict(orientation="h", y=1.15),
        margin=dict(l=0, r=0, t=40),  # half-width charts: automargin makes room for the axis titles
    )
    return fig


def _circle(radius: float, n: int = 181) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0, 2 * np.pi, n)
    return radius * np.cos(t), radius * np.sin(t)


@finished
def certified_section_figure(cs: CertifiedSection, class_names: Sequence[str], *, height: int = 520) -> go.Figure:
    """The normal cross-section with the certified disk (radius ε_cert) around x and ‖r(x)‖ marked."""
    fig = section_traces(cs.section, class_names, direction_label="random v", height=height)
    cx, cy = _circle(cs.radius)
    fig.add_trace(
        go.Scatter(
            x=cx,
            y=cy,
            mode="lines",
            fill="toself",
            fillcolor="rgba(255,255,255,0.35)",
            line=dict(color="white", width=3),
            name=f"certified disk ε_cert = {cs.radius:.3g}",
            hovertemplate=f"certified disk: ε_cert = {cs.radius:.4g} (pixel ℓ2)<extra></extra>",
        )
    )
    ex, ey = _circle(cs.radius_estimate)
    fig.add_trace(
        go.Scatter(
            x=ex,
            y=ey,
            mode="lines",
            line=dict(color="white", width=1, dash="dot"),
            name=f"with power-iteration L: {cs.radius_estimate:.3g}",
            hovertemplate=f"radius with power-iteration L (not sound): {cs.radius_estimate:.4g}<extra></extra>",
        )
    )
    if np.isfinite(cs.r_norm):
        rx, ry = _circle(cs.r_norm)
        fig.add_trace(
            go.Scatter(
                x=rx,
                y=ry,
                mode="lines",
                line=dict(color="black", width=1, dash="dash"),
                name=f"‖r(x)‖ = {cs.r_norm:.3g} (DeepFool)",
                hovertemplate=f"‖r(x)‖ = {cs.r_norm:.4g} (DeepFool, pixel ℓ2)<extra></extra>",
            )
        )
    fig.update_layout(legend=dict(orientation="h", y=-0.15), showlegend=True)
    return fig


#: one colour per rung of the ladder (the best certificate and the attack keep the page's colours)
_RUNG_COLOURS = {"global Lipschitz": "#8d99ae", "LMT pair": "#6a4c93", "CROWN ℓ2": "#1d3557", "CROWN ℓ∞": "#457b9d"}
_RUNG_SYMBOLS = {"global Lipschitz": "triangle-down", "LMT pair": "diamond", "CROWN ℓ2": "square", "CROWN ℓ∞": "square"}


@finished
def certificate_ladder_figure(study: CertifyStudy, *, height: int = 460) -> go.Figure:
    """Every sound radius per point (global Lipschitz, LMT pair, CROWN, the best) under the best attack radius.

    Points sorted by the attack radius (x axis: rank), radii on a log axis (pixel units, ℓ2): every
    certificate must lie on or below the attack's marker at its point; one above it is drawn in red.
    Points where a rung was not computed (CROWN beyond ``crown_points``) have no marker for it.
    """
    ladder = study.ladder()
    dist = np.asarray(study.distance, dtype=np.float64)
    order = np.argsort(np.where(np.isfinite(dist), dist, np.inf), kind="stable")
    rank = np.arange(len(order))
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=rank,
            y=np.where(np.isfinite(dist[order]), dist[order], np.nan),
            mode="lines+markers",
            line=dict(color=ATTACK, width=2),
            marker=dict(size=5),
            name="best attack radius ‖r(x)‖ (upper bound)",
            customdata=order,
            hovertemplate="point %{customdata}<br>‖r‖ = %{y:.4g}<extra></extra>",
        )
    )
    for name, radius in ladder.items():
        y = radius[order]
        best = name == "best certificate"
        fig.add_trace(
            go.Scatter(
                x=rank,
                y=np.where(y > 0, y, np.nan),
                mode="lines" if best else "markers",
                line=dict(color=CERTIFIED, width=3) if best else None,
                marker=None
                if best
                else dict(color=_RUNG_COLOURS.get(name, GREY), size=6, symbol=_RUNG_SYMBOLS.get(name)),
                name=name + (" (lower bound)" if best else ""),
                customdata=order,
                hovertemplate=f"point %{{customdata}}<br>{name} = %{{y:.4g}}<extra></extra>",
            )
        )
    bad = np.asarray(study.check.violations, dtype=np.int64)
    if len(bad):
        pos = np.argsort(order)[bad]
        fig.add_trace(
            go.Scatter(
                x=pos,
                y=study.best[bad],
                mode="markers",
                marker=dict(color=VIOLATION, size=11, symbol="x"),
                name="certificate > attack radius (a bug)",
                customdata=bad,
                hovertemplate="point %{customdata}<br>best certificate %{y:.4g} above the attack<extra></extra>",
            )
        )
    values = np.concatenate([dist[np.isfinite(dist)], *(v[np.isfinite(v)] for v in ladder.values())])
    values = values[values > 0]
    fig.update_yaxes(type="log")
    if len(values):  # every marker inside the axis (the legend above must not hide the attack's top points)
        fig.update_yaxes(range=[float(np.log10(values.min())) - 0.15, float(np.log10(values.max())) + 0.15])
    fig.update_layout(
        height=height,
        xaxis_title="test points, sorted by the attack radius (rank)",
        yaxis_title="radius (ℓ2, pixel units; log scale)",
        legend=dict(orientation="h", yanchor="bottom", y=1.02),  # above the plot: it must not hide markers
        margin=dict(l=0, r=0, t=120),
    )
    return fig


@finished
def ladder_accuracy_figure(study: CertifyStudy, *, height: int = 400) -> go.Figure:
    """Certified accuracy against ε for each rung of the ladder, and the accuracy under attack above them.

    Each rung's curve is over the points where it was computed (CROWN: the first ``crown_points``).
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=study.eps,
            y=study.attack_accuracy,
            mode="lines",
            line=dict(color=ATTACK, width=3),
            name="accuracy under attack (upper bound)",
            hovertemplate="ε = %{x:.3g}<br>accuracy under attack %{y:.1%}<extra></extra>",
        )
    )
    for name, radius in study.ladder().items():
        n = int(np.isfinite(radius).sum())
        best = name == "best certificate"
        fig.add_trace(
            go.Scatter(
                x=study.eps,
                y=study.ladder_accuracy(name),
                mode="lines",
                line=dict(
                    color=CERTIFIED if best else _RUNG_COLOURS.get(name, GREY),
                    width=3 if best else 2,
                    dash=None if best else "dot",
                ),
                name=f"{name} ({n} points)",
                hovertemplate=f"ε = %{{x:.3g}}<br>{name}: certified accuracy %{{y:.1%}}<extra></extra>",
            )
        )
    fig.update_layout(
        height=height,
        xaxis_title="ε (ℓ2, pixel units)",
        yaxis_title="certified accuracy",
        yaxis_range=[0, 1.02],
        legend=dict(orientation="h", yanchor="bottom", y=1.02),
        margin=dict(l=0, r=0, t=120),
    )
    return fig
