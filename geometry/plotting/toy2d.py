"""Plotly figures of the 2-D geometry lab (DESIGN §9): decision regions, DeepFool's iterates with
their linearised boundaries, the normal r(x), the osculating circle, and universal vectors."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .figures import boundary_segments
from .layout import finished
from .theme import CLASS_COLORS

if TYPE_CHECKING:
    from ..study.toy2d import LabStudy, UniversalPanel
    from ..toy2d import DecisionRegions

__all__ = ["lab_figure", "universal_figure"]

_PALE = ["#F0D1D6", "#C2BDDB"]  # CLASS_COLORS[0], [1] mixed with 70 % white: the regions
_FOOLED = "#000000"  # rings of the points v fools, and v itself: black reads on every region colour


def _regions(fig: go.Figure, regions: DecisionRegions) -> None:
    lab = np.asarray(regions.label).astype(int)
    fig.add_trace(
        go.Heatmap(
            x=regions.x1,
            y=regions.x2,
            z=lab,
            zmin=-0.5,
            zmax=1.5,
            colorscale=[[0, _PALE[0]], [0.5, _PALE[0]], [0.5, _PALE[1]], [1, _PALE[1]]],
            showscale=False,
            hoverinfo="skip",
        )
    )
    bx, by = boundary_segments(regions.x1, regions.x2, lab)
    if bx:
        fig.add_trace(
            go.Scattergl(
                x=bx, y=by, mode="lines", line=dict(color="black", width=2), name="decision boundary", hoverinfo="skip"
            )
        )


def _points(fig: go.Figure, x: np.ndarray, predicted: np.ndarray, *, fooled: np.ndarray | None = None) -> None:
    for c in (0, 1):
        sel = predicted == c
        fig.add_trace(
            go.Scattergl(
                x=x[sel, 0],
                y=x[sel, 1],
                mode="markers",
                marker=dict(color=CLASS_COLORS[c], size=6, line=dict(color="white", width=0.5)),
                name=f"points classified {c}",
                hovertemplate=f"(%{{x:.2f}}, %{{y:.2f}}): classified {c}<extra></extra>",
            )
        )
    if fooled is not None and fooled.any():
        fig.add_trace(
            go.Scattergl(
                x=x[fooled, 0],
                y=x[fooled, 1],
                mode="markers",
                marker=dict(color="rgba(0,0,0,0)", size=12, line=dict(color=_FOOLED, width=2)),
                name="fooled by v",
                hovertemplate="(%{x:.2f}, %{y:.2f}): fooled by v<extra></extra>",
            )
        )


def _click_targets(fig: go.Figure, regions: DecisionRegions, n: int = 61) -> None:
    """An invisible n × n grid of points over the plane: Plotly reports clicks only on points (not on
    a heat map), so this trace turns a click anywhere into a selected point with its (x1, x2)."""
    g1 = np.linspace(regions.x1[0], regions.x1[-1], n)
    g2 = np.linspace(regions.x2[0], regions.x2[-1], n)
    a, b = np.meshgrid(g1, g2)
    fig.add_trace(
        go.Scattergl(
            x=a.ravel(),
            y=b.ravel(),
            mode="markers",
            marker=dict(size=6, color="rgba(0,0,0,0)"),
            name="click target",
            showlegend=False,
            hovertemplate="click here: (%{x:.2f}, %{y:.2f})<extra></extra>",
        )
    )
    for trace in fig.data:  # a click selects a point: keep the other points at full opacity
        if trace.type in ("scatter", "scattergl"):
            trace.unselected = dict(marker=dict(opacity=1))


def _layout(fig: go.Figure, regions: DecisionRegions, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title=title,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.1, x=0),  # below the tick labels
        xaxis=dict(range=[regions.x1[0], regions.x1[-1]], showgrid=False, zeroline=False, constrain="domain"),
        yaxis=dict(
            range=[regions.x2[0], regions.x2[-1]], showgrid=False, zeroline=False, scaleanchor="x", constrain="domain"
        ),
    )
    return fig


@finished
def lab_figure(study: LabStudy, *, height: int = 620, clickable: bool = False) -> go.Figure:
    """The lab's main picture.

    Parameters
    ----------
    study : :class:`geometry.study.toy2d.LabStudy`

    Returns
    -------
    go.Figure — regions (pale class colours) and boundary (black), the data (class colours), the
    chosen x, DeepFool's iterates x₀ → x₁ → … (dashed, numbered) with each step's linearised
    boundary (grey lines), the normal r(x) (arrow) and the osculating circle at z = x + r(x).
    ``clickable`` adds an invisible grid of points so that a click anywhere is reported (Streamlit's
    ``on_select``) with its coordinates.
    """
    fig = go.Figure()
    reg = study.regions
    _regions(fig, reg)
    _points(fig, study.data.x.numpy(), study.predicted)
    span = float(max(reg.x1[-1] - reg.x1[0], reg.x2[-1] - reg.x2[0]))
    # linearised boundaries: through x_i + r_i, orthogonal to r_i
    lx: list = []
    ly: list = []
    for p, s in zip(study.iterates[:-1], study.steps, strict=True):
        n = float(np.linalg.norm(s))
        if n == 0:
            continue
        foot, t = p + s, np.array([-s[1], s[0]]) / n
        a, b = foot - span * t, foot + span * t
        lx += [a[0], b[0], None]
        ly += [a[1], b[1], None]
    if lx:
        fig.add_trace(
            go.Scatter(
                x=lx,
                y=ly,
                mode="lines",
                line=dict(color="#666", width=1, dash="dot"),
                name="linearised boundary (each step)",
                hoverinfo="skip",
            )
        )
    it = study.iterates
    fig.add_trace(
        go.Scatter(
            x=it[:, 0],
            y=it[:, 1],
            mode="lines+markers+text",
            line=dict(color="#111", width=2, dash="dash"),
            marker=dict(size=8, color="#111"),
            text=[f"x{i}" for i in range(len(it))],
            textposition="top left",
            name="DeepFool iterates x₀ → x₁ → …",
        )
    )
    x, r = study.x, study.r
    fig.add_annotation(
        x=x[0] + r[0], y=x[1] + r[1], ax=x[0], ay=x[1], xref="x", yref="y", axref="x", ayref="y",
        showarrow=True, arrowhead=3, arrowwidth=3, arrowcolor="#2CA02C",
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[x[0]],
            y=[x[1]],
            mode="markers",
            marker=dict(size=14, color="#2CA02C", symbol="star", line=dict(color="black", width=1)),
            name=f"x, ‖r(x)‖ = {study.distance:.3f} (green arrow: r(x))",
            hovertemplate=f"x = (%{{x:.3f}}, %{{y:.3f}})<br>‖r(x)‖ = {study.distance:.4f}<extra></extra>",
        )
    )
    osc = study.osculating
    if osc is not None and math.isfinite(osc.radius) and osc.radius < 20 * span:
        t = np.linspace(0, 2 * math.pi, 200)
        fig.add_trace(
            go.Scatter(
                x=osc.center[0] + osc.radius * np.cos(t),
                y=osc.center[1] + osc.radius * np.sin(t),
                mode="lines",
                line=dict(color="#9467BD", width=2),
                name=f"osculating circle at z, κ = {osc.kappa:+.3g}",
                hovertemplate=f"osculating circle at z: κ = {osc.kappa:+.3g}, radius {osc.radius:.3g}<extra></extra>",
            )
        )
    if clickable:
        _click_targets(fig, reg)
    k = len(study.steps)
    title = f"{study.clf.name}: decision regions, DeepFool from x ({k} step{'' if k == 1 else 's'})"
    return _layout(fig, reg, title, height)


@finished
def universal_figure(
    study: LabStudy,
    panel: UniversalPanel,
    *,
    title: str,
    regions: DecisionRegions | None = None,
    predicted: np.ndarray | None = None,
    height: int = 480,
    clickable: bool = False,
) -> go.Figure:
    """One universal vector v on a 2-D model: regions, the data, the points v fools (red rings) and v
    drawn from the data's centroid (arrow); the title carries the fooling rate.

    ``regions`` / ``predicted`` default to ``study``'s (pass another model's to draw a side panel);
    ``clickable`` as in :func:`lab_figure`.
    """
    fig = go.Figure()
    reg = regions if regions is not None else study.regions
    pred = predicted if predicted is not None else study.predicted
    _regions(fig, reg)
    x = study.data.x.numpy()
    _points(fig, x, pred, fooled=panel.fooled)
    c = x.mean(0)
    v = panel.v
    fig.add_annotation(
        x=c[0] + v[0], y=c[1] + v[1], ax=c[0], ay=c[1], xref="x", yref="y", axref="x", ayref="y",
        showarrow=True, arrowhead=3, arrowwidth=3, arrowcolor=_FOOLED,
    )  # fmt: skip
    if clickable:
        _click_targets(fig, reg)
    return _layout(fig, reg, f"{title} — fooling rate {panel.fooling_rate:.0%}, ‖v‖ = {np.linalg.norm(v):.2f}", height)
