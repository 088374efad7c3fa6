"""Argument checks shared across geometry/ (one place, one message for each mistake)."""

from __future__ import annotations

import math
import operator

import numpy as np
import torch

from .errors import InvalidInputError

__all__ = ["as_generator", "check_int", "check_norm"]


def as_generator(random_state) -> torch.Generator:
    """A ``torch.Generator`` from ``random_state``: an int seed, or a generator (used as is).

    Randomness in the atlas always goes through such a generator, never the global RNG (DESIGN §3).

    Raises
    ------
    InvalidInputError
        anything else (a bool, a float, None, a string).
    """
    if isinstance(random_state, torch.Generator):
        return random_state
    if isinstance(random_state, bool) or not isinstance(random_state, (int, np.integer)):
        raise InvalidInputError(f"random_state must be an int or a torch.Generator, got {random_state!r}")
    return torch.Generator().manual_seed(int(random_state))


def check_norm(norm) -> float:
    """The ℓp norm ``p`` as a float, 2.0 or inf.

    Raises
    ------
    InvalidInputError
        any other value.
    """
    if isinstance(norm, bool):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}")
    try:
        p = float(norm)
    except (TypeError, ValueError):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}") from None
    if p != 2.0 and not (math.isinf(p) and p > 0):
        raise InvalidInputError(f"norm must be 2 or inf, got {norm!r}")
    return p


def check_int(name: str, value, minimum: int) -> int:
    """``value`` as an int ≥ ``minimum`` (bools refused).

    Raises
    ------
    InvalidInputError
        not an integer, or below ``minimum``.
    """
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}, got {value!r}") from None
    if value < minimum:
        raise InvalidInputError(f"{name} must be an integer ≥ {minimum}, got {value}")
    return int(value)
