"""Progress reporting, one convention for the library, the app and the terminal.

Every long computation takes ``progress: ProgressFn | None`` and calls it as
``progress(fraction, message)`` with ``fraction`` in [0, 1] (never backwards within one call) and a
short human-readable message. The app maps it onto ``st.progress`` / a background job, the command
line onto :class:`geometry.cli.progress.ProgressBar`; :func:`stage` maps a sub-computation onto a
slice of a larger bar.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["ProgressFn", "no_progress", "stage"]

#: ``progress(fraction, message)``: fraction in [0, 1], message a short label.
ProgressFn = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A :data:`ProgressFn` that ignores every report."""


def stage(progress: ProgressFn | None, start: float, end: float, label: str = "") -> ProgressFn:
    """A :data:`ProgressFn` mapping [0, 1] onto [``start``, ``end``] of ``progress``.

    Non-finite or out-of-range fractions are clamped into [0, 1]; ``label`` (when given) prefixes
    each message as ``"label: message"``. ``progress=None`` gives :func:`no_progress`.
    """
    if progress is None:
        return no_progress
    span = float(end) - float(start)

    def callback(fraction: float, message: str = "") -> None:
        f = float(fraction) if isinstance(fraction, (int, float)) and math.isfinite(fraction) else 0.0
        text = f"{label}: {message}" if label and message else (label or message)
        progress(float(start) + span * min(max(f, 0.0), 1.0), text)

    return callback
