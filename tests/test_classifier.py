"""The Classifier contract: normalisation inside, frozen, shape / NaN checks with clear messages."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geometry.classifier import check_images, make_classifier
from geometry.errors import InvalidInputError
from geometry.testing import affine_classifier


def _tiny():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 3))


def test_normalisation_lives_inside_and_matches_manual():
    model = _tiny()
    clf = make_classifier(model, input_shape=(3, 2, 2), class_names="abc", mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    x = torch.rand(5, 3, 2, 2)
    manual = model(
        (x - torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)) / torch.tensor([0.5, 0.25, 2.0]).view(1, 3, 1, 1)
    )
    assert torch.allclose(clf(x), manual)
    assert torch.equal(clf.predict(x), manual.argmax(1))
    assert clf.class_names == ("a", "b", "c") and clf.d == 12


def test_frozen_and_eval():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    clf = make_classifier(model, input_shape=(1, 2, 2), class_names=["0", "1"])
    assert not clf.network.training and all(not p.requires_grad for p in clf.network.parameters())
    x = torch.rand(3, 1, 2, 2)
    assert torch.equal(clf(x), clf(x))  # dropout off


def test_gradients_flow_to_inputs_only():
    clf = affine_classifier(
        torch.randn(3, 4, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), input_shape=(1, 2, 2)
    )
    x = torch.rand(2, 1, 2, 2, dtype=torch.float64, requires_grad=True)
    clf(x)[:, 0].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


@pytest.mark.parametrize(
    "bad, phrase",
    [
        (torch.rand(2, 1, 3, 3), "shape"),
        (torch.rand(2, 4), "shape"),
        (torch.full((1, 1, 2, 2), float("nan")), "NaN"),
        (torch.ones(1, 1, 2, 2, dtype=torch.int64), "floating"),
    ],
)
def test_bad_inputs_give_clear_errors(bad, phrase):
    clf = make_classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), input_shape=(1, 2, 2), class_names="ab")
    with pytest.raises(InvalidInputError, match=phrase):
        clf(bad)


def test_single_image_is_a_batch_of_one():
    assert check_images(torch.rand(1, 2, 2), (1, 2, 2), allow_single=True).shape == (1, 1, 2, 2)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [
        ({"input_shape": (4,)}, "input_shape"),
        ({"input_shape": (1, 2, 2), "mean": (0.5,)}, "both mean and std"),
        ({"input_shape": (1, 2, 2), "mean": (0.5, 0.5), "std": (1, 1)}, "one value per channel"),
        ({"input_shape": (1, 2, 2), "bounds": (1.0, 0.0)}, "bounds"),
        ({"input_shape": (1, 2, 2), "mean": (0.5,), "std": (0.0,)}, "positive"),
    ],
)
def test_bad_construction_gives_clear_errors(kwargs, phrase):
    with pytest.raises(InvalidInputError, match=phrase):
        make_classifier(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), class_names="ab", **kwargs)
