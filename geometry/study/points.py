"""Which points a study uses, and fingerprints of networks and data for cache keys.

One split for every study (issue 10): the app, the command line and ``docs/scripts/`` call
:func:`split_points` with a :class:`~geometry.study.settings.PointSplit`, so the same settings
give the same points everywhere.

* **Two splits** (a built-in dataset: train and test): estimation points = ``n_estimate``
  training images chosen by ``seed`` (sorted indices); held-out points = the first ``n_heldout``
  test images; noise points (ξ) = the first :data:`~geometry.study.settings.NOISE_POINTS` test
  images; UAP points = ``n_uap`` training images chosen by ``seed + 1``.
* **One split** (an uploaded dataset, or a command-line run without a training split): the images
  are permuted by ``seed``; the first half plays the training split and the second half the test
  split, with the same rules. The estimation points never depend on ``n_heldout``, so S_c is
  shared between pages whatever their held-out counts.

Cache keys hold *what* was computed on, never a display name: :func:`network_fingerprint` hashes
the network's tensors (parameters and buffers, normalisation included, in order, without their
names) with its input shape and pixel bounds, so the same weights loaded as a zoo network or as an
uploaded TorchScript file share every result; :func:`data_fingerprint` hashes the points' values.
"""

from __future__ import annotations

import hashlib
import weakref
from dataclasses import dataclass

import torch

from ..classifier import Classifier
from ..data import Dataset
from ..errors import InvalidInputError
from .settings import NOISE_POINTS, PointSplit

__all__ = ["StudyPoints", "choose_points", "split_points", "network_fingerprint", "data_fingerprint"]


def choose_points(n_total: int, n: int, *, random_state: int = 0) -> torch.Tensor:
    """``n`` distinct indices out of ``n_total``, chosen by ``random_state``, sorted.

    Raises
    ------
    InvalidInputError
        ``n`` not in [1, n_total].
    """
    if not 1 <= int(n) <= int(n_total):
        raise InvalidInputError(f"need between 1 and {n_total} points, got n = {n}")
    gen = torch.Generator().manual_seed(int(random_state))
    return torch.sort(torch.randperm(int(n_total), generator=gen)[: int(n)]).values


def data_fingerprint(xs: torch.Tensor) -> str:
    """SHA-256 (16 hex digits) of a batch of points: shape, dtype and values."""
    h = hashlib.sha256(f"{tuple(xs.shape)}|{xs.dtype}".encode())
    h.update(xs.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


_FINGERPRINTS: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()


def network_fingerprint(clf: Classifier) -> str:
    """SHA-256 (16 hex digits) of what defines the function x ↦ logits: every tensor of
    ``clf.network.state_dict()`` in order (dtype, shape, values; names left out, so a module
    wrapped for loading hashes like the original), the input shape and the pixel bounds.

    Memoised per network object (networks are frozen: parameters never change after loading).
    """
    net = clf.network
    cached = _FINGERPRINTS.get(net)
    if cached is not None:
        return cached
    h = hashlib.sha256(f"{tuple(clf.input_shape)}|{tuple(float(b) for b in clf.bounds)}".encode())
    for t in net.state_dict().values():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}|{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    key = h.hexdigest()[:16]
    _FINGERPRINTS[net] = key
    return key


@dataclass(frozen=True)
class StudyPoints:
    """The points of one study (pixel space, (N, C, H, W)).

    Attributes
    ----------
    estimate : (n_estimate, C, H, W) — S_c / S_f estimation points
    heldout : (n_heldout, C, H, W) — curvature and fooling-rate points
    noise : (≤ NOISE_POINTS, C, H, W) — points of the random-noise norm (ξ)
    uap : (n_uap, C, H, W) — UAP algorithm points (empty when n_uap = 0)
    estimate_key, heldout_key, noise_key, uap_key : str — :func:`data_fingerprint` of each
    split : PointSplit — as requested; ``n_*`` above may be smaller when the data holds fewer images
    source : str — how the points were chosen (for captions and reports)
    estimate_indices, heldout_indices : (n,) int64 — positions of those points in their dataset
        (the training split / the test split, or the one dataset)
    """

    estimate: torch.Tensor
    heldout: torch.Tensor
    noise: torch.Tensor
    uap: torch.Tensor
    estimate_key: str
    heldout_key: str
    noise_key: str
    uap_key: str
    split: PointSplit
    source: str
    estimate_indices: torch.Tensor
    heldout_indices: torch.Tensor


def split_points(test: Dataset, train: Dataset | None, split: PointSplit) -> StudyPoints:
    """The study's points (module docstring): ``train`` and ``test`` splits, or one dataset (``train=None``).

    Parameters
    ----------
    test : Dataset — the test split, or the only dataset
    train : Dataset or None — the training split
    split : PointSplit

    Returns
    -------
    StudyPoints

    Raises
    ------
    InvalidInputError
        a one-split dataset of fewer than 2 images.
    """
    seed = int(split.seed)
    if train is not None:
        est_idx = choose_points(len(train), min(split.n_estimate, len(train)), random_state=seed)
        estimate = train.images[est_idx]
        held_idx = torch.arange(min(split.n_heldout, len(test)))
        heldout = test.images[held_idx]
        noise = test.images[: min(NOISE_POINTS, len(test))]
        uap = (
            train.images[choose_points(len(train), min(split.n_uap, len(train)), random_state=seed + 1)]
            if split.n_uap
            else train.images[:0]
        )
        source = (
            f"{train.name}: {len(estimate)} training images chosen by seed {seed} (S_c, S_f); the first "
            f"{len(heldout)} test images (held out)"
        )
    else:
        n = len(test)
        if n < 2:
            raise InvalidInputError(f"a study needs at least 2 images, the dataset has {n}")
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        half = n // 2
        first, second = perm[:half], perm[half:]
        est_idx = torch.sort(first[: min(split.n_estimate, half)]).values
        estimate = test.images[est_idx]
        held_idx = second[: min(split.n_heldout, len(second))]
        heldout = test.images[held_idx]
        noise = test.images[second[: min(NOISE_POINTS, len(second))]]
        if split.n_uap:
            pick = torch.randperm(half, generator=torch.Generator().manual_seed(seed + 1))[: min(split.n_uap, half)]
            uap = test.images[torch.sort(first[pick]).values]
        else:
            uap = test.images[:0]
        source = (
            f"{test.name} (one split of {n} images, halves chosen by seed {seed}): {len(estimate)} images of "
            f"the first half (S_c, S_f); {len(heldout)} of the second half (held out)"
        )
    return StudyPoints(
        estimate=estimate,
        heldout=heldout,
        noise=noise,
        uap=uap,
        estimate_key=data_fingerprint(estimate),
        heldout_key=data_fingerprint(heldout),
        noise_key=data_fingerprint(noise),
        uap_key=data_fingerprint(uap),
        split=split,
        source=source,
        estimate_indices=est_idx,
        heldout_indices=held_idx,
    )
