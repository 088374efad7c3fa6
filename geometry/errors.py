"""Errors raised by Boundary Atlas.

Every error a user can cause (a wrong name, a missing dataset, a bad file, a wrong shape, NaN
inputs) is an :class:`AtlasError`. The app and the command line catch ``AtlasError`` and show its
message instead of a traceback; anything else is a bug. Messages say what was expected and what
was given.
"""

from __future__ import annotations

__all__ = [
    "AtlasError",
    "UnknownNameError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "ModelLoadError",
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
