"""The house style of every figure: one registered Plotly template, ``pio.templates["atlas"]``, and the
named colours the builders use (issue 19: one template instead of a style block per builder).

The template holds the palette (``colorway``: Paul Tol's colour-blind-safe "muted" scheme + pale grey),
the fonts (body 12 px, titles 15 px, left-aligned), the default margins, white plot and paper
backgrounds with light grid lines, and the hover label's style. :func:`geometry.plotting.layout.finish`
applies it to every builder's figure; a builder states only what differs (a taller bottom margin for a
legend, a log axis).

Streamlit's ``st.plotly_chart(theme="streamlit")`` merges its own theme *into* a figure's template,
so template values are only defaults in the app. The few values the text wrapping is measured
against — the margins and the title's size — and the white plot background (black reference lines)
are therefore also written into the figure's layout by ``finish`` (:data:`MARGIN`, :data:`TITLE_SIZE`,
:data:`PLOT_BGCOLOR`), so a figure is laid out the same in the app, in the command line's
HTML report and in an exported PNG.
"""

from __future__ import annotations

from typing import Final

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "ATLAS",
    "ATTACK",
    "CERTIFIED",
    "CLASS_COLORS",
    "ESTIMATE",
    "GREY",
    "GRID",
    "MARGIN",
    "PLOT_BGCOLOR",
    "PRESENT_SCALE",
    "SUBSPACE_COLORS",
    "SUBSPACE_LABELS",
    "TEMPLATE",
    "TITLE_SIZE",
    "UAP_COLOR",
    "VIOLATION",
    "rgba",
]

#: Paul Tol's "muted" qualitative scheme (9 colours + pale grey, https://personal.sron.nl/~pault/):
#: distinguishable with normal vision and under simulated protan-, deutan- and tritanopia
#: (tests/test_palette.py measures the CIELAB distances); more than 10 classes cycle.
CLASS_COLORS: Final[list[str]] = [
    "#CC6677",  # rose
    "#332288",  # indigo
    "#DDCC77",  # sand
    "#117733",  # green
    "#88CCEE",  # cyan
    "#882255",  # wine
    "#44AA99",  # teal
    "#999933",  # olive
    "#AA4499",  # purple
    "#DDDDDD",  # pale grey
]

#: the three subspaces of ICLR 2018 Fig. 7 (S_c red, S_f blue, random grey), the same on every page
SUBSPACE_COLORS: Final[dict[str, str]] = {"S_c": "#E45756", "S_f": "#4C78A8", "random": "#7F7F7F"}
SUBSPACE_LABELS: Final[dict[str, str]] = {
    "S_c": "S_c (curved subspace)",
    "S_f": "S_f (flat subspace of normals)",
    "random": "random subspace",
}
#: the UAP algorithm's line (CVPR 2017) in the fooling-rate figure
UAP_COLOR: Final = "#222222"
#: the "Certified vs empirical" page: a sound certificate, a power-iteration estimate (not sound), an
#: attack, a violated bound
CERTIFIED: Final = "#2a9d8f"
ESTIMATE: Final = "#e9c46a"
ATTACK: Final = "#e76f51"
VIOLATION: Final = "#d62828"
#: a neutral mid grey (reference lines, baselines)
GREY: Final = "#555555"
#: grid lines on the white plot background
GRID: Final = "#EEEEEE"

TEMPLATE: Final = "atlas"
# pinned: ``finish`` also writes these into each figure's layout where the builder left them unset
TITLE_SIZE: Final = 15  # px; layout.TITLE_CHARS is measured for titles of this size
MARGIN: Final[dict[str, int]] = {"l": 60, "r": 20, "t": 60, "b": 60}  # px
PLOT_BGCOLOR: Final = "white"
#: present mode (``?present=1``, a projector): every chart's fonts, markers, line widths and margins times this
#: (``geometry.plotting.layout.scaled``), so 12-px tick labels become 18 px beside the page's 20-px text
PRESENT_SCALE: Final = 1.5

_axis = dict(
    gridcolor=GRID,
    zerolinecolor=GRID,
    linecolor=GRID,
    ticks="",
    automargin=True,
    title=dict(standoff=15),
)

#: the registered template (``pio.templates["atlas"]``); layout only, no per-trace defaults, so it adds
#: ~1 kB to a figure's JSON where Plotly's default template adds ~8 kB
ATLAS: Final = go.layout.Template(
    layout=dict(
        colorway=CLASS_COLORS,
        font=dict(family='"Source Sans Pro", "Open Sans", Arial, sans-serif', size=12, color="#262730"),
        title=dict(font=dict(size=TITLE_SIZE), x=0.0),
        margin=MARGIN,
        paper_bgcolor="white",
        plot_bgcolor=PLOT_BGCOLOR,
        hovermode="closest",
        hoverlabel=dict(bgcolor="white", bordercolor=GREY, font=dict(size=13, color="#262730"), align="left"),
        legend=dict(font=dict(size=12)),
        xaxis=_axis,
        yaxis=_axis,
    )
)
pio.templates[TEMPLATE] = ATLAS


def rgba(color: str, alpha: float) -> str:
    """``"#RRGGBB"`` and an opacity in [0, 1] → ``"rgba(r,g,b,alpha)"`` (bands drawn under a line)."""
    color = color.lstrip("#")
    r, g, b = (int(color[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"
