"""The one post-pass of every figure (issue 19): :func:`finish` applies the ``atlas`` template
(:mod:`geometry.plotting.theme`) and does what a template cannot express — Plotly never wraps text, so
a long chart title is cut at the right edge of an 800-px window and a long vertical axis title runs
into the chart title above it (issue 14 item 4). Every builder is decorated with :func:`finished`,
which calls :func:`finish` once on the figure it returns; a page that draws a chart in one of two
columns calls :func:`narrow` (``finish(fig, narrow=True)``) on it."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from typing import ParamSpec

import numpy as np
import plotly.graph_objects as go

from .theme import ATLAS, MARGIN, PLOT_BGCOLOR, TEMPLATE, TITLE_SIZE

__all__ = ["finish", "finished", "legible", "narrow", "presented", "scaled", "wrap_text"]

_P = ParamSpec("_P")
_TAG = re.compile(r"(<[^>]*>)")
TITLE_CHARS = 42  # a 15-px title line of this many characters fits a chart ~330 px wide (800-px window)
AXIS_CHARS = 44  # axis titles: fit a ~330-px plot height (y) or a half-width chart at 800 px (x)
LINE_PX = 21  # height of one title line at 15 px
AXIS_LINE_PX = 18  # height of one axis-title line at Plotly's default 14 px
AXIS_TITLE_SIZE = 14  # px: Plotly's axis titles beside 12-px tick labels
LEGEND_LINE_PX = 22  # one line of a legend entry (12-px text, symbol and spacing)


def wrap_text(text: str, width: int) -> str:
    """Insert ``<br>`` at spaces so that no line of ``text`` shows more than ``width`` characters.

    HTML tags (``<b>``, ``<sup>``, ``<span style='…'>``) count as zero characters and are never
    split; existing ``<br>`` breaks are kept. A single word longer than ``width`` stays whole.
    """
    out: list[str] = []
    for line in re.split(r"<br\s*/?>", text):
        # spaces inside a tag (<span style='…'>) are not break points: hide them while splitting
        words = _TAG.sub(lambda m: m.group(0).replace(" ", "\x00"), line).split(" ")
        lines: list[list[str]] = [[]]
        visible = 0
        for word in words:
            n = len(_TAG.sub("", word))
            if lines[-1] and visible + 1 + n > width:
                lines.append([])
                visible = 0
            visible += n + (1 if len(lines[-1]) else 0)
            lines[-1].append(word)
        out.append("<br>".join(" ".join(ws) for ws in lines).replace("\x00", " "))
    return "<br>".join(out)


def _lines(text: str) -> int:
    return len(re.split(r"<br\s*/?>", text))


def legible(fig: go.Figure, *, title_chars: int = TITLE_CHARS, axis_chars: int = AXIS_CHARS) -> go.Figure:
    """Wrap ``fig``'s title and axis titles and reserve room for them (in place; returns ``fig``).

    The wrapping step of :func:`finish` (builders call neither: :func:`finished` does). The title sits
    just above the plot area in a top margin of its line count; axis titles are wrapped and the axes'
    ``automargin`` lets Plotly push the plot area away from them, so no title overlaps another at
    800 px or 1280 px. ``title_chars`` / ``axis_chars``: the most visible characters per line.
    """
    title = fig.layout.title.text
    if title:
        wrapped = wrap_text(title, title_chars)
        n = _lines(wrapped)
        fig.update_layout(
            # from the top of the figure down: Streamlit's Plotly places the first line of a multi-line
            # title about one line above a "top" anchor, hence the padding of one line
            title=dict(text=wrapped, yref="container", y=1, yanchor="top", pad=dict(t=LINE_PX + 4)),
            margin=dict(t=max(_margin(fig, "t"), 30 + LINE_PX * n)),
        )
    extra_x_lines = 0
    for axes, width in ((fig.select_xaxes(), axis_chars), (fig.select_yaxes(), axis_chars)):
        for axis in axes:
            if axis.title.text:
                axis.title.text = wrap_text(axis.title.text, width)
                axis.automargin = True
                if axis.plotly_name.startswith("xaxis"):
                    extra_x_lines = max(extra_x_lines, _lines(axis.title.text) - 1)
    _lower_legend(fig, extra_x_lines)
    return fig


def _margin(fig: go.Figure, side: str) -> int:
    """The margin ``side`` ("t", "b", …) in px: the figure's own, else the house default (theme.MARGIN)."""
    value = getattr(fig.layout.margin, side)
    return int(value) if value is not None else MARGIN[side]


def _lower_legend(fig: go.Figure, extra_lines: int) -> None:
    """Move a horizontal legend placed below the plot (``y < 0``, paper units) down by the lines a
    wrapped x-axis title gained, and grow the bottom margin by as much: ``automargin`` makes room for
    the axis title but not for a legend positioned in paper units, which would cover its second line."""
    legend = fig.layout.legend
    if extra_lines <= 0 or legend.orientation != "h" or legend.y is None or legend.y >= 0:
        return
    height = fig.layout.height or 450
    top, bottom = _margin(fig, "t"), _margin(fig, "b")
    plot_px = max(height - top - bottom, 100)
    shift_px = AXIS_LINE_PX * extra_lines
    fig.update_layout(legend=dict(y=legend.y - shift_px / plot_px), margin=dict(b=bottom + shift_px))


NARROW_TITLE_CHARS = 26  # a half-width chart at 800 px is ~200 px wide
NARROW_AXIS_CHARS = 24
NARROW_LEGEND_CHARS = 26


def _theme(fig: go.Figure) -> None:
    """Apply the ``atlas`` template and write the pinned values (margins, title size, plot background; see
    :mod:`geometry.plotting.theme`) into the layout where the builder left them unset."""
    fig.layout.template = TEMPLATE
    fig.update_layout(margin={side: _margin(fig, side) for side in MARGIN})
    if fig.layout.title.text and fig.layout.title.font.size is None:
        fig.layout.title.font.size = TITLE_SIZE
    if fig.layout.plot_bgcolor is None:
        fig.layout.plot_bgcolor = PLOT_BGCOLOR


def finish(fig: go.Figure, *, narrow: bool = False) -> go.Figure:
    """The one post-pass of every figure: template, then wrapping (in place; returns ``fig``).

    Parameters
    ----------
    fig : go.Figure
        A builder's figure.
    narrow : bool
        False — a full-width chart (titles wrapped at :data:`TITLE_CHARS`, axis titles at
        :data:`AXIS_CHARS`). True — a chart drawn in one of two columns (~200 px wide at an 800-px
        window): titles and axis titles wrapped at :data:`NARROW_TITLE_CHARS` / :data:`NARROW_AXIS_CHARS`,
        and legend entries too (Plotly cuts a single entry wider than the chart); a horizontal legend below
        the plot is anchored to the figure's bottom edge and the figure grows by the room its rows take,
        so the plot area keeps its size.

    Returns
    -------
    go.Figure
        ``fig``, with the ``atlas`` template applied and its margins, title size and plot background
        written into the layout where unset. Applying
        it again (``narrow`` after a builder's full-width pass) re-wraps each line at the narrower width.
    """
    _theme(fig)
    if not narrow:
        return legible(fig)
    legend_lines = entries = 0
    for trace in fig.data:
        name = getattr(trace, "name", None)
        if name and getattr(trace, "showlegend", None) is not False and trace.type not in ("heatmap", "image"):
            trace.name = wrap_text(name, NARROW_LEGEND_CHARS)
            legend_lines += _lines(trace.name)
            entries += 1
    fig = legible(fig, title_chars=NARROW_TITLE_CHARS, axis_chars=NARROW_AXIS_CHARS)
    legend = fig.layout.legend
    if legend_lines and legend.orientation == "h" and legend.y is not None and legend.y < 0:
        # at ~200 px every entry takes its own row(s): a legend placed in paper units below the plot runs into
        # the x-axis title. Anchor it to the figure's bottom edge instead and make the bottom margin (and the
        # figure, so the plot keeps its size) tall enough for tick labels, the axis title and every legend row.
        x_lines = max((_lines(a.title.text) for a in fig.select_xaxes() if a.title.text), default=0)
        legend_px = LEGEND_LINE_PX * legend_lines + 8 * entries + 10
        bottom = 40 + AXIS_LINE_PX * x_lines + legend_px
        old_bottom = _margin(fig, "b")
        grow = max(bottom - old_bottom, 0)
        fig.update_layout(
            legend=dict(yref="container", y=0, yanchor="bottom"),
            margin=dict(b=old_bottom + grow),
            height=(fig.layout.height or 450) + grow,
        )
    return fig


def narrow(fig: go.Figure) -> go.Figure:
    """``finish(fig, narrow=True)``: a chart drawn in one of two columns (in place; returns ``fig``)."""
    return finish(fig, narrow=True)


def finished(build: Callable[_P, go.Figure]) -> Callable[_P, go.Figure]:
    """Decorate a figure builder: its figure goes through :func:`finish` once, on the way out."""

    @functools.wraps(build)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> go.Figure:
        return finish(build(*args, **kwargs))

    return wrapper


#: keys of a figure's JSON whose ``size`` is a font size (``font`` of the layout, titles, legend, annotations,
#: hover labels, colour bars; ``textfont`` & co of traces)
_FONT_KEYS = ("font", "textfont", "tickfont", "insidetextfont", "outsidetextfont", "titlefont")


def _scale_tree(node: object, factor: float, parent: str = "") -> object:
    """A copy of a figure's JSON tree with font sizes, marker sizes, line widths and margins times ``factor``."""
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            scalable = (
                (key == "size" and (parent in _FONT_KEYS or parent == "marker"))
                or (key == "width" and parent == "line")
                or (parent == "margin" and key in ("l", "r", "t", "b"))
                or (key == "standoff")
            )
            if scalable and isinstance(value, int | float) and not isinstance(value, bool):
                out[key] = value * factor
            elif scalable and isinstance(value, list | tuple) and all(isinstance(v, int | float) for v in value):
                out[key] = [v * factor for v in value]  # a marker size per point
            elif scalable and isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.number):
                out[key] = value * factor
            else:
                out[key] = _scale_tree(value, factor, key)
        return out
    if isinstance(node, list | tuple):
        return [_scale_tree(v, factor, parent) for v in node]
    return node


def scaled(fig: go.Figure, factor: float) -> go.Figure:
    """A copy of ``fig`` drawn ``factor`` times larger inside the same figure size: every font size (the layout's,
    titles', axes', legend, annotations, hover labels, trace text), marker size, line width and margin.

    The app's present mode (``?present=1``, a projector; ``pages/ui/tour.py``) shows every chart through it at
    :data:`geometry.plotting.theme.PRESENT_SCALE`, so the figures grow with the page's text. Sizes the figure
    leaves to the ``atlas`` template (body and legend 12 px, hover labels 13 px) are written into its layout first,
    so they scale too — Streamlit merges its own theme into a figure's template, never into its layout. ``fig``
    itself is not changed (a page may draw it again); the data and the plot area's size in pixels are kept (the
    figure grows by what its margins gain), a legend placed below the plot moves down with the larger text, and
    vertical axis titles are wrapped at ``AXIS_CHARS / factor`` characters.

    Raises ValueError for a ``factor`` that is not a positive finite number.
    """
    if not (isinstance(factor, int | float) and math.isfinite(factor) and factor > 0):
        raise ValueError(f"scale factor must be a positive finite number, got {factor!r}")
    base = go.Figure(fig)
    layout = ATLAS.layout
    if base.layout.font.size is None:
        base.layout.font.size = layout.font.size
    if base.layout.legend.font.size is None:
        base.layout.legend.font.size = layout.legend.font.size
    if base.layout.hoverlabel.font.size is None:
        base.layout.hoverlabel.font.size = layout.hoverlabel.font.size
    for side in MARGIN:
        if getattr(base.layout.margin, side) is None:
            setattr(base.layout.margin, side, MARGIN[side])
    if base.layout.title.text and base.layout.title.font.size is None:
        base.layout.title.font.size = TITLE_SIZE
    # Streamlit's theme gives axes and annotations their own (smaller) fonts through the template: write ours
    for axis in (*base.select_xaxes(), *base.select_yaxes()):
        if axis.tickfont.size is None:
            axis.tickfont.size = layout.font.size
        if axis.title.font.size is None:
            axis.title.font.size = AXIS_TITLE_SIZE
    for note in base.layout.annotations:
        if note.font.size is None:
            note.font.size = layout.font.size
    if factor == 1:
        return base
    # the plot area keeps its pixel size: the figure grows by what its (scaled) margins gain; a legend placed below
    # the plot in paper units moves down with the larger text; vertical axis titles wrap at fewer characters
    top, bottom = _margin(base, "t"), _margin(base, "b")
    base.layout.height = (base.layout.height or 450) + (top + bottom) * (factor - 1)
    legend = base.layout.legend
    if legend.y is not None and legend.y < 0 and legend.yref in (None, "paper"):
        legend.y = legend.y * factor
    for axis in base.select_yaxes():
        if axis.title.text:
            axis.title.text = wrap_text(axis.title.text, max(int(AXIS_CHARS / factor), 12))
    tree = base.to_plotly_json()
    layout_tree = {k: v for k, v in tree.get("layout", {}).items() if k != "template"}  # the template stays as it is
    return go.Figure(
        data=_scale_tree(tree.get("data", []), factor),
        layout={**_scale_tree(layout_tree, factor), "template": base.layout.template},  # type: ignore[dict-item]
    )


#: present mode: the width (px) a legend row is assumed to fill before it wraps — a full-width chart at 1280 px
PRESENT_LEGEND_WIDTH = 1000


def _legend_rows(fig: go.Figure, width_px: float) -> int:
    """How many rows a horizontal legend of ``fig``'s named traces takes at its font size, wrapping at ``width_px``
    (an estimate: ~0.6 em a character, plus the symbol and the gap between entries, ~3.5 em)."""
    size = float(fig.layout.legend.font.size or ATLAS.layout.legend.font.size or 12)
    entries: dict[str, str] = {}  # one entry per legend group (traces of a group share it)
    for t in fig.data:
        if t.showlegend is not False and t.name:
            entries.setdefault(t.legendgroup or t.name, t.name)
    if not entries:
        return 0
    widths = [size * (0.6 * len(_TAG.sub("", str(n))) + 3.5) for n in entries.values()]
    rows, used = 1, 0.0
    for w in widths:
        if used and used + w > width_px:
            rows, used = rows + 1, 0.0
        used += w
    return rows


def presented(fig: go.Figure, factor: float, *, max_height: int | None = None) -> go.Figure:
    """The app's present mode (``?present=1``, a projector at 1280 × 800; issue 23 item 5): ``fig`` drawn
    ``factor`` times larger (:func:`scaled`), with a legend that sat below the plot moved above it (horizontal,
    left-aligned, in a top margin grown by its rows — below the plot it fell off the first screen), and a height of
    at most ``max_height`` px (the plot area gives up the difference; None: as tall as it is).

    ``fig`` itself is not changed. Raises ValueError for a ``factor`` that is not a positive finite number or a
    ``max_height`` that is not a positive number of pixels.
    """
    if max_height is not None and not (isinstance(max_height, int | float) and max_height > 0):
        raise ValueError(f"max_height must be a positive number of pixels, got {max_height!r}")
    big = scaled(fig, factor)
    legend = big.layout.legend
    below = legend.y is not None and legend.y < 0 and legend.yref in (None, "paper")
    if big.layout.showlegend is not False and below:
        rows = _legend_rows(big, PRESENT_LEGEND_WIDTH)
        row_px = LEGEND_LINE_PX * float(legend.font.size or 12) / 12
        big.update_layout(
            legend=dict(orientation="h", x=0, xanchor="left", y=1, yanchor="bottom"),
            margin=dict(
                t=_margin(big, "t") + rows * row_px,
                b=min(_margin(big, "b"), MARGIN["b"] * factor),  # the axis titles keep theirs (automargin)
            ),
        )
    if max_height is not None and (big.layout.height or 450) > max_height:
        big.layout.height = max_height
    return big
