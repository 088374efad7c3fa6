"""The model zoo: recipes train to their targets, the disk cache is keyed by the recipe and round-trips
exactly, and bad names give clear errors."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from geometry import zoo
from geometry.data import load_dataset
from geometry.errors import UnknownNameError


def test_digits_lenet_reaches_target_and_is_frozen(digits_lenet):
    clf = digits_lenet
    assert clf.test_accuracy >= 0.95
    test = load_dataset("digits", split="test")
    assert clf.accuracy(test.images, test.labels) == pytest.approx(clf.test_accuracy)
    assert not clf.network.training
    assert all(not p.requires_grad for p in clf.network.parameters())
    assert clf.input_shape == (1, 8, 8) and clf.num_classes == 10
    # normalisation is inside: float buffers, never integers (DESIGN §4 pitfall)
    bufs = dict(clf.network.named_buffers())
    assert bufs and all(b.is_floating_point() for b in bufs.values())


def test_cache_round_trip_gives_identical_logits(digits_lenet):
    assert zoo.is_cached("digits-lenet")
    again = zoo.load_model("digits-lenet", train=False)
    x = load_dataset("digits", split="test", limit=64).images
    assert torch.equal(digits_lenet.logits(x), again.logits(x))
    assert again.test_accuracy == pytest.approx(digits_lenet.test_accuracy)


def test_changed_recipe_changes_cache_key():
    entry = zoo.ZOO["digits-lenet"]
    changed = dataclasses.replace(entry, epochs=entry.epochs + 1)
    assert zoo._model_path(entry) != zoo._model_path(changed)
    assert zoo._model_path(entry) == zoo._model_path(dataclasses.replace(entry))


def test_training_is_seeded_and_leaves_global_rng_alone():
    entry = dataclasses.replace(zoo.ZOO["digits-mlp"], epochs=1)
    ds = load_dataset("digits", split="train", limit=256)
    state = torch.random.get_rng_state()
    m1, mean1, _ = zoo.train_classifier(entry, ds.images, ds.labels, num_classes=10)
    assert torch.equal(state, torch.random.get_rng_state())
    m2, mean2, _ = zoo.train_classifier(entry, ds.images, ds.labels, num_classes=10)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert mean1 == mean2


def test_progress_callback_reports_monotone_fractions():
    entry = dataclasses.replace(zoo.ZOO["digits-mlp"], epochs=2)
    ds = load_dataset("digits", split="train", limit=200)
    seen = []
    zoo.train_classifier(entry, ds.images, ds.labels, num_classes=10, progress=lambda f, m: seen.append(f))
    assert seen and all(0 <= a <= b <= 1 for a, b in itertools.pairwise(seen))


def test_not_trained_without_train_flag(tmp_path, monkeypatch):
    monkeypatch.setenv("BOUNDARY_ATLAS_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not trained yet"):
        zoo.load_model("digits-mlp", train=False)


def test_unknown_model_and_architecture_names():
    with pytest.raises(UnknownNameError, match="digits-lenet"):
        zoo.load_model("resnet-9000")
    with pytest.raises(UnknownNameError, match="lenet"):
        zoo.build_architecture("transformer", input_shape=(1, 8, 8), num_classes=10)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("arch", sorted(zoo.ARCHITECTURES))
def test_architectures_fit_every_dataset_shape(arch, shape):
    net = zoo.build_architecture(arch, input_shape=shape, num_classes=10)
    assert net(torch.zeros(2, *shape)).shape == (2, 10)


def test_lenet_layer_names_match_the_classic_tutorial_lenet(shared_data):
    """The captum CIFAR-10 LeNet state_dict (classic tutorial layout) loads into our LeNet."""
    path = shared_data / "weights" / "captum_cifar10_lenet" / "cifar_torchvision.pt"
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = zoo.LeNet((3, 32, 32), 10)
    net.load_state_dict(state)


def test_card_gives_a_trained_networks_recorded_training_time(digits_lenet):
    """zoo.card: the card of a trained network — its classes and the seconds its training took here (what the app's
    training estimates are scaled from, pages/ui/jobs.py) — and an error naming the zoo for an unknown name."""
    card = zoo.card("digits-lenet")
    assert card is not None and card["class_names"] == list(digits_lenet.class_names)
    assert card["train_seconds"] > 0
    with pytest.raises(UnknownNameError, match="digits-lenet"):
        zoo.card("no-such-network")
