"""Tracing never breaks another thread's training (issue 22, item 4).

torch.fx patches ``nn.Module.__call__`` for the whole process while it traces; on a live server a
background job training ``mnist-lenet-pgd`` died with ``NameError: module is not installed as a
submodule`` when another visitor opened Certified vs empirical (the Lipschitz bound traces the network).
The tracer of :mod:`geometry.lipschitz` now lets other threads' module calls through untouched.
"""

from __future__ import annotations

import dataclasses
import threading

import torch

from geometry import zoo
from geometry.data import load_dataset
from geometry.lipschitz import lipschitz_bound


def test_tracing_in_one_thread_while_another_trains(digits_lenet, one_thread):
    train = load_dataset("digits", split="train")
    entry = dataclasses.replace(zoo.ZOO["digits-lenet"], epochs=2)
    done = threading.Event()
    bounds: list[float] = []
    errors: list[BaseException] = []

    def trace() -> None:
        while not done.is_set():
            try:
                bounds.append(float(lipschitz_bound(digits_lenet, n_power=1).upper))
            except BaseException as exc:
                errors.append(exc)
                return

    tracer = threading.Thread(target=trace)
    tracer.start()
    try:
        model, _, _ = zoo.train_classifier(entry, train.images, train.labels, num_classes=10)
    finally:
        done.set()
        tracer.join()
    assert not errors, errors
    assert len(bounds) >= 2  # the traces overlapped the training (several of them, during 2 epochs)
    assert len(set(bounds)) == 1  # every trace of the frozen network gives the same bound
    assert all(torch.isfinite(p).all() for p in model.parameters())
