"""Plotly figure builders: result objects in, ``go.Figure`` out (DESIGN §2).

No computation of geometry happens here, only presentation: colours, labels, units, hover text.
Every axis says what it measures and in which unit (pixel-space ℓ2 distance, inputs in [0, 1]).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

__all__ = [
    "CLASS_COLORS",
    "section_figure",
    "boundary_segments",
    "to_display_image",
    "perturbation_display",
]

# Ten well-separated colours (Plotly's "Safe"/D3 mix); more classes cycle.
CLASS_COLORS = [
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
    "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC",
]


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def boundary_segments(alpha: np.ndarray, beta: np.ndarray, labels: np.ndarray) -> tuple[list, list]:
    """Line segments (as x / y lists with ``None`` separators) along the edges between grid cells
    of different labels: the decision boundary as drawn on a label grid ``labels`` (B, A)."""
    alpha, beta, labels = _np(alpha), _np(beta), _np(labels)
    da = (alpha[1] - alpha[0]) if len(alpha) > 1 else 1.0
    db = (beta[1] - beta[0]) if len(beta) > 1 else 1.0
    xs: list = []
    ys: list = []
    # vertical edges: between column j and j+1
    jj, ii = np.nonzero((labels[:, 1:] != labels[:, :-1]).T)
    for j, i in zip(jj, ii):
        x = alpha[j] + da / 2
        xs += [x, x, None]
        ys += [beta[i] - db / 2, beta[i] + db / 2, None]
    # horizontal edges: between row i and i+1
    ii, jj = np.nonzero(labels[1:, :] != labels[:-1, :])
    for i, j in zip(ii, jj):
        y = beta[i] + db / 2
        xs += [alpha[j] - da / 2, alpha[j] + da / 2, None]
        ys += [y, y, None]
    return xs, ys


def section_figure(
    section,
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
    alpha, beta, labels = _np(section.alpha), _np(section.beta), _np(section.labels).astype(int)
    present = sorted(set(np.unique(labels).tolist()))
    # map labels to 0..P-1 for a discrete colour scale
    index = {c: i for i, c in enumerate(present)}
    z = np.vectorize(index.get)(labels) if len(present) > 1 else np.zeros_like(labels)
    P = max(len(present), 1)
    colorscale = []
    for i, c in enumerate(present):
        col = CLASS_COLORS[c % len(CLASS_COLORS)]
        colorscale += [[i / P, col], [(i + 1) / P, col]]
    if P == 1:
        colorscale = [[0, CLASS_COLORS[present[0] % len(CLASS_COLORS)]], [1, CLASS_COLORS[present[0] % len(CLASS_COLORS)]]]
    names = np.asarray([str(class_names[c]) if c < len(class_names) else str(c) for c in range(max(present) + 1)], dtype=object)
    hover = names[labels]
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            x=alpha, y=beta, z=z, customdata=hover, zmin=-0.5, zmax=P - 0.5,
            colorscale=colorscale, showscale=False,
            hovertemplate="α (along r) = %{x:.3f}<br>β (along v⊥) = %{y:.3f}<br>class: %{customdata}<extra></extra>",
        )
    )
    bx, by = boundary_segments(alpha, beta, labels)
    if bx:
        fig.add_trace(go.Scattergl(x=bx, y=by, mode="lines", line=dict(color="black", width=1.5),
                                   name="decision boundary", hoverinfo="skip"))
    k = int(section.label)
    kname = class_names[k] if k < len(class_names) else str(k)
    fig.add_trace(go.Scatter(x=[0.0], y=[0.0], mode="markers+text", text=["x"], textposition="top left",
                             marker=dict(symbol="circle", size=11, color="white", line=dict(color="black", width=2)),
                             name=f"x (class {kname})",
                             hovertemplate=f"x: the datapoint, class {kname}<extra></extra>"))
    rn = float(section.r_norm)
    fig.add_trace(go.Scatter(x=[rn], y=[0.0], mode="markers+text", text=["z = x + r(x)"], textposition="top right",
                             marker=dict(symbol="x", size=12, color="black"),
                             name="z = x + r(x)",
                             hovertemplate=f"z = x + r(x): ‖r(x)‖₂ = {rn:.4f}<extra></extra>"))
    # legend entries for classes present
    for c in present:
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", marker=dict(size=12, symbol="square",
                                 color=CLASS_COLORS[c % len(CLASS_COLORS)]), name=str(names[c])))
    if title is None:
        title = f"Normal cross-section along (r(x), {direction_label})"
    if curvature is not None and np.isfinite(curvature):
        title += f" — curvature κ = {curvature:+.3g} per pixel-distance unit"
    fig.update_layout(
        title=dict(text=title, x=0.0, font=dict(size=15)),
        height=height,
        margin=dict(l=60, r=20, t=60, b=60),
        xaxis=dict(title="α: distance along r(x)/‖r(x)‖ (pixel-space ℓ2)", range=[alpha[0], alpha[-1]],
                   constrain="domain", zeroline=False),
        yaxis=dict(title=f"β: distance along {direction_label} ⊥ r(x) (pixel-space ℓ2)", range=[beta[0], beta[-1]],
                   scaleanchor="x", scaleratio=1, constrain="domain", zeroline=False),
        legend=dict(orientation="h", yanchor="bottom", y=-0.28, x=0),
        plot_bgcolor="white",
    )
    return fig


def to_display_image(x, *, size: int = 112) -> np.ndarray:
    """An image tensor (C, H, W) in [0, 1] → uint8 (size, size[, 3]) array, nearest-neighbour upscaled."""
    a = _np(x).astype(np.float32)
    a = np.clip(a, 0.0, 1.0)
    a = np.transpose(a, (1, 2, 0)) if a.shape[0] in (1, 3) else a
    if a.shape[-1] == 1:
        a = a[..., 0]
    h = a.shape[0]
    rep = max(1, size // h)
    a = np.repeat(np.repeat(a, rep, axis=0), rep, axis=1)
    return (a * 255 + 0.5).astype(np.uint8)


def perturbation_display(r, *, size: int = 112) -> tuple[np.ndarray, float]:
    """A perturbation (C, H, W) shown as 0.5 + r / (2 max|r|) (grey = 0). Returns (image, scale factor)."""
    a = _np(r).astype(np.float32)
    m = float(np.abs(a).max()) or 1.0
    return to_display_image(0.5 + a / (2 * m), size=size), 1.0 / (2 * m)


# ----------------------------------------------------------------------------- curvature (Fig. 7a)
SUBSPACE_COLORS = {"S_c": "#E45756", "S_f": "#4C78A8", "random": "#7F7F7F"}
SUBSPACE_LABELS = {"S_c": "S_c (curved subspace)", "S_f": "S_f (flat subspace of normals)",
                   "random": "random subspace"}


def _hex_rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def curvature_vs_m_figure(curves: dict, *, normalised: bool = False, height: int = 460) -> go.Figure:
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
        m = _np(c.m_values).astype(int)
        mean = _np(c.kappa_mean if normalised else c.mean).astype(float)
        std = _np(c.kappa_std if normalised else c.std).astype(float)
        share = _np(c.share_positive).astype(float)
        col = SUBSPACE_COLORS.get(name, "#333333")
        fig.add_trace(go.Scatter(x=np.concatenate([m, m[::-1]]), y=np.concatenate([mean + std, (mean - std)[::-1]]),
                                 fill="toself", fillcolor=_hex_rgba(col, 0.15), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, name=f"{name} ± std"))
        fig.add_trace(go.Scatter(
            x=m, y=mean, mode="lines+markers", name=SUBSPACE_LABELS.get(name, name), line=dict(color=col, width=2.5),
            customdata=np.stack([std, share * 100], axis=1),
            hovertemplate=(f"<b>{name}</b><br>m = %{{x}}<br>mean = %{{y:.4g}}<br>std = %{{customdata[0]:.3g}}"
                           "<br>points with positive curvature: %{customdata[1]:.0f}%<extra></extra>"),
        ))
        method, h = c.method, c.h
    fig.add_hline(y=0, line=dict(color="black", width=1, dash="dot"))
    scale = f"finite differences at h = {h:.3g}" if method == "finite_difference" and h else str(method)
    ytitle = ("normal curvature κ = K_S/‖∇F(z)‖ (1 / pixel distance)" if normalised
              else "average curvature K_S(x) = E (Pv)ᵀH(Pv)/‖Pv‖² (logit / pixel²)")
    fig.update_layout(
        title=dict(text=f"Average curvature of held-out boundary points versus m — {scale}", x=0, font=dict(size=15)),
        xaxis=dict(title="subspace dimension m", type="log" if max(_np(c.m_values).max() for c in curves.values()) > 30 else "linear"),
        yaxis=dict(title=ytitle), height=height, legend=dict(orientation="h", y=-0.25, x=0),
        margin=dict(l=60, r=20, t=60, b=60), plot_bgcolor="white",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def ritz_figure(subspace, *, height: int = 380) -> go.Figure:
    """The eigensolver's Ritz values next to the curvature re-evaluated along each returned direction.

    With a finite-difference operator the two differ (the operator is neither linear nor symmetric
    at large h), so the re-evaluated curvature is the number to trust (DESIGN §4).
    """
    i = np.arange(1, len(_np(subspace.eigenvalues)) + 1)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=i, y=_np(subspace.eigenvalues), name="Ritz value (eigsh)", marker_color="#BAB0AC",
                         hovertemplate="direction %{x}<br>Ritz value %{y:.4g}<extra></extra>"))
    fig.add_trace(go.Bar(x=i, y=_np(subspace.curvatures), name="re-evaluated curvature (mean over points)",
                         marker_color="#E45756",
                         hovertemplate="direction %{x}<br>re-evaluated K = %{y:.4g}<extra></extra>"))
    asym = float(subspace.asymmetry)
    fig.update_layout(
        title=dict(text=f"S_c directions: Ritz values vs re-evaluated curvature (operator asymmetry {asym:.2f})",
                   x=0, font=dict(size=15)),
        barmode="group", height=height, xaxis=dict(title="S_c direction (eigenvector index)"),
        yaxis=dict(title="K along the direction (logit / pixel²)"), legend=dict(orientation="h", y=-0.3, x=0),
        margin=dict(l=60, r=20, t=60, b=60), plot_bgcolor="white",
    )
    return fig
