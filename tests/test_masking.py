"""Masking flags (issue 21, item 3): deliberately masked toy models raise the right flag, the zoo's digits models none."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from geometry.autoattack import autoattack
from geometry.classifier import make_classifier
from geometry.data import load_dataset
from geometry.deepfool import deepfool
from geometry.masking import (
    FLAG_CODES,
    REMEDIES,
    certificate_flags,
    deepfool_flags,
    ensemble_flags,
    model_flags,
)
from geometry.zoo import load_model

pytestmark = pytest.mark.usefixtures("one_thread")

CLASSES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    test = load_dataset("digits", split="test")
    return test.images[:60], test.labels[:60]


def _codes(flags) -> set[str]:
    return {f.code for f in flags}


def _wrap(module: nn.Module):
    return make_classifier(module, input_shape=(1, 8, 8), class_names=CLASSES)


class _Quantise(nn.Module):
    """Input quantisation to 4 levels: a defence whose gradient is zero almost everywhere."""

    def forward(self, x):
        return torch.round(x * 3) / 3


class _KWTA(nn.Module):
    """k-winners-take-all (Xiao et al., ICLR 2020): keeps the k largest activations of a layer."""

    def __init__(self, ratio: float):
        super().__init__()
        self.ratio = ratio

    def forward(self, h):
        k = max(1, int(self.ratio * h.shape[1]))
        threshold = h.topk(k, dim=1).values[:, -1:]
        return h * (h >= threshold).to(h.dtype)


class _Purify(nn.Module):
    """A test-time 'purification': one gradient step on the input inside forward (a dynamic defence)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.net(xr).logsumexp(1).sum(), xr)
        return self.net(x - 0.01 * g.sign())


def test_every_flag_has_a_remedy():
    assert set(REMEDIES) == set(FLAG_CODES)
    assert all(len(text) > 40 for text in REMEDIES.values())


def test_softmax_output_raises_probabilities_instead_of_logits(digits):
    x, y = digits
    base = load_model("digits-lenet")
    clf = _wrap(nn.Sequential(base.network, nn.Softmax(dim=1)))
    flags = model_flags(clf, x, y)
    assert "probability_output" in _codes(flags)
    flag = next(f for f in flags if f.code == "probability_output")
    assert flag.remedy == REMEDIES["probability_output"] and "logits" in flag.remedy
    assert "probability_output" not in _codes(model_flags(base, x, y))


def test_quantised_input_raises_zero_gradient_at_every_point(digits):
    x, y = digits
    base = load_model("digits-lenet")
    clf = _wrap(nn.Sequential(_Quantise(), base.network))
    flags = model_flags(clf, x, y)
    assert _codes(flags) == {"zero_gradient"}
    (flag,) = flags
    assert flag.value == 1.0 and len(flag.points) == len(x)
    # and the white-box attack is blind (its random start alone fooled 2 points, measured) while the
    # black-box Square breaks more of those APGD left
    res = autoattack(clf, x, y, eps=0.3, attacks=("apgd-ce", "square"), square_queries=300)
    assert int(res.success[0].sum()) < int(res.success[1].sum())
    assert "black_box_wins" in _codes(ensemble_flags(res))


def test_kwta_layer_lets_the_black_box_attack_beat_the_white_box_ones(digits):
    x, y = digits
    train = load_dataset("digits", split="train")
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, 256), _KWTA(0.1), nn.Linear(256, 256), _KWTA(0.1), nn.Linear(256, 10)
        )
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(40):
        perm = torch.randperm(len(train.images), generator=gen)
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            loss = nn.functional.cross_entropy(net(train.images[b]), train.labels[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    clf = _wrap(net)
    assert clf.accuracy(x, y) > 0.85
    assert model_flags(clf, x, y) == ()  # nothing the model-only checks can see …
    res = autoattack(clf, x, y, eps=0.1, square_queries=1000)
    flags = ensemble_flags(res)
    assert _codes(flags) == {"black_box_wins"}  # … but Square breaks points APGD-CE and APGD-T left (measured 2–3 %)
    (flag,) = flags
    assert all(res.broken_by[i] == "square" for i in flag.points)


def test_dropout_left_on_raises_randomised_output(digits):
    x, y = digits
    base = load_model("digits-lenet")
    net = nn.Sequential(nn.Dropout(0.2), base.network)
    clf = _wrap(net)
    net.train()  # make_classifier put it in eval mode; a user's model may not be
    assert "randomised_output" in _codes(model_flags(clf, x, y))
    net.eval()
    assert "randomised_output" not in _codes(model_flags(clf, x, y))


def test_a_forward_pass_that_differentiates_raises_dynamic_forward(digits):
    x, y = digits
    base = load_model("digits-lenet")
    clf = _wrap(_Purify(base.network))
    assert "dynamic_forward" in _codes(model_flags(clf, x, y))


def test_deepfool_failures_above_one_percent_are_flagged():
    ok = torch.ones(200, dtype=torch.bool)
    ok[:2] = False  # 1 %: not more than 1 %
    assert deepfool_flags(ok) == ()
    ok[2] = False
    (flag,) = deepfool_flags(ok)
    assert flag.code == "deepfool_fails" and flag.points == (0, 1, 2) and flag.value == pytest.approx(0.015)


def test_a_certificate_above_an_attack_radius_is_flagged_as_a_bug():
    attack = torch.tensor([1.0, 2.0, math.inf])
    assert certificate_flags({"lipschitz": [0.5, 2.0, 9.0], "crown": [0.9, 1.0, 0.0]}, attack) == ()
    (flag,) = certificate_flags({"lipschitz": [0.5, 2.5, 0.0], "crown": [1.1, 1.0, 0.0]}, attack)
    assert flag.code == "certificate_exceeds_attack" and flag.points == (0, 1)
    assert "lipschitz" in flag.message and "crown" in flag.message and flag.value == pytest.approx(1.25)


@pytest.mark.parametrize("name", ["digits-lenet", "digits-lenet-pgd", "digits-mlp"])
def test_zoo_digits_models_raise_no_flag(digits, name):
    x, y = digits
    clf = load_model(name)
    assert model_flags(clf, x, y) == ()
    assert deepfool_flags(deepfool(clf, x, clip=True).converged) == ()
    res = autoattack(clf, x, y, eps=0.1, square_queries=1000)
    assert ensemble_flags(res) == ()
