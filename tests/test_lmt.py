"""Lipschitz-margin training (geometry.lmt; the zoo's "lmt" regime)."""

from __future__ import annotations

import pytest
import torch

from geometry import zoo
from geometry.architectures import build_architecture
from geometry.certify import certified_accuracy, certify
from geometry.classifier import make_classifier
from geometry.data import load_dataset
from geometry.errors import InvalidInputError
from geometry.lipschitz import lipschitz_bound
from geometry.lmt import lipschitz_estimate, lmt_logits, lmt_state
from geometry.regimes import TRAINING_REGIMES


def test_lmt_is_a_registered_regime():
    assert "lmt" in TRAINING_REGIMES
    assert zoo.ZOO["digits-lenet-lmt"].regime == "lmt" and zoo.ZOO["mnist-lenet-lmt"].regime == "lmt"


def test_the_training_estimate_approaches_the_sound_bound_from_below():
    model = build_architecture("lenet", input_shape=(1, 8, 8), num_classes=10, random_state=0)
    std = (0.4,)
    state = lmt_state(model, (1, 8, 8), std, random_state=0)
    with torch.no_grad():
        estimates = [float(lipschitz_estimate(state)) for _ in range(100)]
    clf = make_classifier(model, input_shape=(1, 8, 8), class_names=[str(i) for i in range(10)], mean=(0.0,), std=std)
    sound = lipschitz_bound(clf).upper
    assert max(estimates) <= sound * (1 + 1e-6)
    assert estimates[-1] == pytest.approx(sound, rel=2e-2)
    assert estimates[-1] > estimates[0]


def test_lmt_logits_raise_every_wrong_class_by_the_margin():
    logits = torch.zeros(2, 3)
    out = lmt_logits(logits, torch.tensor([0, 2]), torch.tensor(2.0), 0.5)
    assert torch.allclose(out, torch.tensor([[0.0, 1.4142135, 1.4142135], [1.4142135, 1.4142135, 0.0]]))
    with pytest.raises(InvalidInputError):
        lmt_logits(logits, torch.tensor([0, 2]), torch.tensor(2.0), -1.0)


def test_lmt_digits_certifies_more_points_than_the_standard_network(digits_lenet):
    lmt = zoo.load_model("digits-lenet-lmt")
    test = load_dataset("digits", split="test")
    eps = 0.05
    acc_std = certified_accuracy(certify(digits_lenet, test.images), test.labels.numpy(), eps)[0]
    acc_lmt = certified_accuracy(certify(lmt, test.images), test.labels.numpy(), eps)[0]
    assert acc_lmt > acc_std + 0.2, (acc_lmt, acc_std)
    assert lmt.test_accuracy >= 0.95
    card = lmt.info["robustness"]["certified"]
    assert card["eps"] == sorted(card["eps"]) and card["certified_accuracy"] == sorted(
        card["certified_accuracy"], reverse=True
    )
