"""Figure of subspace-constrained DeepFool: ‖r_S‖/‖r‖ against m with the flat-boundary law √(d/m)
(Fawzi, Moosavi-Dezfooli, Frossard, NIPS 2016; DESIGN §9)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from .layout import finished

if TYPE_CHECKING:
    from ..study.constrained import ConstrainedRatio

__all__ = ["constrained_ratio_figure"]


@finished
def constrained_ratio_figure(result: ConstrainedRatio, *, height: int = 420) -> go.Figure:
    """Mean ± std of ``‖r_S(x)‖/‖r(x)‖`` over points and random subspaces, against m (log–log), with √(d/m).

    Parameters
    ----------
    result : :class:`geometry.study.constrained.ConstrainedRatio`
    """
    m = result.ms.numpy()
    mean, std = result.mean.numpy(), result.std.numpy()
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=m,
            y=mean,
            error_y=dict(type="data", array=np.nan_to_num(std), visible=True),
            mode="lines+markers",
            line=dict(color="#E45756", width=2),
            name="measured ‖r_S‖/‖r‖ (random S, mean ± std)",
            hovertemplate="m = %{x}<br>‖r_S‖/‖r‖ = %{y:.3g}<extra></extra>",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=m,
            y=result.theory.numpy(),
            mode="lines",
            line=dict(color="black", dash="dash"),
            name=f"√(d/m), d = {result.d} (flat boundary)",
            hovertemplate="m = %{x}<br>√(d/m) = %{y:.3g}<extra></extra>",
        )
    )
    fig.update_layout(
        title="DeepFool restricted to a random m-dimensional subspace S",
        xaxis=dict(title="subspace dimension m", type="log"),
        yaxis=dict(title="‖r_S(x)‖ / ‖r(x)‖", type="log"),
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.2, x=0),
    )
    return fig
