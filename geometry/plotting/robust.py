"""Figures of the "Robust training" page (issue 11): curvature profiles and the loss along directions.

Presentation only; results in, ``go.Figure`` out. Every chart states which curvature it shows
(exact Hessian eigenvalues, or finite differences at scale h) and the h.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .figures import as_array
from .layout import finished
from .theme import CLASS_COLORS

if TYPE_CHECKING:
    from ..study.robust import PointStudy, RobustStudy

__all__ = ["curvature_profile_figure", "loss_along_figure", "finite_difference_figure", "robust_accuracy_figure"]


def _color(i: int) -> str:
    return CLASS_COLORS[i % len(CLASS_COLORS)]


@finished
def curvature_profile_figure(studies: Mapping[str, RobustStudy], *, height: int = 420) -> go.Figure:
    """The mean curvature profile of each network on one log-scaled chart (CURE, CVPR 2019, Fig. 2).

    ``studies``: display name → :class:`geometry.study.robust.RobustStudy`. Lines: mean |λ_i| over
    the points for i = 1 … k (eigenvalues of the exact input Hessian of the loss, sorted by
    magnitude); bands: the 25–75 % quantiles over points.
    """
    fig = go.Figure()
    for i, (name, st) in enumerate(studies.items()):
        prof = st.profile
        mean, q25, q75 = as_array(prof.mean), as_array(prof.q25), as_array(prof.q75)
        idx = np.arange(1, len(mean) + 1)
        floor = 1e-12
        c = _color(i)
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([idx, idx[::-1]]),
                y=np.concatenate([np.maximum(q75, floor), np.maximum(q25, floor)[::-1]]),
                fill="toself",
                fillcolor=c,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=idx,
                y=np.maximum(mean, floor),
                mode="lines+markers",
                name=name,
                line={"color": c, "width": 2},
                hovertemplate=f"{name}<br>eigenvalue %{{x}}: mean |λ| = %{{y:.3g}}<extra></extra>",
            )
        )
    fig.update_layout(
        title="Curvature profile (CURE Fig. 2)<br><sup>exact input Hessian of the loss: double backprop, Lanczos</sup>",
        xaxis_title="eigenvalue index i (sorted by |λ|)",
        yaxis_title="mean |λ_i| over points (1/pixel²)",
        yaxis_type="log",
        height=height,
        margin={"t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


@finished
def finite_difference_figure(studies: Mapping[str, RobustStudy], *, height: int = 420) -> go.Figure:
    """Box plot per network of CURE's ‖∇ℓ(x + hz) − ∇ℓ(x)‖₂/h over the points, log scale."""
    fig = go.Figure()
    h = None
    for i, (name, st) in enumerate(studies.items()):
        prof = st.profile
        h = prof.h
        fig.add_trace(
            go.Box(
                y=np.maximum(as_array(prof.finite_difference), 1e-12),
                name=name,
                marker_color=_color(i),
                hovertemplate=f"{name}<br>%{{y:.3g}} (1/pixel)<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Curvature at scale h = {'n/a' if h is None else format(h, 'g')}<br><sup>‖∇ℓ(x + h z) − ∇ℓ(x)‖₂ / h (CURE), per point</sup>",
        yaxis_title="finite-difference curvature (1/pixel)",
        yaxis_type="log",
        height=height,
        showlegend=False,
        margin={"t": 50, "b": 50},
    )
    return fig


@finished
def loss_along_figure(points: Mapping[str, PointStudy], *, height: int = 420) -> go.Figure:
    """The loss ℓ(x + t u) along the boundary normal (solid) and a random direction (dotted) through
    the same x, per network (CURE, CVPR 2019, Fig. 1 style). ``points``: name → PointStudy."""
    fig = go.Figure()
    for i, (name, p) in enumerate(points.items()):
        c = _color(i)
        ts = as_array(p.ts)
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=as_array(p.loss_normal),
                name=f"{name}: normal",
                hovertemplate=f"{name}, along the normal<br>t = %{{x:.3f}}<br>ℓ = %{{y:.4g}}<extra></extra>",
                line={"color": c, "width": 2},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=ts,
                y=as_array(p.loss_random),
                name=f"{name}: random",
                hovertemplate=f"{name}, along a random direction<br>t = %{{x:.3f}}<br>ℓ = %{{y:.4g}}<extra></extra>",
                line={"color": c, "width": 2, "dash": "dot"},
            )
        )
    fig.update_layout(
        title="Loss along the boundary normal (solid) and a random direction (dotted) through x",
        xaxis_title="t: distance from x along the unit direction (pixel ℓ2)",
        yaxis_title="cross-entropy ℓ(x + t u), y = k̂(x)",
        height=height,
        margin={"t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


@finished
def robust_accuracy_figure(studies: Mapping[str, RobustStudy], *, height: int = 380) -> go.Figure:
    """Accuracy under ℓ∞ PGD against ε, one line per network (``RobustStudy.curve``)."""
    fig = go.Figure()
    steps = None
    for i, (name, st) in enumerate(studies.items()):
        c = st.curve
        steps = c.steps
        fig.add_trace(
            go.Scatter(
                x=as_array(c.eps),
                y=as_array(c.accuracy),
                mode="lines+markers",
                name=name,
                line={"color": _color(i), "width": 2},
                hovertemplate=f"{name}<br>ε = %{{x:.3g}}: %{{y:.1%}}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Robust accuracy vs ε<br><sup>ℓ∞ PGD, {steps} steps, random start</sup>",
        xaxis_title="ε (ℓ∞, pixel units)",
        yaxis_title="accuracy under attack",
        yaxis={"range": [0, 1.02], "tickformat": ".0%"},
        height=height,
        margin={"b": 50},
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
