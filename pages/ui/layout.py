"""Layout helpers that keep pages legible from 800 px to wide screens (issue 14 item 4), and the one call
every page draws its charts with (:func:`chart`: the present mode's larger figures, issue 23 item 5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from geometry.plotting import PRESENT_SCALE, presented

from .tour import presenting


def figure_scale() -> float:
    """How much larger than normal the figures are drawn: :data:`geometry.plotting.PRESENT_SCALE` in present mode
    (``?present=1``, :func:`pages.ui.tour.presenting`), else 1. Plotly charts get it through :func:`chart`; the 2-D
    lab's canvas (``pages/ui/lab2d``) through its ``scale`` argument."""
    return float(PRESENT_SCALE) if presenting() else 1.0


#: present mode at 1280 × 800: the tallest a chart is drawn (px), so that below the tour's banner the whole figure —
#: title, legend, plot and axis titles — is on the first screen (a page may ask for less: ``chart(present_height=)``)
PRESENT_MAX_HEIGHT = 540


def chart(
    fig: go.Figure, where: DeltaGenerator | None = None, *, present_height: int | None = None, **kwargs: Any
) -> Any:
    """Draw ``fig`` with ``st.plotly_chart`` (full width unless ``width`` is given) in ``where`` (a column, a
    container; default: the page). Every page's chart goes through here (tests/test_tour.py checks): in present
    mode (``?present=1``) the figure's fonts, markers, line widths and margins are scaled by
    :data:`geometry.plotting.PRESENT_SCALE`, a legend below the plot moves above it, and the figure is at most
    ``present_height`` px tall (default :data:`PRESENT_MAX_HEIGHT`; :func:`geometry.plotting.presented`), so on a
    projector the figures grow with the page's text and fit the first screen. Returns what ``st.plotly_chart``
    returns (the selection, with ``on_select``)."""
    kwargs.setdefault("width", "stretch")
    if presenting():
        fig = presented(fig, PRESENT_SCALE, max_height=present_height or PRESENT_MAX_HEIGHT)
    return (where if where is not None else st).plotly_chart(fig, **kwargs)


def figure_first() -> DeltaGenerator | None:
    """In present mode (``?present=1``) an empty container at this point of the page, for the figure a tour step is
    about: a page draws that figure into it (``chart(fig, figure_first_slot)``), so the figure sits on the first
    screen ahead of the tables and text the page writes in between. None in the normal layout, where the figure
    stays where the page draws it (``chart(fig, None)`` draws in place)."""
    return st.container() if presenting() else None


@st.cache_resource(max_entries=64, show_spinner=False)
def _built_figure(key: str, _build: Callable[[], go.Figure]) -> go.Figure:
    return _build()


def cached_figure(key: str, build: Callable[[], go.Figure]) -> go.Figure:
    """``build()``, called once per ``key`` and kept (the 64 most recent, shared by every session), so a rerun
    that shows a figure it has shown before does not build it again (issue 20, item 2: building a section's
    Plotly figure was most of the Cross-sections script). ``key`` must name everything the figure is drawn
    from (the result's key, labels, a clicked point); the figure is shared, so nobody may change it afterwards:
    :func:`chart` and the downloads only read it (present mode scales a copy)."""
    return _built_figure(key, build)


def metric_row(items: Sequence[tuple[str, str] | tuple[str, str, str | None]]) -> None:
    """Draw ``(label, value[, help])`` metrics side by side, each as wide as its own text.

    Unlike ``st.columns``, a row that does not fit wraps onto the next line, so a value is never cut
    with an ellipsis ("-0.0…") on a narrow window. Keep labels short; put units and detail in help.
    """
    with st.container(horizontal=True, wrap=True, gap="medium"):
        for label, value, *rest in items:
            st.metric(label, value, help=rest[0] if rest else None, width="content")


class _MetricCell:
    """Stands in for a column of ``st.columns`` that only ever holds one ``.metric``."""

    def __init__(self, row) -> None:
        self._row = row

    def metric(self, label: str, value, **kwargs):
        kwargs.setdefault("width", "content")
        return self._row.metric(label, value, **kwargs)


def metric_columns(n: int) -> list[_MetricCell]:
    """A drop-in for ``st.columns(n)`` whose cells each get one ``.metric(...)`` call: the metrics go
    into one wrapping row (as :func:`metric_row`), in the order they are drawn."""
    row = st.container(horizontal=True, wrap=True, gap="medium")
    return [_MetricCell(row) for _ in range(n)]
