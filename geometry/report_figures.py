"""Plotly figure builders used by the command-line report (:mod:`geometry.cli`).

Like :mod:`geometry.plotting`, these only present results (no geometry is computed here): arrays in,
``go.Figure`` out. Every axis says what it measures and in which unit.

* :func:`norm_histogram_figure` — histogram of the DeepFool norms ‖r(x)‖₂ (pixel-space ℓ2);
* :func:`band_curve_figure` — one line per subspace with a mean ± std band, versus the subspace
  dimension m (ICLR 2018 Fig. 7a: curvature versus m; Fig. 7b: fooling rate versus m).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = ["SUBSPACE_COLORS", "norm_histogram_figure", "band_curve_figure"]

#: Colours of the subspaces in every curve figure (S_c, S_f, random baseline).
SUBSPACE_COLORS = {"S_c": "#E45756", "S_f": "#4C78A8", "random": "#7F7F7F"}
_FALLBACK = ["#54A24B", "#F58518", "#B279A2", "#72B7B2", "#9D755D"]


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=float)


def _rgba(hex_colour: str, alpha: float) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def norm_histogram_figure(norms, converged=None, *, title: str | None = None, nbins: int = 30,
                          height: int = 420) -> go.Figure:
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
    r = _np(norms).reshape(-1)
    mask = np.isfinite(r)
    if converged is not None:
        mask &= _np(converged).reshape(-1).astype(bool)
    r = r[mask]
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=r, nbinsx=int(nbins), marker=dict(color="#4C78A8", line=dict(color="white", width=1)),
                               name="‖r(x)‖₂",
                               hovertemplate="‖r(x)‖₂ in %{x}<br>%{y} points<extra></extra>"))
    if len(r):
        med = float(np.median(r))
        fig.add_vline(x=med, line=dict(color="black", dash="dash", width=1.5),
                      annotation_text=f"median {med:.3g}", annotation_position="top right")
    fig.update_layout(
        title=dict(text=title or f"DeepFool perturbation norms (n = {len(r)} converged points)", x=0.0, font=dict(size=15)),
        height=height,
        margin=dict(l=60, r=20, t=60, b=60),
        xaxis=dict(title="‖r(x)‖₂: minimal perturbation norm (pixel-space ℓ2, inputs in [0, 1])"),
        yaxis=dict(title="number of points"),
        bargap=0.02,
        plot_bgcolor="white",
        showlegend=False,
    )
    return fig


def band_curve_figure(
    m_values,
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str,
    yaxis_title: str,
    xaxis_title: str = "m: dimension of the subspace",
    yrange: Sequence[float] | None = None,
    zero_line: bool = False,
    height: int = 460,
) -> go.Figure:
    """Mean ± std versus m, one line with a shaded band per subspace.

    Parameters
    ----------
    m_values : (M,) ints — the subspace dimensions (x axis)
    curves : mapping name → (mean (M,), std (M,)) — e.g. ``{"S_c": (…), "S_f": (…), "random": (…)}``;
        NaN entries are left out of the line and the band
    title, yaxis_title, xaxis_title : str — the y title must name the quantity and its unit
    yrange : (low, high), optional — e.g. (0, 1) for fooling rates
    zero_line : draw y = 0 (for signed curvatures)

    Returns
    -------
    go.Figure
    """
    m = _np(m_values).reshape(-1)
    fig = go.Figure()
    for i, (name, (mean, std)) in enumerate(curves.items()):
        colour = SUBSPACE_COLORS.get(name, _FALLBACK[i % len(_FALLBACK)])
        mu, sd = _np(mean).reshape(-1), _np(std).reshape(-1)
        ok = np.isfinite(mu) & np.isfinite(sd)
        if not ok.any():
            continue
        x, lo, hi = m[ok], (mu - sd)[ok], (mu + sd)[ok]
        fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself", mode="lines",
                                 fillcolor=_rgba(colour, 0.18), line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, legendgroup=name, name=f"{name} ± std"))
        fig.add_trace(go.Scatter(x=x, y=mu[ok], customdata=sd[ok], mode="lines+markers", name=name, legendgroup=name,
                                 line=dict(color=colour, width=2), marker=dict(size=6),
                                 hovertemplate=f"{name}<br>m = %{{x}}<br>mean %{{y:.4g}} ± %{{customdata:.3g}}<extra></extra>"))
    if zero_line:
        fig.add_hline(y=0.0, line=dict(color="black", width=1, dash="dot"))
    fig.update_layout(
        title=dict(text=title, x=0.0, font=dict(size=15)),
        height=height,
        margin=dict(l=70, r=20, t=60, b=60),
        xaxis=dict(title=xaxis_title),
        yaxis=dict(title=yaxis_title, range=list(yrange) if yrange is not None else None),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=1.0, xanchor="right"),
        plot_bgcolor="white",
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig
