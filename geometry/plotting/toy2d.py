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
    from ..regions2d import BoundarySegments
    from ..study.toy2d import CertificateLadder, LabStudy, UniversalPanel
    from ..toy2d import DecisionRegions

__all__ = ["lab_figure", "ladder_figure", "universal_figure"]

_PALE = ["#F0D1D6", "#C2BDDB"]  # CLASS_COLORS[0], [1] mixed with 70 % white: the regions
_FOOLED = "#000000"  # rings of the points v fools, and v itself: black reads on every region colour


def _regions(fig: go.Figure, regions: DecisionRegions, *, contour: bool = True) -> None:
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
    bx, by = boundary_segments(regions.x1, regions.x2, lab) if contour else ([], [])
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


#: the ladder's colours: exact distance, certificates (greens, one per certificate), attacks (oranges)
_EXACT = "#000000"
_CERT_COLORS = ("#1B7837", "#5AAE61", "#A6DBA0", "#00441B")
_ATTACK_COLORS = ("#E66101", "#B35806", "#FDB863")


@finished
def ladder_figure(
    ladder: CertificateLadder,
    *,
    window: tuple[float, float, float, float],
    regions: DecisionRegions | None = None,
    segments: BoundarySegments | None = None,
    height: int = 600,
) -> go.Figure:
    """The certificate ladder at x: concentric circles of every radius around x, against the exact distance.

    Parameters
    ----------
    ladder : :class:`geometry.study.toy2d.CertificateLadder`
    window : (x1_min, x1_max, x2_min, x2_max) — the part of the plane shown (data units)
    regions : decision regions on the window (pale class colours), optional
    segments : the exact decision boundary (:func:`geometry.regions2d.boundary_segments`), drawn black

    Returns
    -------
    go.Figure — certificates as filled green disks (sound lower bounds: the other class cannot be inside),
    the exact distance as a black circle touching the boundary at the nearest point, attack radii as dashed
    orange circles (an adversarial point lies on each); hover gives each radius and its ratio to the exact
    distance. Axes in data units, equal scale.
    """
    fig = go.Figure()
    exact_boundary = segments is not None and len(segments) > 0
    if regions is not None:
        _regions(fig, regions, contour=not exact_boundary)  # the exact segments replace the grid's contour
    a0, a1, b0, b1 = window
    if segments is not None and exact_boundary:
        bx: list = []
        by: list = []
        for p, q in zip(segments.start, segments.end, strict=True):
            if max(p[0], q[0]) < a0 or min(p[0], q[0]) > a1 or max(p[1], q[1]) < b0 or min(p[1], q[1]) > b1:
                continue
            bx += [p[0], q[0], None]
            by += [p[1], q[1], None]
        if bx:
            fig.add_trace(
                go.Scatter(
                    x=bx, y=by, mode="lines", line=dict(color="black", width=2),
                    name="decision boundary (exact, linear regions)", hoverinfo="skip",
                )
            )  # fmt: skip
    x = ladder.x
    t = np.linspace(0, 2 * math.pi, 241)
    certs = sorted((r for r in ladder.of("certificate") if math.isfinite(r.radius)), key=lambda r: -r.radius)
    for i, row in enumerate(certs):  # largest first, so that the smaller disks are drawn on top
        color = _CERT_COLORS[i % len(_CERT_COLORS)]
        ratio = ladder.ratio(row)
        share = f" = {ratio:.0%} of exact" if math.isfinite(ratio) else ""
        fig.add_trace(
            go.Scatter(
                x=x[0] + row.radius * np.cos(t), y=x[1] + row.radius * np.sin(t), mode="lines",
                fill="toself", fillcolor=_rgba(color, 0.28), line=dict(color=color, width=2),
                name=f"certificate: {row.name} {row.radius:.3g}{share}",
                hovertemplate=f"{row.name} (certificate)<br>radius {row.radius:.4g}{share}<br>{row.note}<extra></extra>",
            )
        )  # fmt: skip
    if math.isfinite(ladder.exact):
        fig.add_trace(
            go.Scatter(
                x=x[0] + ladder.exact * np.cos(t), y=x[1] + ladder.exact * np.sin(t), mode="lines",
                line=dict(color=_EXACT, width=3), name=f"exact distance {ladder.exact:.3g}",
                hovertemplate=f"exact distance to the boundary: {ladder.exact:.4g}<extra></extra>",
            )
        )  # fmt: skip
        z = ladder.nearest
        fig.add_trace(
            go.Scatter(
                x=[x[0], z[0]], y=[x[1], z[1]], mode="lines+markers",
                line=dict(color=_EXACT, width=1.5), marker=dict(size=[0, 10], color=_EXACT, symbol="x"),
                name="nearest boundary point",
                hovertemplate="nearest boundary point (%{x:.3f}, %{y:.3f})<extra></extra>",
            )
        )  # fmt: skip
    attacks = [r for r in ladder.of("attack") if math.isfinite(r.radius)]
    for i, row in enumerate(attacks):
        color = _ATTACK_COLORS[i % len(_ATTACK_COLORS)]
        ratio = ladder.ratio(row)
        share = f" = {ratio:.3g}× exact" if math.isfinite(ratio) else ""
        fig.add_trace(
            go.Scatter(
                x=x[0] + row.radius * np.cos(t), y=x[1] + row.radius * np.sin(t), mode="lines",
                line=dict(color=color, width=2, dash="dash" if i == 0 else "dot"),
                name=f"attack: {row.name} {row.radius:.3g}{share}",
                hovertemplate=f"{row.name} (attack radius)<br>radius {row.radius:.4g}{share}<br>{row.note}<extra></extra>",
            )
        )  # fmt: skip
    if ladder.attack_point is not None:
        p = ladder.attack_point
        fig.add_trace(
            go.Scatter(
                x=[p[0]], y=[p[1]], mode="markers", marker=dict(size=10, color=_ATTACK_COLORS[0], symbol="diamond"),
                name="minimal ensemble's adversarial point",
                hovertemplate="adversarial point (%{x:.3f}, %{y:.3f})<extra></extra>",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[x[0]], y=[x[1]], mode="markers",
            marker=dict(size=14, color="#2CA02C", symbol="star", line=dict(color="black", width=1)),
            name=f"x, classified {ladder.label}",
            hovertemplate="x = (%{x:.3f}, %{y:.3f})<extra></extra>",
        )
    )  # fmt: skip
    fig.update_layout(
        title=(
            "Certificates (green disks), the exact distance (black), attack radii (orange)"
            if math.isfinite(ladder.exact)
            else "Certificates (green disks) and attack radii (orange); no exact distance for this model"
        ),
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="v", yanchor="top", y=1, x=1.02, xanchor="left"),
        xaxis=dict(title="x₁ (data units)", range=[a0, a1], showgrid=False, zeroline=False, constrain="domain"),
        yaxis=dict(
            title="x₂ (data units)", range=[b0, b1], showgrid=False, zeroline=False, scaleanchor="x", constrain="domain"
        ),
    )
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
