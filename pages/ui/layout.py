"""Layout helpers that keep pages legible from 800 px to wide screens (issue 14 item 4)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st


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
