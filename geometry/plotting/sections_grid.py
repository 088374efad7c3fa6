"""ICLR 2018 Fig. 5 as one figure: normal sections of several datapoints along the same universal
vector v (top row) and along random directions (bottom row)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import boundary_segments
from .layout import finished
from .theme import CLASS_COLORS

if TYPE_CHECKING:
    from ..study.fig5 import UniversalSections

__all__ = ["section_grid_figure"]


def _fmt(kappa: float) -> str:
    return f"κ = {kappa:+.2g}" if math.isfinite(kappa) else "κ n/a"


@finished
def section_grid_figure(result: UniversalSections, class_names: Sequence[str], *, height: int = 470) -> go.Figure:
    """Two rows of normal sections (plane (r(x), v), axes in multiples of ‖r(x)‖).

    Parameters
    ----------
    result : :class:`geometry.study.fig5.UniversalSections`
    class_names : names of the L classes (hover)

    Returns
    -------
    go.Figure — 2 × N panels; each title gives the curvature κ along v at z (1/pixel distance) and
    whether ``x + v`` changes the label ("fooled"); x is the white dot at (0, 0), z at (1, 0).
    """
    rows = [("universal v", result.universal), ("random v", result.random)]
    n = len(result.universal.sections)
    titles = []
    for name, row in rows:
        for i in range(n):
            fooled = "fooled" if bool(row.fooled[i]) else "not fooled"
            titles.append(f"{name}<br>{_fmt(float(row.kappa[i]))}<br>{fooled}")  # short lines: 5 panels fit 800 px
    fig = make_subplots(rows=2, cols=n, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.12)
    L = max(len(class_names), 1)
    scale = []
    for c in range(L):
        col = CLASS_COLORS[c % len(CLASS_COLORS)]
        scale += [[c / L, col], [(c + 1) / L, col]]
    for r, (_, row) in enumerate(rows, start=1):
        for i, sec in enumerate(row.sections, start=1):
            rn = max(float(sec.r_norm), 1e-12)
            a, b = sec.alpha.numpy() / rn, sec.beta.numpy() / rn
            lab = sec.labels.numpy().astype(int)
            hover = np.asarray([str(class_names[c]) if c < L else str(c) for c in range(max(L, lab.max() + 1))])[lab]
            fig.add_trace(
                go.Heatmap(
                    x=a, y=b, z=lab, zmin=-0.5, zmax=L - 0.5, colorscale=scale, showscale=False, customdata=hover,
                    hovertemplate="α/‖r‖ = %{x:.2f}<br>β/‖r‖ = %{y:.2f}<br>%{customdata}<extra></extra>",
                ),
                row=r, col=i,
            )  # fmt: skip
            bx, by = boundary_segments(a, b, lab)
            if bx:
                fig.add_trace(
                    go.Scattergl(x=bx, y=by, mode="lines", line=dict(color="black", width=1.5), hoverinfo="skip"),
                    row=r,
                    col=i,
                )
            fig.add_trace(
                go.Scatter(
                    x=[0, 1], y=[0, 0], mode="markers", hoverinfo="skip",
                    marker=dict(color=["white", "black"], size=[8, 6], line=dict(color="black", width=1)),
                ),
                row=r, col=i,
            )  # fmt: skip
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_annotations(font_size=11)
    fig.update_layout(height=height, showlegend=False, margin=dict(l=10, r=10, t=55, b=10))  # three title lines
    return fig
