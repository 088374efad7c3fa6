"""The 2-D lab as a Streamlit custom component (components v2, no iframe): the toy model runs in the
browser, so dragging x or the arrow v repaints with no server round trip (issue 20, items 1 and 4).

The component receives the toy model once — the MLP's weights and activation, or the analytic affine /
circle classifier's parameters (:func:`model_spec`) — with the data points and the region box, and
computes in JavaScript (``lab2d_math.js``, a DOM-free file also run under node by
``tests/test_lab2d_math.py`` against the Python reference):

* the decision regions on a ``resolution × resolution`` grid (:func:`geometry.toy2d.decision_regions`);
* DeepFool's iterates from x with each step's linearised boundary, r(x) and ‖r(x)‖₂
  (:func:`geometry.deepfool.deepfool`, ℓ2, overshoot 0.02, at most 50 steps — CVPR 2016, Algorithm 2);
* the osculating circle and κ at z = x + r(x) (:func:`geometry.toy2d.osculating_circle`: exact for the
  smooth models, a second difference at scale h for the ReLU MLP — ICLR 2018 §4, DESIGN §4);
* a universal vector's fooling rate, the fraction of points with k̂(x + v) ≠ k̂(x) (CVPR 2017 §2).

What it reports back (state values, one server rerun each, sent when a drag ends — never during
one): ``x`` (2,) the dragged point and ``v`` ``{"kind", "xi", "angle", "v"}`` — so the page can keep
them in the URL. S_f / S_c directions need the whole data set's normals or Hessians: the page computes
them on the server (:func:`geometry.study.toy2d.universal_panel`) and passes the unit vectors; the
component then chooses the sign and scales by ξ itself.

Timing hook (``benchmarks/interaction.py``, ``tests/test_lab2d_browser.py``): every repaint during a
drag appends ``{"kind": "x" | "v", "draw_ms", "frame_ms"}`` to ``window.__lab2dTimings`` — ``draw_ms``
from the pointer event's time stamp to the end of the synchronous recompute and draw, ``frame_ms`` to
the ``requestAnimationFrame`` callback that follows it (the frame that shows the repaint).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st
from torch import nn

from geometry.classifier import Classifier
from geometry.errors import InvalidInputError
from geometry.plotting import CLASS_COLORS
from geometry.testing import FunctionModule
from geometry.toy2d import SMOOTH_MODELS

__all__ = ["COMPONENT_NAME", "Lab2dState", "curvature_options", "lab2d", "lab_box", "model_spec", "script"]

HERE = Path(__file__).resolve().parent
#: The registered component's name (unique in the app).
COMPONENT_NAME = "boundary_atlas.lab2d"
_ACTIVATIONS: dict[type[nn.Module], str] = {nn.ReLU: "relu", nn.Tanh: "tanh"}


def model_spec(clf: Classifier) -> dict[str, Any]:
    """The toy classifier as plain JSON for ``lab2d_math.js``.

    Parameters
    ----------
    clf : Classifier with ``d = 2`` — a model of :func:`geometry.toy2d.toy_classifier`: an
        ``nn.Sequential`` of ``Flatten`` / ``Linear`` and one kind of activation (ReLU or tanh), the
        analytic affine classifier ``f(x) = Wx + b`` or the analytic circle (logits
        ``(0, ‖x − c‖² − R²)``) of :mod:`geometry.testing`.

    Returns
    -------
    dict
        ``{"type": "mlp", "activation": "relu" | "tanh" | "identity", "layers": [{"W": (out, in)
        nested lists, "b": (out,)}, …]}`` or ``{"type": "sphere", "center": [c1, c2], "r2": R²}``;
        float64 values, which JSON carries exactly (shortest round-trip repr).

    Raises
    ------
    InvalidInputError
        ``d ≠ 2``, normalisation inside the network, or a module the component cannot run.
    """
    if clf.d != 2:
        raise InvalidInputError(f"the 2-D lab component needs a classifier of the plane (d = 2), got d = {clf.d}")
    if clf.mean is not None:
        raise InvalidInputError("the 2-D lab component runs toy models without input normalisation")
    net = clf.network
    if isinstance(net, FunctionModule):
        buffers = dict(net.named_buffers())
        if set(buffers) == {"W_", "b_"}:
            W, b = buffers["W_"].double(), buffers["b_"].double()
            return {"type": "mlp", "activation": "identity", "layers": [{"W": W.tolist(), "b": b.tolist()}]}
        if set(buffers) == {"c_", "r2_"}:
            return {
                "type": "sphere",
                "center": buffers["c_"].double().reshape(-1).tolist(),
                "r2": float(buffers["r2_"]),
            }
        raise InvalidInputError(f"unknown analytic classifier with buffers {sorted(buffers)}")
    if not isinstance(net, nn.Sequential):
        raise InvalidInputError(f"the 2-D lab component runs an nn.Sequential MLP, got {type(net).__name__}")
    layers: list[dict[str, Any]] = []
    activation = "identity"
    for module in net:
        if isinstance(module, nn.Flatten):
            continue
        if isinstance(module, nn.Linear):
            bias = module.bias.double() if module.bias is not None else module.weight.new_zeros(module.out_features)
            layers.append({"W": module.weight.double().tolist(), "b": bias.double().tolist()})
        elif type(module) in _ACTIVATIONS and activation in ("identity", _ACTIVATIONS[type(module)]):
            activation = _ACTIVATIONS[type(module)]
        else:
            raise InvalidInputError(f"the 2-D lab component cannot run a {type(module).__name__} layer")
    if not layers or len(layers[0]["W"][0]) != 2:
        raise InvalidInputError("the network must start with a Linear layer of the plane (2 inputs)")
    return {"type": "mlp", "activation": activation, "layers": layers}


def curvature_options(model: str, h: float) -> dict[str, Any]:
    """How κ is measured for a toy model: exact for :data:`geometry.toy2d.SMOOTH_MODELS`, else the
    second difference at scale ``h`` (data units), as the lab study does."""
    if model in SMOOTH_MODELS:
        return {"method": "exact", "h": None}
    return {"method": "finite_difference", "h": float(h)}


def lab_box(points: np.ndarray, margin: float = 0.5) -> list[float]:
    """``[x1_min, x1_max, x2_min, x2_max]``: the data's box plus ``margin`` — the region grid's box of
    :func:`geometry.study.toy2d.lab_study`."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    lo, hi = p.min(0), p.max(0)
    return [float(lo[0]) - margin, float(hi[0]) + margin, float(lo[1]) - margin, float(hi[1]) + margin]


@functools.cache
def script() -> str:
    """The component's JavaScript: the maths module followed by the view (one ES module)."""
    return (HERE / "lab2d_math.js").read_text(encoding="utf-8") + "\n" + (HERE / "lab2d.js").read_text(encoding="utf-8")


@functools.cache
def _renderer() -> Callable[..., Any]:
    css = (HERE / "lab2d.css").read_text(encoding="utf-8")
    return st.components.v2.component(COMPONENT_NAME, html='<div class="lab2d"></div>', css=css, js=script())


@dataclass(frozen=True)
class Lab2dState:
    """What the component reported back (the last finished drag or control change).

    Attributes
    ----------
    x : (2,) tuple or None — x after a drag (data units), None until the user dragged it
    v : dict or None — ``{"kind": "S_f" | "S_c" | "custom", "xi": ξ, "angle": degrees, "v": [v1, v2]}``
        after a change of the arrow or of its controls, None until then
    """

    x: tuple[float, float] | None
    v: dict[str, Any] | None


def _vec(value: Any) -> list[float] | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.shape != (2,) or not np.isfinite(arr).all():
        raise InvalidInputError(f"expected a finite point of the plane, got {value!r}")
    return [float(arr[0]), float(arr[1])]


def lab2d(
    clf: Classifier,
    points: np.ndarray,
    *,
    model: str,
    key: str,
    mode: str = "lab",
    x: Sequence[float] | None = None,
    h: float = 0.1,
    resolution: int = 150,
    directions: Mapping[str, Sequence[float]] | None = None,
    kind: str = "custom",
    xi: float = 0.3,
    angle: float = 0.0,
    xi_range: tuple[float, float, float] = (0.05, 2.0, 0.01),
    height: int = 520,
    title: str = "",
    scale: float = 1.0,
    on_change: Callable[[], None] | None = None,
) -> Lab2dState:
    """Mount the 2-D lab component and return what it reported.

    Parameters
    ----------
    clf : the toy classifier (:func:`model_spec`); its parameters are sent with the data, which the
        browser keeps until the model changes.
    points : (N, 2) — the data; drawn with their predicted class, the fooling rate is over them.
    model : key of :data:`geometry.toy2d.TOY_MODELS` — chooses how κ is measured (:func:`curvature_options`).
    key : Streamlit key of the instance.
    mode : "lab" — x with DeepFool's iterates, r(x) and the osculating circle; drag x. "universal" —
        v drawn from the data's centroid, the points it fools ringed, the fooling rate; drag v's tip,
        its direction (S_f / S_c / custom), ‖v‖ and angle controls.
    x : (2,) — where x starts (data units); a new value moves it, the same value leaves a dragged x.
    h : finite-difference scale for the ReLU MLP's κ (data units).
    resolution : the region grid (as :class:`geometry.study.toy2d.LabSettings`).
    directions : ``{"S_f": u, "S_c": u}`` unit vectors (2,), computed on the server.
    kind, xi, angle : the arrow's start: direction, ‖v‖ = ξ and angle (degrees) of the custom v.
    xi_range : (min, max, step) of the ‖v‖ control, data units.
    height : canvas height in CSS pixels.
    title : drawn above the plot.
    scale : how much larger than normal the canvas draws its fonts, markers, line widths and dashes, and the
        title / readout / controls' text (CSS px grow by it; the canvas' size in CSS px is ``height`` and the
        page's width, unchanged). The app's present mode passes :data:`geometry.plotting.PRESENT_SCALE`
        (``pages/ui/layout.figure_scale``), the factor its Plotly charts grow by.
    on_change : called (as a widget callback) when the component reports a value.

    Returns
    -------
    Lab2dState

    Raises
    ------
    InvalidInputError
        an unknown ``mode``, a ``scale`` that is not a positive finite number, or a classifier
        :func:`model_spec` cannot send.
    """
    if mode not in ("lab", "universal"):
        raise InvalidInputError(f"mode must be 'lab' or 'universal', got {mode!r}")
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise InvalidInputError(f"scale must be a positive finite number, got {scale!r}")
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    dirs = {k: _vec(u) for k, u in (directions or {}).items()}
    data = {
        "mode": mode,
        "model": model_spec(clf),
        "name": clf.name,
        "points": pts.tolist(),
        "box": lab_box(pts),
        "resolution": int(resolution),
        "curvature": curvature_options(model, h),
        "x": _vec(x) if x is not None else None,
        "directions": dirs,
        "kind": kind,
        "xi": float(xi),
        "angle": float(angle),
        "xi_range": [float(v) for v in xi_range],
        "height": int(height),
        "title": title,
        "scale": float(scale),
        "colors": {"classes": CLASS_COLORS[:2], "pale": ["#F0D1D6", "#C2BDDB"]},
    }
    callback = on_change if on_change is not None else _noop
    result = _renderer()(
        key=key,
        data=data,
        default={"x": None, "v": None},
        on_x_change=callback,
        on_v_change=callback,
    )
    rx = result.get("x") if hasattr(result, "get") else getattr(result, "x", None)
    rv = result.get("v") if hasattr(result, "get") else getattr(result, "v", None)
    xs = _vec(rx) if rx is not None else None
    return Lab2dState(x=(xs[0], xs[1]) if xs is not None else None, v=dict(rv) if rv else None)


def _noop() -> None:
    return None
