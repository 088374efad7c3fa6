"""The model zoo: named architectures with training recipes, trained on demand and cached on disk.

Nothing can be downloaded at run time, so every network of the atlas is trained here from a
recipe the first time it is asked for (seconds for ``digits-*``, about a minute for
``mnist-lenet``, a few minutes for ``cifar10-lenet`` on 2 CPU cores) and then read back from the
cache (:mod:`geometry.cache`, ``$BOUNDARY_ATLAS_CACHE``). The file name holds a hash of the
recipe, so a changed recipe retrains instead of reusing stale weights. Weights are stored as
``safetensors`` (no pickle), with the recipe and the measured test accuracy in its metadata and a
SHA-256 of both (:func:`geometry.cache.save_tensors`): a damaged file is deleted and retrained,
never loaded. Two processes that miss the same network train it once (a lock file next to it).

Training follows the paper (ICLR 2018, footnote 5): SGD with momentum 0.9, learning rate 0.01,
weight decay 1e-4; seeded (the global RNG is never touched).

Architectures (``lenet``, ``lenet-softplus``, ``mlp``, ``nin``) are those of :mod:`geometry.architectures`,
built by :func:`~geometry.architectures.build_architecture` with the entry's seed.

Every dataset also has a second seed of LeNet (``*-lenet-seed1``): same recipe, other
initialisation and data order, so that "two networks" comparisons have a same-architecture pair.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import lmt as _lmt  # noqa: F401  (registers the "lmt" regime of issue 12 in TRAINING_REGIMES)

# ARCHITECTURES, LeNet, MLP, NiN and build_architecture are re-exported: they lived here before geometry.architectures.
from .architectures import ARCHITECTURES, MLP, LeNet, NiN, build_architecture
from .cache import (
    DamagedCacheError,
    atomic_write,
    cache_dir,
    cache_key,
    discard_damaged,
    file_lock,
    load_tensors,
    save_tensors,
)
from .classifier import Classifier, make_classifier
from .errors import UnknownNameError
from .progress import ProgressFn
from .regimes import RegimeContext, check_regime

if TYPE_CHECKING:  # data/ is imported lazily (training only)
    from .data import Dataset

__all__ = [
    "ARCHITECTURES",
    "ZOO",
    "REGIME_FAMILIES",
    "ZooEntry",
    "LeNet",
    "MLP",
    "NiN",
    "build_architecture",
    "model_names",
    "load_model",
    "is_cached",
    "train_classifier",
]

_ZOO_FORMAT = 2  # 2: verified cache files (SHA-256 + format version); older files are simply a miss


# ---------------------------------------------------------------------------- recipes
@dataclass(frozen=True)
class ZooEntry:
    """A named network: dataset + architecture + training recipe (all that defines its weights)."""

    name: str
    dataset: str
    architecture: str
    arch_kwargs: dict = field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"  # "cosine" or "constant"
    augment: bool = False  # random crop (pad 4) + horizontal flip, for CIFAR-10
    seed: int = 0
    target_accuracy: float = 0.0
    description: str = ""
    # training regime (geometry.regimes.TRAINING_REGIMES) and its parameters; fine-tuning from another
    # entry's weights; "sgd" or "adam" (lr, weight_decay); robustness evaluation for the card (ℓ∞ ε).
    regime: str = "standard"
    regime_params: dict = field(default_factory=dict)
    init_from: str | None = None
    optimizer: str = "sgd"
    eval_eps: float | None = None

    def recipe(self) -> dict:
        """Everything that defines the trained weights (hashed into the cache key)."""
        return {
            "format": _ZOO_FORMAT,
            "dataset": self.dataset,
            "architecture": self.architecture,
            "arch_kwargs": self.arch_kwargs,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "momentum": self.momentum,
            "weight_decay": self.weight_decay,
            "lr_schedule": self.lr_schedule,
            "augment": self.augment,
            "seed": self.seed,
            # only when not the defaults, so that the standard entries keep their cache keys
            **({"regime": self.regime, "regime_params": self.regime_params} if self.regime != "standard" else {}),
            **({"init_from": ZOO[self.init_from].recipe()} if self.init_from else {}),
            **({"optimizer": self.optimizer} if self.optimizer != "sgd" else {}),
        }


_CIFAR_LENET = {"channels": (32, 64), "hidden": (256, 128)}

ZOO: dict[str, ZooEntry] = {
    e.name: e
    for e in [
        ZooEntry(
            "digits-lenet",
            "digits",
            "lenet",
            epochs=40,
            batch_size=32,
            target_accuracy=0.95,
            description="LeNet on scikit-learn's 8×8 digits (embedded, trains in seconds). The default.",
        ),
        ZooEntry(
            "digits-lenet-softplus",
            "digits",
            "lenet-softplus",
            epochs=40,
            batch_size=32,
            target_accuracy=0.95,
            description="Smooth twin (softplus) of digits-lenet: exact Hessians.",
        ),
        ZooEntry(
            "digits-mlp",
            "digits",
            "mlp",
            epochs=40,
            batch_size=32,
            target_accuracy=0.95,
            description="Two-hidden-layer ReLU MLP on 8×8 digits.",
        ),
        ZooEntry(
            "mnist-lenet",
            "mnist",
            "lenet",
            epochs=4,
            batch_size=64,
            target_accuracy=0.985,
            description="The paper's LeNet on MNIST.",
        ),
        ZooEntry(
            "mnist-lenet-softplus",
            "mnist",
            "lenet-softplus",
            epochs=4,
            batch_size=64,
            target_accuracy=0.98,
            description="Smooth twin (softplus) of mnist-lenet.",
        ),
        ZooEntry(
            "mnist-mlp",
            "mnist",
            "mlp",
            epochs=4,
            batch_size=64,
            target_accuracy=0.97,
            description="Two-hidden-layer ReLU MLP on MNIST.",
        ),
        ZooEntry(
            "cifar10-lenet",
            "cifar10",
            "lenet",
            arch_kwargs=_CIFAR_LENET,
            epochs=10,
            batch_size=64,
            target_accuracy=0.65,
            description="The paper's LeNet (widened: 32/64 conv channels) on CIFAR-10.",
        ),
        ZooEntry(
            "digits-lenet-seed1",
            "digits",
            "lenet",
            epochs=40,
            batch_size=32,
            seed=1,
            target_accuracy=0.95,
            description="digits-lenet with another seed (initialisation and data order).",
        ),
        ZooEntry(
            "digits-nin",
            "digits",
            "nin",
            epochs=20,
            batch_size=32,
            lr=0.05,
            target_accuracy=0.95,
            description="NiN-style all-convolutional net with BatchNorm on 8×8 digits, trained with lr 0.05.",
        ),
        ZooEntry(
            "mnist-lenet-seed1",
            "mnist",
            "lenet",
            epochs=4,
            batch_size=64,
            seed=1,
            target_accuracy=0.985,
            description="mnist-lenet with another seed (initialisation and data order).",
        ),
        ZooEntry(
            "mnist-nin",
            "mnist",
            "nin",
            epochs=2,
            batch_size=64,
            lr=0.05,
            target_accuracy=0.985,
            description="NiN-style all-convolutional net with BatchNorm on MNIST, trained with lr 0.05.",
        ),
        ZooEntry(
            "cifar10-lenet-seed1",
            "cifar10",
            "lenet",
            arch_kwargs=_CIFAR_LENET,
            epochs=10,
            batch_size=64,
            seed=1,
            target_accuracy=0.65,
            description="cifar10-lenet with another seed (initialisation and data order).",
        ),
        ZooEntry(
            "cifar10-nin",
            "cifar10",
            "nin",
            epochs=10,
            batch_size=64,
            lr=0.05,
            augment=True,
            target_accuracy=0.65,
            description="NiN-style all-convolutional net with BatchNorm on CIFAR-10, trained with lr 0.05.",
        ),
        ZooEntry(
            "cifar10-lenet-softplus",
            "cifar10",
            "lenet-softplus",
            arch_kwargs=_CIFAR_LENET,
            epochs=10,
            batch_size=64,
            target_accuracy=0.6,
            description="Smooth twin (softplus) of cifar10-lenet.",
        ),
        # ---- robust training regimes (issue 11, DESIGN §7); the standard member is digits-lenet / mnist-lenet
        ZooEntry(
            "digits-lenet-pgd",
            "digits",
            "lenet",
            epochs=30,
            batch_size=32,
            regime="pgd-at",
            regime_params={"eps": 0.1, "steps": 5},
            target_accuracy=0.85,
            description="digits-lenet adversarially trained (Madry PGD-AT, ℓ∞ ε = 0.1, 5 steps).",
        ),
        ZooEntry(
            "digits-lenet-fgsm",
            "digits",
            "lenet",
            epochs=30,
            batch_size=32,
            regime="fgsm-at",
            regime_params={"eps": 0.1},
            target_accuracy=0.85,
            description="digits-lenet with fast adversarial training (FGSM, random start, step 1.25ε, ε = 0.1).",
        ),
        ZooEntry(
            "digits-lenet-cure",
            "digits",
            "lenet",
            epochs=10,
            batch_size=32,
            lr=1e-3,
            weight_decay=0.0,
            optimizer="adam",
            init_from="digits-lenet",
            regime="cure",
            regime_params={"lambda_": 4.0, "h": 0.5, "h_start": 0.1},
            eval_eps=0.1,
            target_accuracy=0.85,
            description="digits-lenet fine-tuned with CURE (λ = 4, h from 0.1 to 0.5, Adam 1e-3, 10 epochs).",
        ),
        ZooEntry(
            "mnist-lenet-pgd",
            "mnist",
            "lenet",
            epochs=6,
            batch_size=64,
            regime="pgd-at",
            regime_params={"eps": 0.3, "steps": 10, "step_size": 0.075, "eps_ramp_epochs": 3},
            target_accuracy=0.95,
            description="mnist-lenet adversarially trained (Madry PGD-AT, ℓ∞ ε = 0.3 reached after a 3-epoch "
            "warm-up, 10 steps of 0.075·ε/0.3, 6 epochs).",
        ),
        ZooEntry(
            "mnist-lenet-fgsm",
            "mnist",
            "lenet",
            epochs=4,
            batch_size=64,
            regime="fgsm-at",
            regime_params={"eps": 0.3},
            target_accuracy=0.95,
            description="mnist-lenet with fast adversarial training (FGSM, random start, step 1.25ε, ε = 0.3).",
        ),
        ZooEntry(
            "mnist-lenet-cure",
            "mnist",
            "lenet",
            epochs=2,
            batch_size=64,
            lr=1e-4,
            weight_decay=0.0,
            optimizer="adam",
            init_from="mnist-lenet",
            regime="cure",
            regime_params={"lambda_": 4.0, "h": 1.5, "h_start": 0.1},
            eval_eps=0.3,
            target_accuracy=0.95,
            description="mnist-lenet fine-tuned with CURE (λ = 4, h from 0.1 to 1.5, Adam 1e-4, as the paper's code).",
        ),
        # ---- Lipschitz-margin training (issue 12, DESIGN §8; geometry.lmt): c = target ℓ2 margin in pixels
        ZooEntry(
            "digits-lenet-lmt",
            "digits",
            "lenet",
            epochs=40,
            batch_size=32,
            regime="lmt",
            regime_params={"c": 0.03},
            target_accuracy=0.95,
            description="digits-lenet with Lipschitz-margin training (LMT, c = 0.03; c ≥ 0.05 collapses to one class).",
        ),
        ZooEntry(
            "mnist-lenet-lmt",
            "mnist",
            "lenet",
            epochs=4,
            batch_size=64,
            regime="lmt",
            regime_params={"c": 0.1},
            target_accuracy=0.95,
            description="mnist-lenet with Lipschitz-margin training (LMT, c = 0.1).",
        ),
    ]
}

#: The robust-training families: architecture name → regime → zoo entry (issue 11).
REGIME_FAMILIES: dict[str, dict[str, str]] = {
    "digits-lenet": {
        "standard": "digits-lenet",
        "pgd-at": "digits-lenet-pgd",
        "fgsm-at": "digits-lenet-fgsm",
        "cure": "digits-lenet-cure",
    },
    "mnist-lenet": {
        "standard": "mnist-lenet",
        "pgd-at": "mnist-lenet-pgd",
        "fgsm-at": "mnist-lenet-fgsm",
        "cure": "mnist-lenet-cure",
    },
}


def model_names(dataset: str | None = None) -> list[str]:
    """Names of the zoo's networks (optionally only those for ``dataset``)."""
    return [n for n, e in ZOO.items() if dataset is None or e.dataset == dataset]


def _entry(name: str) -> ZooEntry:
    if name not in ZOO:
        raise UnknownNameError(f"unknown model {name!r}; the zoo has {', '.join(ZOO)}")
    return ZOO[name]


def _model_path(entry: ZooEntry) -> Path:
    return cache_dir("models") / f"{entry.name}-{cache_key(entry.recipe())}.safetensors"


def _read_cached(entry: ZooEntry, path: Path) -> tuple[dict, dict] | None:
    """(state_dict, card) of the verified cache file, or None: missing, or damaged (then deleted, with a
    :class:`geometry.cache.DamagedCacheWarning`)."""
    got = load_tensors(path, version=_ZOO_FORMAT)
    if got is None:
        return None
    state, meta = got
    try:
        card = json.loads(meta["card"])
        if (
            not isinstance(card, dict)
            or not {"input_shape", "class_names", "mean", "std", "test_accuracy"} <= card.keys()
        ):
            raise ValueError("missing fields")
    except (KeyError, TypeError, ValueError) as exc:
        discard_damaged(path, f"bad model card: {type(exc).__name__}: {exc}")
        return None
    return state, card


def is_cached(name: str) -> bool:
    """True if the zoo network ``name`` is trained and its cache file is intact (loading it is then fast).

    Reads and verifies the file (SHA-256, a few MB at most); a damaged file is deleted, so it reports
    False and the next :func:`load_model` retrains.
    """
    entry = _entry(name)
    return _read_cached(entry, _model_path(entry)) is not None


def card(name: str) -> dict | None:
    """The model card of the trained zoo network ``name`` (input shape, classes, test accuracy, ``train_seconds``:
    the wall-clock seconds its training took on the machine that trained it, …), or None when it is not trained
    (or its file is damaged: then deleted, as :func:`is_cached` does). Raises UnknownNameError for an unknown name."""
    entry = _entry(name)
    got = _read_cached(entry, _model_path(entry))
    return None if got is None else got[1]


# ---------------------------------------------------------------------------- training
def _augment(xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding and random horizontal flip, per image."""
    n, _, h, w = xb.shape
    padded = torch.nn.functional.pad(xb, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen)
    dy = torch.randint(0, 9, (n,), generator=gen)
    rows = dy[:, None] + torch.arange(h)[None, :]  # (n, h)
    cols = dx[:, None] + torch.arange(w)[None, :]  # (n, w)
    idx_n = torch.arange(n)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    flip = torch.rand(n, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out.contiguous()


def train_classifier(
    entry: ZooEntry,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    *,
    num_classes: int,
    progress: ProgressFn | None = None,
) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    """Train ``entry``'s architecture on pixel-space images; returns (model, mean, std).

    The per-channel mean/std of the training images become the classifier's normalisation.
    ``progress(fraction, message)`` is called after every few batches.
    """
    gen = torch.Generator().manual_seed(entry.seed)
    # Tiny inputs (8×8 digits) train several times faster on one thread: the per-batch work is too
    # small to amortise thread synchronisation, and on a busy 2-core machine extra threads thrash.
    threads_before = torch.get_num_threads()
    if math.prod(train_images.shape[1:]) < 256:
        torch.set_num_threads(1)
    try:
        return _train(entry, train_images, train_labels, gen, num_classes=num_classes, progress=progress)
    finally:
        torch.set_num_threads(threads_before)


def _train(
    entry: ZooEntry,
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    gen: torch.Generator,
    *,
    num_classes: int,
    progress: ProgressFn | None,
) -> tuple[nn.Module, tuple[float, ...], tuple[float, ...]]:
    mean = tuple(float(v) for v in train_images.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in train_images.std(dim=(0, 2, 3)))
    mean_t = torch.tensor(mean).reshape(1, -1, 1, 1)
    std_t = torch.tensor(std).reshape(1, -1, 1, 1)
    model = build_architecture(
        entry.architecture,
        input_shape=train_images.shape[1:],
        num_classes=num_classes,
        random_state=entry.seed,
        **entry.arch_kwargs,
    )
    if entry.init_from:  # fine-tuning (CURE): start from the other entry's trained weights
        model.load_state_dict(load_model(entry.init_from, progress=None).model.state_dict())
        for p in model.parameters():
            p.requires_grad_(True)
    if entry.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=entry.lr, momentum=entry.momentum, weight_decay=entry.weight_decay)
    regime_step = check_regime(entry.regime, entry.regime_params)

    def network(x: torch.Tensor) -> torch.Tensor:  # pixels → logits, the regimes' view
        return model((x - mean_t) / std_t)

    n = len(train_images)
    steps_per_epoch = math.ceil(n / entry.batch_size)
    total = entry.epochs * steps_per_epoch
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        if entry.lr_schedule == "cosine"
        else torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    )
    model.train()
    step = 0
    report_every = max(1, total // 200)
    checkpoint = _checkpoint_path(entry, n)
    first = _resume(checkpoint, model, opt, sched, gen)
    if first and progress is not None:
        progress(first / entry.epochs, f"training {entry.name}: resumed after epoch {first}/{entry.epochs}")
    step = first * steps_per_epoch
    for epoch in range(first, entry.epochs):
        perm = torch.randperm(n, generator=gen)
        running = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * entry.batch_size : (i + 1) * entry.batch_size]
            xb = train_images[idx]
            if entry.augment:
                xb = _augment(xb, gen)
            ctx = RegimeContext(network, model, (0.0, 1.0), entry.regime_params, epoch, entry.epochs, gen)
            loss = regime_step(ctx, xb, train_labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            running = 0.9 * running + 0.1 * loss.item() if i else loss.item()
            if progress is not None and step % report_every == 0:
                progress(step / total, f"training {entry.name}: epoch {epoch + 1}/{entry.epochs}, loss {running:.3f}")
        if epoch + 1 < entry.epochs:
            _save_checkpoint(checkpoint, epoch + 1, model, opt, sched, gen)
    model.eval()
    return model, mean, std


#: Version of the per-epoch training checkpoints (part of their name: another version is a miss).
_CHECKPOINT_FORMAT = 1


def _checkpoint_path(entry: ZooEntry, n_train: int) -> Path:
    """Where ``entry``'s training keeps its per-epoch checkpoint: keyed by its name, recipe and data size."""
    key = cache_key({"name": entry.name, "recipe": entry.recipe(), "n": int(n_train), "v": _CHECKPOINT_FORMAT})
    return cache_dir("checkpoints") / f"{entry.name}-{key}.pt"


def _save_checkpoint(
    path: Path, epochs_done: int, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator
) -> None:
    """Atomically write the training state after ``epochs_done`` epochs (weights, optimiser, schedule, the
    data order's generator): a training that dies resumes from here, not from epoch 1 (issue 22, item 4).
    An unwritable cache only costs the resume."""
    state = {
        "epochs_done": int(epochs_done),
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "generator": gen.get_state(),
    }
    with contextlib.suppress(OSError):
        atomic_write(path, lambda tmp: torch.save(state, tmp))


def _resume(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched: Any, gen: torch.Generator) -> int:
    """Load the checkpoint at ``path`` into the training state; returns the epochs it had done (0: none).

    Read with ``weights_only=True`` (tensors and containers only). A damaged or unfitting checkpoint is
    deleted and training starts from epoch 1."""
    if not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        gen.set_state(state["generator"])
        return int(state["epochs_done"])
    except Exception as exc:  # truncated, unpickling refused, keys or shapes that do not fit: start afresh
        discard_damaged(path, f"training checkpoint unusable: {type(exc).__name__}: {exc}")
        return 0


def discard_checkpoint(entry: ZooEntry, n_train: int) -> None:
    """Delete ``entry``'s training checkpoint (the trained network is cached: it is no longer needed)."""
    with contextlib.suppress(OSError):
        _checkpoint_path(entry, n_train).unlink()


def _classifier(
    entry: ZooEntry,
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    test_accuracy: float | None,
    extra: dict[str, Any],
) -> Classifier:
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "architecture": entry.architecture,
        "dataset": entry.dataset,
        "description": entry.description,
        "parameters": n_params,
        "recipe": entry.recipe(),
        "target_accuracy": entry.target_accuracy,
        **extra,
    }
    return make_classifier(
        model,
        input_shape=input_shape,
        class_names=class_names,
        name=entry.name,
        mean=mean,
        std=std,
        test_accuracy=test_accuracy,
        info=info,
    )


def load_model(
    name: str,
    *,
    root: str | Path | None = None,
    progress: ProgressFn | None = None,
    train: bool = True,
) -> Classifier:
    """The zoo network ``name`` as a frozen :class:`Classifier`, trained on first use.

    Parameters
    ----------
    name : a key of :data:`ZOO` (``model_names()``), e.g. ``"digits-lenet"`` (the default of the app).
    root : data root for the training/test data (else ``$BOUNDARY_ATLAS_DATA``; digits needs none).
    progress : ``progress(fraction in [0, 1], message)``, called while training and evaluating.
    train : if False and the network is not cached, raise instead of training.

    Returns
    -------
    Classifier with ``test_accuracy`` (fraction on the dataset's test split) and ``info`` (architecture,
    dataset, recipe, parameter count, training time in seconds).

    Raises
    ------
    UnknownNameError
        unknown model name.
    DatasetNotFoundError
        its dataset is not available (see :func:`geometry.data.load_dataset`).
    FileNotFoundError
        ``train=False`` and the network is not cached yet.
    DamagedCacheError
        (a ``FileNotFoundError`` and an ``AtlasError``) ``train=False`` and its cache file was damaged;
        the file has been removed and the next call with ``train=True`` retrains it.

    A damaged cache file (truncated, failing its SHA-256, no metadata, old format, NaN weights) is
    deleted with a :class:`geometry.cache.DamagedCacheWarning` and retrained. Concurrent callers
    (threads or processes) that miss the same network wait for one training instead of each training.
    """
    entry = _entry(name)
    path = _model_path(entry)
    existed = path.exists()
    clf = _from_cache(entry, path, progress)
    if clf is not None:
        return clf
    if not train:
        if existed:
            raise DamagedCacheError(
                f"the cached file of {name} ({path}) was damaged and has been removed; "
                "it will be retrained on next use (load it with train=True)"
            )
        raise FileNotFoundError(f"{name} is not trained yet (expected {path})")
    report = progress or (lambda f, m: None)
    with file_lock(path, on_wait=lambda: report(0.0, f"waiting for another process that is training {name}")):
        clf = _from_cache(entry, path, progress)  # the other process may have finished it meanwhile
        if clf is not None:
            return clf
        return _train_and_cache(entry, path, root=root, report=report)


def _from_cache(entry: ZooEntry, path: Path, progress: ProgressFn | None) -> Classifier | None:
    """The cached network as a Classifier, or None (missing, or damaged and deleted)."""
    got = _read_cached(entry, path)
    if got is None:
        return None
    state, card = got
    model = build_architecture(
        entry.architecture, input_shape=card["input_shape"], num_classes=len(card["class_names"]), **entry.arch_kwargs
    )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing / unexpected keys or wrong shapes
        discard_damaged(path, f"weights do not fit {entry.architecture}: {exc}")
        return None
    if progress is not None:
        progress(1.0, f"{entry.name} loaded from cache")
    return _classifier(
        entry,
        model,
        input_shape=card["input_shape"],
        class_names=card["class_names"],
        mean=card["mean"],
        std=card["std"],
        test_accuracy=card["test_accuracy"],
        extra={
            "train_seconds": card.get("train_seconds"),
            "cache_file": str(path),
            "robustness": card.get("robustness"),
        },
    )


_EVAL_EPS = {"digits": 0.1, "mnist": 0.3, "cifar10": 8 / 255}  # ℓ∞ radii of the robustness card
_EVAL_POINTS = 200


def _wants_robustness(entry: ZooEntry) -> bool:
    return entry.regime != "standard" or entry.eval_eps is not None


def _robustness_card(entry: ZooEntry, clf: Classifier, test_set: Dataset, report: ProgressFn) -> dict:
    """Clean / PGD accuracy at the entry's ε, the AutoAttack-style ensemble's robust accuracy beside it, and
    DeepFool ρ_adv on the first test points (issues 11, 21).

    PGD: ℓ∞, 20 steps, step 2.5ε/20, one random start; ensemble: APGD-CE, APGD-T, Square
    (:data:`geometry.autoattack.DEFAULT_ENSEMBLE`, :func:`geometry.autoattack.autoattack`) at the same ε on the
    same points, per point the strongest; ρ_adv: ℓ2 DeepFool (unconstrained, as in the DeepFool paper's
    Table 1) over the converged points. The total training cost includes the fine-tuned-from entry's.
    Cards written before issue 21 have no ``ensemble_accuracy`` (read as missing, never as PGD's).
    """
    from .attacks import pgd
    from .autoattack import DEFAULT_ENSEMBLE, autoattack
    from .deepfool import deepfool, rho_adv

    eps = (
        entry.eval_eps
        if entry.eval_eps is not None
        else float(entry.regime_params.get("eps", _EVAL_EPS.get(entry.dataset, 0.1)))
    )
    x, y = test_set.images[:_EVAL_POINTS], test_set.labels[:_EVAL_POINTS]
    report(0.97, f"robustness of {entry.name}: PGD at ε = {eps:g} on {len(x)} test points")
    threads_before = torch.get_num_threads()
    if clf.d < 256:  # as in training: tiny inputs run several times faster on one thread
        torch.set_num_threads(1)
    try:
        adv = pgd(clf, x, y, eps=eps, steps=20, random_state=entry.seed)
        report(0.975, f"robustness of {entry.name}: the ensemble ({', '.join(DEFAULT_ENSEMBLE)}) at ε = {eps:g}")
        ens = autoattack(clf, x, y, eps=eps, random_state=entry.seed) if clf.num_classes >= 4 else None
        report(0.98, f"robustness of {entry.name}: DeepFool ρ_adv")
        df = deepfool(clf, x)
    finally:
        torch.set_num_threads(threads_before)
    base = 0.0
    if entry.init_from:
        base = float(load_model(entry.init_from).info.get("train_seconds") or 0.0)
    return {
        "eps": eps,
        "norm": "inf",
        "points": len(x),
        "clean_accuracy": clf.accuracy(x, y),
        "pgd_accuracy": float((~adv.success).float().mean()),
        "pgd_steps": 20,
        "ensemble_accuracy": ens.robust_accuracy if ens is not None else None,
        "ensemble_attacks": list(ens.attacks) if ens is not None else [],
        "rho_adv": rho_adv(df, x),
        "deepfool_converged": float(df.converged.float().mean()),
        "base_train_seconds": base,
    }


def _train_and_cache(entry: ZooEntry, path: Path, *, root: str | os.PathLike | None, report: ProgressFn) -> Classifier:
    """Train ``entry``, measure its test accuracy, write the verified cache file at ``path``."""
    from .data import load_dataset

    name = entry.name
    report(0.0, f"loading {entry.dataset} for {name}")
    train_set = load_dataset(entry.dataset, root=root, split="train")
    test_set = load_dataset(entry.dataset, root=root, split="test")
    t0 = time.perf_counter()
    model, mean, std = train_classifier(
        entry,
        train_set.images,
        train_set.labels,
        num_classes=len(train_set.class_names),
        progress=lambda f, m: report(0.02 + 0.93 * f, m),
    )
    train_seconds = time.perf_counter() - t0
    report(0.96, f"evaluating {name} on the {entry.dataset} test split")
    clf = _classifier(
        entry,
        model,
        input_shape=tuple(train_set.images.shape[1:]),
        class_names=train_set.class_names,
        mean=mean,
        std=std,
        test_accuracy=None,
        extra={},
    )
    acc = clf.accuracy(test_set.images, test_set.labels)
    robustness = _robustness_card(entry, clf, test_set, report) if _wants_robustness(entry) else {}
    if entry.regime == "lmt":  # issue 12: certified accuracy at a few ℓ2 radii
        from .certify import certified_card

        robustness["certified"] = certified_card(clf, test_set.images[:_EVAL_POINTS], test_set.labels[:_EVAL_POINTS])
    card: dict[str, Any] = {
        "name": name,
        "input_shape": list(train_set.images.shape[1:]),
        "class_names": list(train_set.class_names),
        "mean": list(mean),
        "std": list(std),
        "test_accuracy": acc,
        "train_seconds": train_seconds,
        "train_source": train_set.source,
        "recipe": entry.recipe(),
        **({"robustness": robustness} if robustness else {}),
    }
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_tensors(path, state, {"card": json.dumps(card)}, version=_ZOO_FORMAT)
    discard_checkpoint(entry, len(train_set.images))
    report(1.0, f"{name} trained: test accuracy {acc:.1%}")
    return _classifier(
        entry,
        model,
        input_shape=card["input_shape"],
        class_names=card["class_names"],
        mean=mean,
        std=std,
        test_accuracy=acc,
        extra={"train_seconds": train_seconds, "cache_file": str(path), "robustness": robustness or None},
    )
