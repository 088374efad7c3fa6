"""The terminal's progress bar: a :data:`geometry.progress.ProgressFn` drawn on stderr.

``[#####.....]  50% curvature study: S_c: Lanczos 12/40``. On a terminal the line is redrawn in place
(at most every ``min_interval`` seconds); otherwise (a log, a pipe, a test's captured stderr) one line
is printed whenever the step label (the message up to its first ``": "``) changes or the percentage
passes another ``log_step`` percent. Sub-computations take :meth:`ProgressBar.stage` (=
:func:`geometry.progress.stage` over the bar).
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ..progress import ProgressFn, stage

__all__ = ["ProgressBar"]


class ProgressBar:
    """A plain-text progress bar on a stream (stderr by default); call it as ``bar(fraction, message)``.

    Parameters
    ----------
    stream : text stream (default ``sys.stderr``)
    width : int — characters of the bar
    enabled : bool — False: draws nothing
    min_interval : float — seconds between redraws of the same step on a terminal
    log_step : int — percent between two lines of the same step off a terminal
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        width: int = 20,
        enabled: bool = True,
        min_interval: float = 0.1,
        log_step: int = 10,
    ) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        self.width = int(width)
        self.enabled = bool(enabled)
        self.min_interval = float(min_interval)
        self.log_step = int(log_step)
        try:
            self.tty = bool(self.stream.isatty())
        except Exception:
            self.tty = False
        self._fraction = 0.0
        self._last_time = 0.0
        self._last_label: str | None = None
        self._last_logged = -100
        self._line_len = 0
        self._open = False

    def render(self, fraction: float, text: str) -> str:
        """One line of the bar: ``[####......]  40% text``."""
        f = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
        k = round(f * self.width)
        return f"[{'#' * k}{'.' * (self.width - k)}] {round(100 * f):3d}% {text}"

    def __call__(self, fraction: float, message: str = "") -> None:
        """The :data:`~geometry.progress.ProgressFn`: the step label is ``message`` up to its first ``": "``."""
        label, _, detail = str(message or "").partition(": ")
        self.update(fraction, label, detail)

    def update(self, fraction: float, label: str, detail: str = "") -> None:
        """Show ``fraction`` ∈ [0, 1] (never backwards) with the step ``label`` and an optional ``detail``."""
        if not self.enabled:
            return
        fraction = (
            max(self._fraction, min(max(float(fraction), 0.0), 1.0)) if math.isfinite(fraction) else self._fraction
        )
        self._fraction = fraction
        text = detail if detail and label in detail else (f"{label}: {detail}" if detail else label)
        pct = round(100 * fraction)
        now = time.monotonic()
        if self.tty:
            if label == self._last_label and pct < 100 and now - self._last_time < self.min_interval:
                return
            line = self.render(fraction, text)
            if len(line) > 119:
                line = line[:118] + "…"
            self.stream.write("\r" + line.ljust(self._line_len))
            self._line_len = len(line)
            self._open = True
        else:
            if (
                label == self._last_label
                and pct < self._last_logged + self.log_step
                and not (pct == 100 and self._last_logged < 100)
            ):
                return
            self.stream.write(self.render(fraction, text) + "\n")
            self._last_logged = pct
        self._last_label = label
        self._last_time = now
        self.stream.flush()

    def stage(self, start: float, end: float, label: str) -> ProgressFn:
        """A :data:`~geometry.progress.ProgressFn` mapping [0, 1] onto [start, end] of the bar, its messages
        prefixed ``"label: "`` (:func:`geometry.progress.stage`); shows ``label`` at ``start`` at once."""
        self.update(start, label)
        return stage(self, start, end, label)

    def close(self) -> None:
        """End the bar's line (on a terminal)."""
        if self.enabled and self.tty and self._open:
            self.stream.write("\n")
            self.stream.flush()
        self._open = False
