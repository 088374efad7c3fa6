"""A training that dies resumes from its last epoch, not from epoch 1 (issue 22, item 4).

On a live server a 15-minute background training died and the next visit restarted it from epoch 1.
Zoo training now writes a per-epoch checkpoint into the cache (atomically; read back with
``weights_only=True``); a training interrupted during epoch k + 1 resumes after epoch k and ends with
the very weights of an uninterrupted run (the data order's generator is part of the checkpoint).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from geometry import zoo
from geometry.data import load_dataset


class _Stop(Exception):
    """Stands for a job that died (cancelled, or the process stopped) during an epoch."""


def _epochs(messages: list[str]) -> set[int]:
    return {int(m.split("epoch ")[1].split("/")[0]) for m in messages if ": epoch " in m}


def test_an_interrupted_training_resumes_after_its_last_finished_epoch():
    entry = dataclasses.replace(zoo.ZOO["digits-mlp"], epochs=3)
    train = load_dataset("digits", split="train")
    args = (entry, train.images, train.labels)
    zoo.discard_checkpoint(entry, len(train.images))
    first: list[str] = []

    def dies_in_epoch_3(fraction: float, message: str) -> None:
        first.append(message)
        if "epoch 3/3" in message:
            raise _Stop

    with pytest.raises(_Stop):
        zoo.train_classifier(*args, num_classes=10, progress=dies_in_epoch_3)
    assert _epochs(first) == {1, 2, 3}
    resumed_messages: list[str] = []
    resumed, _, _ = zoo.train_classifier(*args, num_classes=10, progress=lambda f, m: resumed_messages.append(m))
    assert resumed_messages[0] == f"training {entry.name}: resumed after epoch 2/3"
    assert _epochs(resumed_messages) == {3}  # epochs 1 and 2 were not run again

    zoo.discard_checkpoint(entry, len(train.images))  # the reference: one uninterrupted run
    whole, _, _ = zoo.train_classifier(*args, num_classes=10)
    zoo.discard_checkpoint(entry, len(train.images))
    for (name, a), b in zip(resumed.state_dict().items(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_a_damaged_checkpoint_is_discarded_and_training_starts_afresh():
    entry = dataclasses.replace(zoo.ZOO["digits-mlp"], epochs=2)
    train = load_dataset("digits", split="train")
    path = zoo._checkpoint_path(entry, len(train.images))
    path.write_bytes(b"not a checkpoint")
    messages: list[str] = []
    with pytest.warns(UserWarning, match="checkpoint"):
        zoo.train_classifier(
            entry, train.images, train.labels, num_classes=10, progress=lambda f, m: messages.append(m)
        )
    assert _epochs(messages) == {1, 2}
    zoo.discard_checkpoint(entry, len(train.images))


def test_a_training_job_that_dies_says_so_with_its_error(monkeypatch):
    pytest.importorskip("streamlit")
    from pages.ui import jobs as ui_jobs

    def dies(name, *, progress=None):
        raise NameError("module is not installed as a submodule")

    monkeypatch.setattr(zoo, "load_model", dies)
    with pytest.raises(
        ui_jobs.JobFailedError,
        match=r"training digits-mlp stopped: NameError: module is not installed as a submodule\. .*resumes from there",
    ):
        ui_jobs._train("digits-mlp", progress=lambda f, m: None)
