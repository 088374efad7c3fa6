"""Real data (../shared/data MNIST): the zoo's mnist-lenet reaches its target accuracy, and DeepFool's
ρ_adv = mean ‖r‖₂/‖x‖₂ is near the paper's value for LeNet-MNIST (DeepFool, CVPR 2016, Table 1: 0.20)."""

from __future__ import annotations

import pytest
import torch

from geometry.data import load_dataset
from geometry.deepfool import deepfool

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_mnist_lenet_reaches_target_accuracy(mnist_lenet):
    assert mnist_lenet.test_accuracy >= 0.985


def test_deepfool_rho_adv_near_paper_table1(mnist_lenet, shared_data):
    test = load_dataset("mnist", root=shared_data, split="test", limit=500)
    res = deepfool(mnist_lenet, test.images)
    assert res.converged.float().mean() >= 0.99
    ok = res.converged
    rho = float((res.norms[ok] / test.images[ok].flatten(1).norm(dim=1)).mean())
    print(f"rho_adv(mnist-lenet, 500 test images) = {rho:.3f}  (paper Table 1: 0.20)")
    assert 0.07 <= rho <= 0.40
    # r(x) changes the label and is minimal-ish: the label of x + r/(1+overshoot)^k for a much smaller step does not
    assert torch.all(mnist_lenet.predict(res.x_adv[ok]) != res.label[ok])
    half = test.images[ok] + 0.5 * res.r[ok]
    assert (mnist_lenet.predict(half) == res.label[ok]).float().mean() >= 0.95
