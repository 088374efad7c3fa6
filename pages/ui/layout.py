"""Layout helpers that keep pages legible from 800 px to wide screens (issue 14 item 4), and the one call
every page draws its charts with (:func:`chart`: the present mode's larger figures, issue 23 item 5)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from geometry.plotting import PRESENT_SCALE, scaled

from .tour import presenting


def chart(fig: go.Figure, where: DeltaGenerator | None = None, **kwargs: Any) -> Any:
    """Draw ``fig`` with ``st.plotly_chart`` (full width unless ``width`` is given) in ``where`` (a column, a
    container; default: the page). Every page's chart goes through here (tests/test_tour.py checks): in present
    mode (``?present=1``) the figure's fonts, markers, line widths and margins are scaled by
    :data:`geometry.plotting.PRESENT_SCALE` (:func:`geometry.plotting.scaled`), so on a projector the figures
    grow with the page's text. Returns what ``st.plotly_chart`` returns (the selection, with ``on_select``)."""
    kwargs.setdefault("width", "stretch")
    shown = scaled(fig, PRESENT_SCALE) if presenting() else fig
    return (where if where is not None else st).plotly_chart(shown, **kwargs)


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
