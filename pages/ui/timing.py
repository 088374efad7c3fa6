"""Server-side timing of script and fragment runs for the interaction benchmark (issue 14).

Off by default. With the environment variable ``ATLAS_TIMING`` set, every full script run (timed in
``app.py`` around ``nav.run()``) and every run of a fragment wrapped with :func:`timed` appends one
JSON line ``{"t": <unix start time, s>, "kind": "script" | "fragment:<name>", "page": <url path>,
"seconds": <wall time, s>}``: to standard error when ``ATLAS_TIMING=1``, else to the file it names.
``benchmarks/interaction.py`` reads these lines to report the script's run time per interaction.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import threading
import time

_LOCK = threading.Lock()
_RUNNING = threading.local()  # depth of the timed runs in progress on this thread (a script run's own fragments)


def enabled() -> bool:
    """Whether ``ATLAS_TIMING`` asks for timing lines."""
    return bool(os.environ.get("ATLAS_TIMING"))


def _write(record: dict) -> None:
    target = os.environ.get("ATLAS_TIMING", "")
    line = json.dumps(record) + "\n"
    with _LOCK:
        if target == "1":
            sys.stderr.write(line)
        else:
            with open(target, "a", encoding="utf-8") as fh:
                fh.write(line)


@contextlib.contextmanager
def run_timer(kind: str, page: str = ""):
    """Time the enclosed block (a script or fragment run) and log it if timing is on.

    Exceptions — including Streamlit's stop / rerun control flow — pass through; the run is logged
    anyway, since ``st.stop()`` ends a normal run. A timed block inside another one on the same thread (a
    fragment drawn by a full script run) is not logged: its time is already the enclosing run's, and the
    benchmark sums every line that started after a click."""
    depth = getattr(_RUNNING, "depth", 0)
    if not enabled() or depth:
        yield
        return
    t, start = time.time(), time.perf_counter()
    _RUNNING.depth = depth + 1
    try:
        yield
    finally:
        _RUNNING.depth = depth
        _write({"t": t, "kind": kind, "page": page, "seconds": time.perf_counter() - start})


def timed(name: str):
    """Decorator: log each call of a fragment function as ``fragment:<name>`` (when timing is on)."""

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            with run_timer(f"fragment:{name}"):
                return fn(*args, **kwargs)

        return inner

    return wrap
