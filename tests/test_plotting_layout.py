"""Titles that fit at 800 px (geometry.plotting.layout): wrapping keeps the text, never splits a word
or an HTML tag, respects the width, and the figure makes room for every line."""

from __future__ import annotations

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from geometry.plotting.layout import LINE_PX, legible, wrap_text

_TAG = re.compile(r"<[^>]*>")
WORDS = ["κ", "curvature", "S_c", "‖r(x)‖₂", "pixel-space", "<b>bold</b>", "<span style='color:#C0392B'>3 → 5</span>"]


def _random_text(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@pytest.mark.parametrize("width", [12, 30, 42])
def test_wrap_keeps_the_text_and_respects_the_width(width):
    rng = np.random.default_rng(width)
    for _ in range(40):
        text = _random_text(rng, int(rng.integers(1, 25)))
        wrapped = wrap_text(text, width)
        assert wrapped.replace("<br>", " ") == text  # only spaces became line breaks
        for line in wrapped.split("<br>"):
            visible = _TAG.sub("", line)
            assert len(visible) <= width or " " not in visible  # longer only as one unbreakable word
        # every tag of the original survives whole, in order
        assert _TAG.findall(wrapped.replace("<br>", "")) == _TAG.findall(text)


def test_existing_breaks_are_kept():
    assert wrap_text("first line<br>second", 40) == "first line<br>second"
    assert wrap_text("aaa bbb<br>ccc ddd", 3) == "aaa<br>bbb<br>ccc<br>ddd"


def test_legible_reserves_a_line_of_margin_per_title_line():
    title = "Average curvature of held-out boundary points versus m — finite differences at h = 5.11"
    fig = legible(go.Figure(layout=dict(title=title, yaxis=dict(title="average curvature " * 5))))
    lines = fig.layout.title.text.count("<br>") + 1
    assert lines >= 2
    assert fig.layout.margin.t >= LINE_PX * lines
    assert fig.layout.yaxis.automargin is True
    assert "<br>" in fig.layout.yaxis.title.text


def test_a_legend_below_the_plot_moves_down_by_the_lines_the_x_title_gained():
    """A horizontal legend in paper units below the plot would cover a wrapped x-axis title's second line:
    legible() lowers it by one axis-title line per extra line (in paper units of the plot height) and grows
    the bottom margin by the same pixels; a title that does not wrap leaves the legend where it was."""
    from geometry.plotting.layout import AXIS_LINE_PX

    def fig(xtitle: str) -> go.Figure:
        f = go.Figure(go.Scatter(x=[0, 1], y=[0, 1]))
        f.update_layout(
            height=500, margin=dict(t=60, b=100), legend=dict(orientation="h", y=-0.2), xaxis=dict(title=xtitle)
        )
        return legible(f, axis_chars=20)

    short = fig("short title")
    assert short.layout.legend.y == pytest.approx(-0.2) and short.layout.margin.b == 100
    long = fig("a much longer x axis title that wraps twice")  # 3 lines at 20 characters
    lines = long.layout.xaxis.title.text.count("<br>") + 1
    assert lines == 3
    plot_px = 500 - long.layout.margin.t - 100
    assert long.layout.legend.y == pytest.approx(-0.2 - AXIS_LINE_PX * (lines - 1) / plot_px)
    assert long.layout.margin.b == 100 + AXIS_LINE_PX * (lines - 1)


def test_narrow_wraps_legend_entries_and_titles_for_half_width_charts():
    """A legend entry wider than a half-width chart is cut by Plotly: narrow() wraps every shown entry (and the
    title) at its narrower width and keeps the text; a trace hidden from the legend keeps its name."""
    from geometry.plotting.layout import NARROW_LEGEND_CHARS, NARROW_TITLE_CHARS, narrow

    long = "two random 10- and 10-dim subspaces: mean ± std"
    f = go.Figure([go.Scatter(name=long), go.Scatter(name=long, showlegend=False)])
    f.update_layout(title=dict(text="S_c(digits-lenet) vs S_c(digits-nin): cosines of the principal angles"))
    narrow(f)
    shown, hidden = f.data
    assert shown.name.replace("<br>", " ") == long and "<br>" in shown.name
    assert max(len(line) for line in shown.name.split("<br>")) <= NARROW_LEGEND_CHARS
    assert hidden.name == long
    title_lines = f.layout.title.text.split("<br>")
    assert len(title_lines) > 1 and max(len(line) for line in title_lines) <= NARROW_TITLE_CHARS


def test_narrow_anchors_a_legend_below_the_plot_to_the_bottom_edge_and_keeps_the_plot_size():
    """At half width each legend entry takes its own row: narrow() anchors the legend to the figure's bottom edge
    and grows the bottom margin and the height by the same pixels, so the plot area keeps its height and the
    legend rows fit below the tick labels and the x-axis title."""
    from geometry.plotting.layout import AXIS_LINE_PX, narrow

    f = go.Figure([go.Scatter(name=f"entry {i}") for i in range(5)])
    f.update_layout(height=420, margin=dict(t=60, b=60), legend=dict(orientation="h", y=-0.3), xaxis_title="index i")
    narrow(f)
    lg, m = f.layout.legend, f.layout.margin
    assert lg.yref == "container" and lg.y == 0 and lg.yanchor == "bottom"
    assert m.b >= 40 + AXIS_LINE_PX + 5 * 18
    assert f.layout.height - m.t - m.b == 420 - 60 - 60  # the plot area keeps its height


def test_finish_applies_the_registered_atlas_template_and_pins_the_margins():
    """One template for every figure: the palette, fonts and hover style come from ``pio.templates["atlas"]``;
    the margins and title size the wrapping is measured against are written into the layout too (Streamlit's
    theme merges its own values into a figure's template), and a builder's own margin wins."""
    import plotly.io as pio

    from geometry.plotting import CLASS_COLORS, TEMPLATE, finish
    from geometry.plotting.theme import MARGIN, TITLE_SIZE

    assert TEMPLATE in pio.templates and list(pio.templates[TEMPLATE].layout.colorway) == CLASS_COLORS
    fig = finish(go.Figure(go.Scatter(x=[0, 1], y=[0, 1]), layout=dict(title="t", margin=dict(b=130))))
    assert list(fig.layout.template.layout.colorway) == CLASS_COLORS
    assert fig.layout.template.layout.hoverlabel.bgcolor == "white"
    assert (fig.layout.margin.l, fig.layout.margin.r, fig.layout.margin.b) == (MARGIN["l"], MARGIN["r"], 130)
    assert fig.layout.title.font.size == TITLE_SIZE


def test_finish_twice_at_full_width_changes_nothing():
    from geometry.plotting import finish

    title = "Average curvature of held-out boundary points versus m — finite differences at h = 5.11"
    once = finish(go.Figure(layout=dict(title=title, xaxis_title="subspace dimension m", legend=dict(y=-0.3))))
    twice = finish(go.Figure(once))
    assert twice.layout == once.layout


def test_scaled_multiplies_fonts_markers_lines_and_margins_by_the_factor():
    """Present mode (issue 23 item 5): every font size, marker size, line width and margin of the figure times the
    factor — also those the figure left to the template (body, legend, hover, axis ticks and titles, annotations) —
    the plot area keeps its pixels, and the figure it was made from is left as it was."""
    from geometry.plotting import PRESENT_SCALE, finish, scaled
    from geometry.plotting.layout import AXIS_TITLE_SIZE
    from geometry.plotting.theme import ATLAS, TITLE_SIZE

    fig = finish(
        go.Figure(
            [
                go.Scatter(x=[0, 1], y=[1, 0], mode="lines+markers", marker=dict(size=8), line=dict(width=2)),
                go.Scatter(x=[0, 1], y=[0, 1], mode="markers+text", marker=dict(size=[4, 10]), textfont=dict(size=11)),
            ],
            layout=dict(
                title="a title",
                height=500,
                xaxis=dict(title="x (pixel ℓ2 distance)"),
                yaxis=dict(title="y"),
                annotations=[dict(text="z", x=0, y=0), dict(text="w", x=1, y=1, font=dict(size=16))],
                shapes=[dict(type="line", x0=0, x1=1, y0=0, y1=1, line=dict(width=3))],
                legend=dict(orientation="h", y=-0.2),
            ),
        )
    )
    before = fig.to_plotly_json()
    f = 1.5
    big = scaled(fig, f)
    assert fig.to_plotly_json() == before  # the original is untouched
    base = ATLAS.layout.font.size
    assert big.layout.font.size == pytest.approx(base * f)
    assert big.layout.title.font.size == pytest.approx(TITLE_SIZE * f)
    assert big.layout.legend.font.size == pytest.approx(ATLAS.layout.legend.font.size * f)
    assert big.layout.hoverlabel.font.size == pytest.approx(ATLAS.layout.hoverlabel.font.size * f)
    assert big.layout.xaxis.tickfont.size == pytest.approx(base * f)
    assert big.layout.yaxis.title.font.size == pytest.approx(AXIS_TITLE_SIZE * f)
    assert [a.font.size for a in big.layout.annotations] == pytest.approx([base * f, 16 * f])
    assert big.data[0].marker.size == pytest.approx(8 * f) and big.data[0].line.width == pytest.approx(2 * f)
    assert list(big.data[1].marker.size) == pytest.approx([4 * f, 10 * f])
    assert big.data[1].textfont.size == pytest.approx(11 * f)
    assert big.layout.shapes[0].line.width == pytest.approx(3 * f)
    for side in "tb":
        assert getattr(big.layout.margin, side) == pytest.approx(getattr(fig.layout.margin, side) * f)
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    assert big.layout.height - big.layout.margin.t - big.layout.margin.b == pytest.approx(plot_px)
    assert big.layout.legend.y == pytest.approx(-0.2 * f)  # below the plot, further down with the larger text
    assert list(big.data[0].x) == [0, 1] and big.layout.template.layout.font.size == base  # data and template kept
    assert PRESENT_SCALE > 1
    same = scaled(fig, 1)
    assert same.layout.font.size == base and same.data[0].marker.size == 8
    for bad in (0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            scaled(fig, bad)


def test_presented_moves_a_legend_below_the_plot_above_it_and_caps_the_height():
    """Present mode at 1280 × 800 (issue 23 item 5): a legend below the plot falls off the first screen, so it moves
    above the plot, horizontal, in a top margin grown by its rows; the figure is at most ``max_height`` px; a legend
    elsewhere stays; the figure it was made from is left as it was."""
    from geometry.plotting import finish, presented, scaled
    from geometry.plotting.layout import LEGEND_LINE_PX

    def figure(legend: dict, n: int = 3, name: str = "trace") -> go.Figure:
        return finish(
            go.Figure(
                [go.Scatter(x=[0, 1], y=[i, 0], name=f"{name} {i}") for i in range(n)],
                layout=dict(title="a title", height=700, xaxis=dict(title="x"), legend=legend, margin=dict(b=130)),
            )
        )

    fig = figure(dict(orientation="h", y=-0.25, x=0))
    before = fig.to_plotly_json()
    f = 1.5
    big, plain = presented(fig, f, max_height=500), scaled(fig, f)
    assert fig.to_plotly_json() == before
    assert (big.layout.legend.orientation, big.layout.legend.y, big.layout.legend.yanchor) == ("h", 1, "bottom")
    assert big.layout.margin.t == pytest.approx(plain.layout.margin.t + LEGEND_LINE_PX * f)  # one row of 3 entries
    assert big.layout.margin.b < plain.layout.margin.b  # the room the legend had below is given back
    assert big.layout.height == 500 and plain.layout.height > 500
    assert big.layout.font.size == plain.layout.font.size  # scaled as in scaled()
    # many long names wrap onto more rows: more room above the plot
    crowded = presented(figure(dict(orientation="h", y=-0.25), n=12, name="a rather long legend entry"), f)
    assert crowded.layout.margin.t > big.layout.margin.t
    assert crowded.layout.height == plain.layout.height  # no max_height: as tall as scaled() makes it
    # a legend above or beside the plot stays where it is; a figure shorter than max_height keeps its height
    top = presented(figure(dict(orientation="h", y=1.1)), f, max_height=5000)
    assert top.layout.legend.y == 1.1 and top.layout.margin.t == plain.layout.margin.t
    assert top.layout.height == plain.layout.height
    for bad in (0, -3):
        with pytest.raises(ValueError):
            presented(fig, f, max_height=bad)
