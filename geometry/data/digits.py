"""``digits``: scikit-learn's ``load_digits``, the embedded default.

1,797 real 8×8 handwritten digits (UCI optdigits, values 0..16, divided by 16). It ships inside
scikit-learn, so it is always available. Split: a fixed permutation
(``numpy.random.default_rng(0)``), first 1,397 images = ``train``, last 400 = ``test`` (not
stratified: 30–51 test images per class).
"""

from __future__ import annotations

import numpy as np
import torch

from .common import Dataset

_DIGITS_SEED = 0
_DIGITS_N_TEST = 400


def _load_digits(split: str, limit: int | None) -> Dataset:
    import sklearn
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.asarray(bunch.images, dtype=np.float64)  # (1797, 8, 8), integers 0..16
    labels = np.asarray(bunch.target, dtype=np.int64)
    n = images.shape[0]
    perm = np.random.default_rng(_DIGITS_SEED).permutation(n)
    idx = perm[: n - _DIGITS_N_TEST] if split == "train" else perm[n - _DIGITS_N_TEST :]
    if limit is not None:
        idx = idx[:limit]
    x = torch.from_numpy((images[idx] / 16.0).astype(np.float32)).unsqueeze(1)
    return Dataset(
        images=x.contiguous(),
        labels=torch.from_numpy(labels[idx].copy()),
        class_names=tuple(str(i) for i in range(10)),
        name="digits",
        split=split,
        source=(
            f"scikit-learn {sklearn.__version__} load_digits (UCI optdigits, 8×8, values 0..16 / 16); "
            f"{split} = {'first' if split == 'train' else 'last'} "
            f"{n - _DIGITS_N_TEST if split == 'train' else _DIGITS_N_TEST} of a seed-{_DIGITS_SEED} permutation"
        ),
    )
