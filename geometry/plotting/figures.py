"""Plotly figure builders: result objects in, ``go.Figure`` out (DESIGN §2) — the one plotting
module of the app *and* the command-line report (issue 10: the same result gives the same figure,
same colours, in both).

No computation of geometry happens here, only presentation: colours, labels, units, hover text.
Every axis says what it measures and in which unit (pixel-space ℓ2 distance, inputs in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import torch
from numpy.typing import ArrayLike

from .layout import finished
from .theme import CLASS_COLORS, GREY, SUBSPACE_COLORS, SUBSPACE_LABELS, UAP_COLOR, rgba

if TYPE_CHECKING:
    from ..compare import SubspaceComparison, TransferMatrix
    from ..curvature import CurvatureCurve, Subspace
    from ..sections import Section
    from ..universal import FoolingCurve

__all__ = [
    "with_click_targets",
    "norm_histogram_figure",
    "curvature_vs_m_figure",
    "ritz_figure",
    "principal_angles_figure",
    "transfer_matrix_figure",
    "fooling_rate_vs_m_figure",
    "universal_gallery_figure",
    "inner_product_figure",
    "section_figure",
    "section_traces",
    "boundary_segments",
    "to_display_image",
    "perturbation_display",
]


def as_array(a: object) -> np.ndarray:
    """A tensor (any device) or array-like → a NumPy array (detached, on the CPU)."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def boundary_segments(
    alpha: ArrayLike, beta: ArrayLike, labels: ArrayLike
) -> tuple[list[float | None], list[float | None]]:
    """Line segments (as x / y lists with ``None`` separators) along the edges between grid cells
    of different labels: the decision boundary as drawn on a label grid ``labels`` (B, A)."""
    alpha, beta, labels = as_array(alpha), as_array(beta), as_array(labels)
    da = (alpha[1] - alpha[0]) if len(alpha) > 1 else 1.0
    db = (beta[1] - beta[0]) if len(beta) > 1 else 1.0
    xs: list[float | None] = []
    ys: list[float | None] = []
    # vertical edges: between column j and j+1
    jj, ii = np.nonzero((labels[:, 1:] != labels[:, :-1]).T)
    for j, i in zip(jj, ii, strict=True):
        x = alpha[j] + da / 2
        xs += [x, x, None]
        ys += [beta[i] - db / 2, beta[i] + db / 2, None]
    # horizontal edges: between row i and i+1
    ii, jj = np.nonzero(labels[1:, :] != labels[:-1, :])
    for i, j in zip(ii, jj, strict=True):
        y = beta[i] + db / 2
        xs += [alpha[j] - da / 2, alpha[j] + da / 2, None]
        ys += [y, y, None]
    return xs, ys


@finished
def section_figure(
    section: Section,
    class_names: Sequence[str],
    *,
    title: str | None = None,
    direction_label: str = "v",
    curvature: float | None = None,
    height: int = 560,
) -> go.Figure:
    """Decision regions of a normal cross-section (paper ICLR 2018, Fig. 5, 6, 13).

    Parameters
    ----------
    section : :class:`geometry.sections.Section` — ``alpha`` (A,), ``beta`` (B,), ``labels`` (B, A),
        ``label`` (k̂(x)), ``r_norm`` (‖r(x)‖₂).
    class_names : names of the L classes (hover text and legend).
    direction_label : what the second axis direction is ("random v", "S_c eigenvector 1", …).
    curvature : optional normal curvature κ along the direction, shown in the title (1/pixel distance).

    Returns
    -------
    go.Figure — a categorical heat map of ``k̂(x + α e1 + β e2)`` with the boundary drawn in black, x
    at (0, 0) and z = x + r(x) at (‖r(x)‖, 0); axes in pixel-space ℓ2 distance.
    """
    return section_traces(
        section, class_names, title=title, direction_label=direction_label, curvature=curvature, height=height
    )


def section_traces(
    section: Section,
    class_names: Sequence[str],
    *,
    title: str | None = None,
    direction_label: str = "v",
    curvature: float | None = None,
    height: int = 560,
) -> go.Figure:
    """:func:`section_figure` before :func:`~geometry.plotting.layout.finish`: for a builder that draws on
    top of a cross-section (the certified disk) and finishes the figure once, itself."""
    alpha, beta, labels = as_array(section.alpha), as_array(section.beta), as_array(section.labels).astype(int)
    present = sorted(set(np.unique(labels).tolist()))
    # map labels to 0..P-1 for a discrete colour scale (a look-up table: no Python call per cell)
    lut = np.zeros(max(present) + 1, dtype=np.uint8)
    lut[present] = np.arange(len(present))
    z = lut[labels]
    P = max(len(present), 1)
    colorscale = []
    for i, c in enumerate(present):
        col = CLASS_COLORS[c % len(CLASS_COLORS)]
        colorscale += [[i / P, col], [(i + 1) / P, col]]
    if P == 1:
        colorscale = [
            [0, CLASS_COLORS[present[0] % len(CLASS_COLORS)]],
            [1, CLASS_COLORS[present[0] % len(CLASS_COLORS)]],
        ]
    names = np.asarray(
        [str(class_names[c]) if c < len(class_names) else str(c) for c in range(max(present) + 1)], dtype=object
    )
    # hover text per cell: where every class present is named by its index (digits, MNIST) the integer labels
    # say the same as the names and serialise ~50× faster than a grid of strings (issue 14: latency)
    hover = labels.astype(np.uint16) if all(names[c] == str(c) for c in present) else names[labels]
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=alpha,
            y=beta,
            z=z,
            customdata=hover,
            zmin=-0.5,
            zmax=P - 0.5,
            colorscale=colorscale,
            showscale=False,
            hovertemplate="α (along r) = %{x:.3f}<br>β (along v⊥) = %{y:.3f}<br>class: %{customdata}<extra></extra>",
        )
    )
    bx, by = boundary_segments(alpha, beta, labels)
    if bx:
        fig.add_trace(
            go.Scatter(  # SVG, not WebGL: one path draws in a third of the time of a WebGL context (issue 14)
                x=bx,
                y=by,
                mode="lines",
                line=dict(color="black", width=1.5),
                name="decision boundary",
                hoverinfo="skip",
            )
        )
    k = int(section.label)
    kname = class_names[k] if k < len(class_names) else str(k)
    # x and z: white-filled, black-outlined markers and boxed labels, legible on every class colour
    fig.add_trace(
        go.Scatter(
            x=[0.0],
            y=[0.0],
            mode="markers",
            marker=dict(symbol="circle", size=15, color="white", line=dict(color="black", width=2.5)),
            name=f"x (class {kname})",
            hovertemplate=f"x: the datapoint, class {kname}<extra></extra>",
        )
    )
    rn = float(section.r_norm)
    fig.add_trace(
        go.Scatter(
            x=[rn],
            y=[0.0],
            mode="markers",
            marker=dict(symbol="x", size=16, color="white", line=dict(color="black", width=2)),
            name="z = x + r(x)",
            hovertemplate=f"z = x + r(x): ‖r(x)‖₂ = {rn:.4f}<extra></extra>",
        )
    )
    for px, text, shift in ((0.0, "x", -12), (rn, "z = x + r(x)", 12)):
        fig.add_annotation(
            x=px, y=0.0, text=text, showarrow=False, xanchor="right" if shift < 0 else "left", yanchor="bottom",
            xshift=shift, yshift=8, font=dict(size=14, color="black"), bgcolor="rgba(255,255,255,0.85)",
            bordercolor="black", borderwidth=1, borderpad=2,
        )  # fmt: skip
    # legend entries for classes present
    for c in present:
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                marker=dict(size=12, symbol="square", color=CLASS_COLORS[c % len(CLASS_COLORS)]),
                name=str(names[c]),
            )
        )
    if title is None:
        title = f"Normal cross-section along (r(x), {direction_label})"
    if curvature is not None and np.isfinite(curvature):
        title += f" — curvature κ = {curvature:+.3g} (1/pixel)"
    fig.update_layout(
        title=dict(text=title),
        height=height,
        margin=dict(b=130),  # the class legend below the α-axis title
        xaxis=dict(
            title="α: along r(x)/‖r(x)‖ (pixel ℓ2 distance)",
            range=[alpha[0], alpha[-1]],
            constrain="domain",
            zeroline=False,
        ),
        yaxis=dict(
            title=f"β: along {direction_label} ⊥ r(x) (pixel ℓ2 distance)",
            range=[beta[0], beta[-1]],
            scaleanchor="x",
            scaleratio=1,
            constrain="domain",
            zeroline=False,
        ),
        legend=dict(orientation="h", yanchor="top", y=-0.16, x=0),
    )
    return fig


def with_click_targets(
    fig: go.Figure,
    section: Section,
    *,
    n: int = 40,
    clicked: tuple[float, float] | None = None,
) -> go.Figure:
    """Make every point of a cross-section figure clickable, and mark a clicked one (ICLR 2018 Fig. 5's plane).

    A Plotly heat map reports no selection on click (Streamlit 1.67's ``on_select`` gives no point for it), so an
    invisible n × n grid of markers (float32: ≈ 13 kB at n = 40) is laid over the plane; a click selects the
    nearest grid point, whose ``x``, ``y`` are the plane coordinates (α, β) in pixel-space ℓ2 distance.
    ``clicked`` = (α, β) draws that point and the dashed ray from x through it. Returns ``fig``, changed in place.
    """
    a0, a1, b0, b1 = section.extent
    ga, gb = np.meshgrid(np.linspace(a0, a1, n, dtype=np.float32), np.linspace(b0, b1, n, dtype=np.float32))
    fig.add_trace(
        go.Scatter(
            x=ga.ravel(),
            y=gb.ravel(),
            mode="markers",
            marker=dict(size=max(6, 400 // n), opacity=0),
            unselected=dict(marker=dict(opacity=0)),
            selected=dict(marker=dict(opacity=0)),
            name="click a point",
            showlegend=False,
            hovertemplate="α = %{x:.3f}, β = %{y:.3f}<br>click: show the image at this point<extra></extra>",
        )
    )
    if clicked is not None:
        a, b = (float(t) for t in clicked)
        fig.add_trace(
            go.Scatter(
                x=[0.0, a],
                y=[0.0, b],
                mode="lines+markers",
                line=dict(color="black", width=1.5, dash="dash"),
                marker=dict(
                    symbol=["circle-open", "star"], size=[1, 16], color="white", line=dict(color="black", width=1.5)
                ),
                name="clicked point",
                hovertemplate="clicked point: α = %{x:.3f}, β = %{y:.3f}<extra></extra>",
            )
        )
    return fig


def to_display_image(x: ArrayLike, *, size: int = 112) -> np.ndarray:
    """An image tensor (C, H, W) in [0, 1] → uint8 (size, size[, 3]) array, nearest-neighbour upscaled."""
    a = as_array(x).astype(np.float32)
    a = np.clip(a, 0.0, 1.0)
    a = np.transpose(a, (1, 2, 0)) if a.shape[0] in (1, 3) else a
    if a.shape[-1] == 1:
        a = a[..., 0]
    h = a.shape[0]
    rep = max(1, size // h)
    a = np.repeat(np.repeat(a, rep, axis=0), rep, axis=1)
    return (a * 255 + 0.5).astype(np.uint8)


def perturbation_display(r: ArrayLike, *, size: int = 112) -> tuple[np.ndarray, float]:
    """A perturbation (C, H, W) shown as 0.5 + r / (2 max|r|) (grey = 0). Returns (image, scale factor)."""
    a = as_array(r).astype(np.float32)
    m = float(np.abs(a).max()) or 1.0
    return to_display_image(0.5 + a / (2 * m), size=size), 1.0 / (2 * m)


# ----------------------------------------------------------------------------- curvature (Fig. 7a)
@finished
def curvature_vs_m_figure(
    curves: Mapping[str, CurvatureCurve], *, normalised: bool = False, height: int = 460
) -> go.Figure:
    """Average curvature K_S(x) of held-out points versus subspace dimension m, mean ± std band per
    subspace (paper ICLR 2018, Fig. 7a).

    Parameters
    ----------
    curves : name → :class:`geometry.curvature.CurvatureCurve` (``"S_c"``, ``"S_f"``, ``"random"``)
    normalised : False — the paper's K_S = E (Pv)ᵀH(Pv)/‖Pv‖² (logit / pixel²); True — the normal
        curvature κ = K_S/‖∇F(z)‖ (1 / pixel distance)
    """
    fig = go.Figure()
    method = h = None
    for name, c in curves.items():
        m = as_array(c.m_values).astype(int)
        mean = as_array(c.kappa_mean if normalised else c.mean).astype(float)
        std = as_array(c.kappa_std if normalised else c.std).astype(float)
        share = as_array(c.share_positive).astype(float)
        col = SUBSPACE_COLORS.get(name, "#333333")
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([m, m[::-1]]),
                y=np.concatenate([mean + std, (mean - std)[::-1]]),
                fill="toself",
                fillcolor=rgba(col, 0.15),
                line=dict(width=0),
                hoverinfo="skip",
                showlegend=False,
                name=f"{name} ± std",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=m,
                y=mean,
                mode="lines+markers",
                name=SUBSPACE_LABELS.get(name, name),
                line=dict(color=col, width=2.5),
                customdata=np.stack([std, share * 100], axis=1),
                hovertemplate=(
                    f"<b>{name}</b><br>m = %{{x}}<br>mean = %{{y:.4g}}<br>std = %{{customdata[0]:.3g}}"
                    "<br>points with positive curvature: %{customdata[1]:.0f}%<extra></extra>"
                ),
            )
        )
        method, h = c.method, c.h
    fig.add_hline(y=0, line=dict(color="black", width=1, dash="dot"))
    scale = f"finite differences at h = {h:.3g}" if method == "finite_difference" and h else str(method)
    ytitle = (
        "normal curvature κ = K_S/‖∇F(z)‖ (1 / pixel distance)"
        if normalised
        else "average curvature K_S(x) = E (Pv)ᵀH(Pv)/‖Pv‖² (logit / pixel²)"
    )
    fig.update_layout(
        title=dict(text=f"Average curvature of held-out boundary points versus m — {scale}"),
        xaxis=dict(
            title="subspace dimension m",
            type="log" if max((as_array(c.m_values).max() for c in curves.values()), default=0) > 30 else "linear",
        ),
        yaxis=dict(title=ytitle),
        height=height,
        legend=dict(orientation="h", y=-0.25, x=0),
    )
    fig.update_xaxes(showgrid=True)
    return fig


@finished
def ritz_figure(subspace: Subspace, *, height: int = 380) -> go.Figure:
    """The eigensolver's Ritz values next to the curvature re-evaluated along each returned direction.

    With a finite-difference operator the two differ (the operator is neither linear nor symmetric
    at large h), so the re-evaluated curvature is the number to trust (DESIGN §4).
    """
    i = np.arange(1, len(as_array(subspace.spectrum)) + 1)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=i,
            y=as_array(subspace.spectrum),
            name="Ritz value (eigsh)",
            marker_color="#BAB0AC",
            hovertemplate="direction %{x}<br>Ritz value %{y:.4g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Bar(
            x=i,
            y=as_array(subspace.curvatures),
            name="re-evaluated curvature (mean over points)",
            marker_color=SUBSPACE_COLORS["S_c"],
            hovertemplate="direction %{x}<br>re-evaluated K = %{y:.4g}<extra></extra>",
        )
    )
    asym = float(subspace.asymmetry)
    fig.update_layout(
        title=dict(
            text=f"S_c directions: Ritz values vs re-evaluated curvature (operator asymmetry {asym:.2f})",
        ),
        barmode="group",
        height=height,
        xaxis=dict(title="S_c direction (eigenvector index)"),
        yaxis=dict(title="K along the direction (logit / pixel²)"),
        legend=dict(orientation="h", y=-0.3, x=0),
    )
    return fig


# ----------------------------------------------------------------------------- comparing networks (Fig. 10, C.2)
@finished
def principal_angles_figure(
    comparison: SubspaceComparison, *, title: str | None = None, color: str | None = None, height: int = 420
) -> go.Figure:
    """Cosines of the principal angles between two networks' subspaces, with the random baseline
    (mean ± std band over random subspace pairs) (paper ICLR 2018, Fig. 10).

    Parameters
    ----------
    comparison : :class:`geometry.compare.SubspaceComparison` — ``cosines`` (k,), ``baseline``
        (mean, std), ``names``, ``kind`` ("curved" → S_c, "flat" → S_f), d, p, q
    title : optional title (default says which subspaces of which networks)
    color : line colour (default the subspace colour: S_c red, S_f blue)

    Returns
    -------
    go.Figure — x: principal angle index i = 1..k; y: cos θ_i in [0, 1] (1 = a shared direction).
    """
    cos = as_array(comparison.cosines).astype(float)
    mean = as_array(comparison.baseline.mean).astype(float)
    std = as_array(comparison.baseline.std).astype(float)
    i = np.arange(1, len(cos) + 1)
    sub = {"curved": "S_c", "flat": "S_f"}.get(comparison.kind, comparison.kind or "S")
    col = color or SUBSPACE_COLORS.get(sub, "#333333")
    a, b = comparison.names
    grey = SUBSPACE_COLORS["random"]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=np.concatenate([i, i[::-1]]),
            y=np.concatenate([np.minimum(mean + std, 1), (mean - std)[::-1]]),
            fill="toself",
            fillcolor=rgba(grey, 0.2),
            line=dict(width=0),
            hoverinfo="skip",
            name="random subspaces: mean ± std",
            showlegend=True,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=i,
            y=mean,
            mode="lines",
            line=dict(color=grey, width=2, dash="dash"),
            name=f"two random {comparison.p}- and {comparison.q}-dim subspaces (mean)",
            customdata=std,
            hovertemplate="i = %{x}<br>random: cos θ = %{y:.3f} ± %{customdata:.3f}<extra></extra>",
        )
    )
    z = as_array(comparison.z_scores).astype(float)
    fig.add_trace(
        go.Scatter(
            x=i,
            y=cos,
            mode="lines+markers",
            line=dict(color=col, width=2.5),
            marker=dict(size=7),
            name=f"{sub}({a}) vs {sub}({b})",
            customdata=z,
            hovertemplate=(
                "i = %{x}<br>cos θ = %{y:.3f}<br>%{customdata:+.1f} baseline std from the random mean<extra></extra>"
            ),
        )
    )
    if title is None:
        title = f"{sub}({a}) vs {sub}({b})<br><sup>cosines of the principal angles, against random subspaces</sup>"
    fig.update_layout(
        title=dict(text=title),
        height=height,
        xaxis=dict(title="principal angle index i", dtick=1 if len(i) <= 20 else None),
        yaxis=dict(title="cos θ_i (1 = shared direction)", range=[0, 1.02]),
        legend=dict(orientation="h", y=-0.3, x=0),
    )
    fig.update_xaxes(showgrid=True)
    return fig


@finished
def transfer_matrix_figure(matrix: TransferMatrix, *, title: str | None = None, height: int | None = None) -> go.Figure:
    """Heat map of fooling rates: row = whose S_c the random vectors come from, column = the network
    they are applied to, values written in each cell (paper ICLR 2018, Appendix C.2).

    Parameters
    ----------
    matrix : :class:`geometry.compare.TransferMatrix` — ``rows``, ``columns``, ``mean`` / ``std``
        (R, C) fooling rates in [0, 1], ``xi``, ``m``, ``n_samples``, ``n_points``

    Returns
    -------
    go.Figure — cells coloured 0 % → 100 % with "mean % ± std" as text; the random-vector row is the
    baseline.
    """
    mean = as_array(matrix.mean).astype(float)
    std = as_array(matrix.std).astype(float)
    best = as_array(matrix.best).astype(float)
    from ..compare import RANDOM_ROW

    rows = [r if r == RANDOM_ROW else f"S_c({r})" for r in matrix.rows]
    cols = [str(c) for c in matrix.columns]
    text = [[f"{100 * mean[i, j]:.1f}%<br>± {100 * std[i, j]:.1f}" for j in range(len(cols))] for i in range(len(rows))]
    custom = np.stack([std * 100, best * 100], axis=-1)
    fig = go.Figure(
        go.Heatmap(
            z=mean * 100,
            x=cols,
            y=rows,
            text=text,
            texttemplate="%{text}",
            textfont=dict(size=14),
            customdata=custom,
            zmin=0,
            zmax=100,
            colorscale="Reds",
            colorbar=dict(title="fooling<br>rate %"),
            hovertemplate=(
                "vectors from %{y}<br>applied to %{x}<br>fooling rate %{z:.1f}% ± %{customdata[0]:.1f}"
                "<br>best vector %{customdata[1]:.1f}%<extra></extra>"
            ),
        )
    )
    if title is None:
        title = (
            f"Fooling rate of random vectors of norm ξ = {matrix.xi:.3g} from the first m = {matrix.m} "
            f"directions of each S_c<br><sup>mean ± std over {matrix.n_samples} vectors per row, "
            f"{matrix.n_points} held-out points; row = whose S_c, column = the network fooled</sup>"
        )
    fig.update_layout(
        title=dict(text=title, font=dict(size=14)),
        height=height or 140 + 70 * len(rows),
        xaxis=dict(title="network the vectors are applied to", side="bottom", type="category"),
        yaxis=dict(title="vectors drawn from", autorange="reversed", type="category"),
    )
    return fig


# ----------------------------------------------------------------------------- universal perturbations (Fig. 7b, 8, 9)
@finished
def fooling_rate_vs_m_figure(
    curve: FoolingCurve, *, uap_rate: float | None = None, h: float | None = None, height: int = 460
) -> go.Figure:
    """Fooling rate on held-out points of random vectors of norm ξ in the first m directions of each
    subspace, versus m (paper ICLR 2018, Fig. 7b; Appendix C, Fig. 11–12).

    Parameters
    ----------
    curve : :class:`geometry.universal.FoolingCurve` — ``m_values``, ``mean`` / ``best`` / ``std``
        per name (``"S_c"``, ``"S_f"``, ``"random"``), ``xi``, ``n_samples``, ``n_points``
    uap_rate : float, optional — fooling rate of the UAP algorithm (CVPR 2017 Alg. 1) at the same ξ on
        the same held-out points: drawn as a horizontal dotted line (the paper's dotted line)
    h : float, optional — the finite-difference scale S_c was computed at (pixel units), for the title

    Returns
    -------
    go.Figure — per subspace a solid line (mean over the samples, ± std band) named
    ``"<label> — mean"`` and a dashed line with markers (best sample) named ``"<label> — best of N"``;
    the UAP line is named ``"UAP algorithm (CVPR 2017)"``. y in percent of held-out points.
    """
    m = as_array(curve.m_values).astype(int)
    ns = int(curve.n_samples)
    fig = go.Figure()
    for name in curve.names:
        col = SUBSPACE_COLORS.get(name, "#333333")
        label = SUBSPACE_LABELS.get(name, name)
        mean = 100 * as_array(curve.mean[name]).astype(float)
        std = 100 * as_array(curve.std[name]).astype(float)
        best = 100 * as_array(curve.best[name]).astype(float)
        if ns > 1:
            fig.add_trace(
                go.Scatter(
                    x=np.concatenate([m, m[::-1]]),
                    y=np.concatenate([np.minimum(mean + std, 100), np.maximum(mean - std, 0)[::-1]]),
                    fill="toself",
                    fillcolor=rgba(col, 0.12),
                    line=dict(width=0),
                    hoverinfo="skip",
                    showlegend=False,
                    name=f"{name} ± std",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=m,
                y=mean,
                mode="lines+markers",
                name=f"{label} — mean",
                line=dict(color=col, width=2.5),
                marker=dict(size=6),
                customdata=std,
                hovertemplate=(
                    f"<b>{name}</b>, mean of {ns} random vectors<br>m = %{{x}}<br>fooling rate %{{y:.1f}}%"
                    "<br>std %{customdata:.1f} points<extra></extra>"
                ),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=m,
                y=best,
                mode="lines+markers",
                name=f"{label} — best of {ns}",
                line=dict(color=col, width=1.5, dash="dash"),
                marker=dict(size=7, symbol="diamond-open"),
                hovertemplate=f"<b>{name}</b>, best of {ns}<br>m = %{{x}}<br>fooling rate %{{y:.1f}}%<extra></extra>",
            )
        )
    if uap_rate is not None and np.isfinite(uap_rate):
        fig.add_trace(
            go.Scatter(
                x=[m.min(), m.max()],
                y=[100 * uap_rate] * 2,
                mode="lines",
                name="UAP algorithm (CVPR 2017)",
                line=dict(color=UAP_COLOR, width=2, dash="dot"),
                hovertemplate=f"UAP algorithm at the same ξ: {100 * uap_rate:.1f}% of held-out points<extra></extra>",
            )
        )
    scale = f", S_c at h = {h:.3g}" if h else ""
    fig.update_layout(
        title=dict(
            text=f"Fooling rate of random vectors of norm ξ = {float(curve.xi):.3g} from the first m directions{scale}",
        ),
        xaxis=dict(title="subspace dimension m", type="log" if m.max() > 30 else "linear"),
        yaxis=dict(title=f"fooling rate (% of {int(curve.n_points)} held-out points)", range=[0, 102]),
        height=height,
        legend=dict(orientation="h", y=-0.22, x=0),
    )
    fig.update_xaxes(showgrid=True)
    return fig


def _png_source(img: np.ndarray) -> str:
    """uint8 (H, W) or (H, W, 3) array → ``data:image/png;base64,…`` (small, pixel-exact in the browser)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@finished
def universal_gallery_figure(
    rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], *, size: int = 96, height_per_row: int = 160
) -> go.Figure:
    """Universal perturbations and the held-out images they perturb (paper ICLR 2018, Fig. 8).

    Parameters
    ----------
    rows : sequence of dicts, one per perturbation, with
        ``name`` (str, e.g. "UAP"), ``v`` ((C, H, W) perturbation, pixel units), ``images``
        ((K, C, H, W) held-out images x), ``labels`` ((K,) k̂(x)), ``new_labels`` ((K,) k̂(x + v)),
        optional ``subtitle`` (str, e.g. the fooling rate and the dominant label)
    class_names : names of the classes
    size : displayed pixel size of each thumbnail (nearest-neighbour upscaling)

    Returns
    -------
    go.Figure — one row per perturbation: first the perturbation shown as
    ``0.5 + v/(2 max|v|)`` (grey = 0, :func:`perturbation_display`), then ``x + v`` clipped to the
    pixel range for display, titled ``k̂(x) → k̂(x + v)`` (red when the label changed). Image traces
    are named ``"<name>: perturbation"`` and ``"<name>: image i"``.
    """
    from plotly.subplots import make_subplots

    rows = list(rows)
    if not rows:  # nothing to show: an empty, titled figure rather than a 0-row grid
        return go.Figure(layout=dict(title="No perturbations to show", height=height_per_row, showlegend=False))
    k = max(len(as_array(r["labels"])) for r in rows)
    titles = []
    for r in rows:
        lab, new = as_array(r["labels"]).astype(int), as_array(r["new_labels"]).astype(int)
        titles.append(f"<b>{r['name']}</b>")
        for i in range(k):
            if i < len(lab):
                a, b = _class(class_names, lab[i]), _class(class_names, new[i])
                titles.append(
                    f"<span style='color:#C0392B'>{a} → <b>{b}</b></span>" if lab[i] != new[i] else f"{a} → {b}"
                )
            else:
                titles.append("")
    fig = make_subplots(
        rows=len(rows),
        cols=k + 1,
        subplot_titles=titles,
        horizontal_spacing=0.01,
        vertical_spacing=0.18 / max(len(rows), 1),
    )
    for ri, r in enumerate(rows, start=1):
        pert, scale = perturbation_display(r["v"], size=size)
        fig.add_trace(
            go.Image(
                source=_png_source(_rgb(pert)),
                name=f"{r['name']}: perturbation",
                hovertemplate=(
                    f"{r['name']}: the perturbation v, shown as 0.5 + v·{scale:.3g} (grey = 0)<extra></extra>"
                ),
            ),
            row=ri,
            col=1,
        )
        imgs, v = as_array(r["images"]), as_array(r["v"])
        new = as_array(r["new_labels"]).astype(int)
        for i in range(len(imgs)):
            shown = to_display_image(imgs[i] + v, size=size)
            fig.add_trace(
                go.Image(
                    source=_png_source(_rgb(shown)),
                    name=f"{r['name']}: image {i + 1}",
                    hovertemplate=(
                        f"x + v (clipped to [0, 1] for display); "
                        f"k̂(x + v) = {_class(class_names, new[i])}<extra></extra>"
                    ),
                ),
                row=ri,
                col=i + 2,
            )
        if r.get("subtitle"):
            fig.add_annotation(
                text=r["subtitle"],
                xref="paper",
                yref="paper",
                x=0,
                y=1 - (ri - 1) / len(rows) + 0.0,
                yanchor="bottom",
                showarrow=False,
                font=dict(size=12, color=GREY),
                yshift=22,
            )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=11)
    fig.update_layout(
        height=height_per_row * len(rows) + 40,
        margin=dict(l=10, r=10, t=50, b=10),
        showlegend=False,
    )
    return fig


def _class(class_names: Sequence[str], i: int) -> str:
    i = int(i)
    return str(class_names[i]) if 0 <= i < len(class_names) else f"#{i}"


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


@finished
def inner_product_figure(
    gram: ArrayLike, *, labels: Sequence[str] | None = None, title: str | None = None, height: int = 420
) -> go.Figure:
    """Normalised inner products ``⟨v_i, v_j⟩ / (‖v_i‖ ‖v_j‖)`` between perturbations (paper ICLR 2018,
    Fig. 9: diversity of universal perturbations sampled from S_c).

    Parameters
    ----------
    gram : (K, K) — the normalised inner products (cosines, in [−1, 1]); 1 on the diagonal
    labels : names of the K perturbations (default "v1" … "vK")

    Returns
    -------
    go.Figure — a heat map (diverging colours, 0 = white) named ``"normalised inner products"``,
    values written in the cells.
    """
    g = as_array(gram).astype(float)
    k = g.shape[0]
    labels = list(labels) if labels is not None else [f"v{i + 1}" for i in range(k)]
    off = np.abs(g[~np.eye(k, dtype=bool)])
    fig = go.Figure(
        go.Heatmap(
            z=g,
            x=labels,
            y=labels,
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale="RdBu_r",
            name="normalised inner products",
            text=np.round(g, 2),
            texttemplate="%{text:.2f}",
            colorbar=dict(title="cos"),
            hovertemplate="⟨%{y}, %{x}⟩ / (‖%{y}‖‖%{x}‖) = %{z:.3f}<extra></extra>",
        )
    )
    if title is None:
        spread = f"mean |off-diagonal| {np.nanmean(off):.2f}" if k > 1 else "a single perturbation"
        title = f"Normalised inner products between perturbations — {spread}"
    fig.update_layout(
        title=dict(text=title),
        height=height,
        yaxis=dict(autorange="reversed", scaleanchor="x", constrain="domain"),
        xaxis=dict(constrain="domain"),
        margin=dict(b=40),
    )
    return fig


# ------------------------------------------------------------------ DeepFool norms (command-line report)
@finished
def norm_histogram_figure(
    norms: ArrayLike,
    converged: ArrayLike | None = None,
    *,
    title: str | None = None,
    nbins: int = 30,
    height: int = 420,
) -> go.Figure:
    """Histogram of the DeepFool perturbation norms ‖r(x)‖₂ (pixel-space ℓ2, inputs in [0, 1]).

    Parameters
    ----------
    norms : (N,) array / tensor — ‖r(x)‖₂ per point, pixel units
    converged : (N,) bool, optional — only converged points are drawn (their count is in the title)
    title : str, optional
    nbins : int — approximate number of bins

    Returns
    -------
    go.Figure — a histogram with the median marked by a dashed vertical line.
    """
    r = as_array(norms).reshape(-1)
    mask = np.isfinite(r)
    if converged is not None:
        mask &= as_array(converged).reshape(-1).astype(bool)
    r = r[mask]
    fig = go.Figure()
    fig.add_trace(
        go.Histogram(
            x=r,
            nbinsx=int(nbins),
            marker=dict(color="#4C78A8", line=dict(color="white", width=1)),
            name="‖r(x)‖₂",
            hovertemplate="‖r(x)‖₂ in %{x}<br>%{y} points<extra></extra>",
        )
    )
    if len(r):
        med = float(np.median(r))
        fig.add_vline(
            x=med,
            line=dict(color="black", dash="dash", width=1.5),
            annotation_text=f"median {med:.3g}",
            annotation_position="top right",
        )
    fig.update_layout(
        title=dict(
            text=title or f"DeepFool perturbation norms (n = {len(r)} converged points)",
        ),
        height=height,
        xaxis=dict(title="‖r(x)‖₂: minimal perturbation norm (pixel-space ℓ2, inputs in [0, 1])"),
        yaxis=dict(title="number of points"),
        bargap=0.02,
        showlegend=False,
    )
    return fig
