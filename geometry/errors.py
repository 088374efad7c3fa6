"""Errors raised by Boundary Atlas.

Every error a user can cause (a wrong name, a missing dataset, a bad file, a wrong shape, NaN
inputs) is an :class:`AtlasError`. The app and the command line catch ``AtlasError`` and show its
message instead of a traceback; anything else is a bug. Messages say what was expected and what
was given. :func:`first_line` turns a caught exception into the one line such a message quotes.
"""

from __future__ import annotations

import re

__all__ = [
    "AtlasError",
    "UnknownNameError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "ModelLoadError",
    "first_line",
]


class AtlasError(ValueError):
    """Base class of every user-facing error (a ``ValueError``)."""


class UnknownNameError(AtlasError, KeyError):
    """A dataset, model or option name that does not exist. The message lists the valid names."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(AtlasError, FileNotFoundError):
    """A dataset's files are missing. The message says where we looked and how to provide them."""


class InvalidInputError(AtlasError):
    """An input has the wrong shape, dtype, range, or contains NaN / inf."""


class ModelLoadError(AtlasError):
    """A model file could not be loaded safely (corrupt, pickled code, wrong shapes, NaN outputs)."""


def first_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: first line`` of an exception, for quoting inside an error message (at most ``limit`` characters).

    For a TorchScript interpreter traceback the last line (the model's own message) is used; the
    advice PyTorch appends to miniz and ``weights_only`` errors is cut, and a ``weights_only`` refusal
    is reduced to the Python global it refused.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if text.startswith("The following operation failed in the TorchScript interpreter") and len(lines) > 1:
        text = lines[-1]  # "RuntimeError: <the model's own message>"
    text = re.split(r" This is an internal miniz error| In PyTorch 2\.6, ", text)[0].rstrip(".")
    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if text.startswith("Weights only load failed") and m:
        text = f"weights_only=True refuses the Python global {m.group(1)}"
    if not re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", text):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
