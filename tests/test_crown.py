"""CROWN (geometry.crown): exact on affine classifiers, sound on ReLU networks against sampled points and
PGD (an independent check), the same radii through TorchScript, and unsupported layers named (issue 21)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geometry.crown import CrownNetwork, crown_margin_bounds, crown_radius
from geometry.errors import InvalidInputError
from geometry.lipschitz import UnsupportedLayerError


def _affine_distance(weight: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, dual: float) -> torch.Tensor:
    """Exact distance of an affine classifier's point to its nearest decision boundary: min_k gap_k / ‖w_y − w_k‖_q."""
    gaps = logits.gather(1, y[:, None]) - logits
    norms = torch.linalg.vector_norm(weight[y][:, None, :] - weight[None], ord=dual, dim=-1)
    ratio = torch.where(torch.arange(weight.shape[0])[None] == y[:, None], torch.inf, gaps / norms)
    return ratio.min(1).values


@pytest.mark.parametrize(("norm", "dual"), [("l2", 2.0), ("linf", 1.0)])
def test_crown_is_exact_on_an_affine_classifier(norm, dual):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 5)).double()
    x = torch.randn(12, 1, 2, 3, dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    y = logits.argmax(1)
    exact = _affine_distance(model[1].weight.detach(), logits, y, dual)
    got = crown_radius(model, x, y, norm=norm, tol=1e-9)
    assert torch.allclose(got, exact, rtol=1e-7)
    # and the margin bounds themselves are the exact minima over the ball: gap_k − ε‖w_y − w_k‖_q
    eps = 0.3
    low = crown_margin_bounds(model, x, y, eps, norm)
    W = model[1].weight.detach()
    expected = (
        logits.gather(1, y[:, None])
        - logits
        - eps * torch.linalg.vector_norm(W[y][:, None] - W[None], ord=dual, dim=-1)
    )
    mask = torch.arange(5)[None] != y[:, None]
    assert torch.allclose(low[mask], expected[mask], rtol=1e-9, atol=1e-12)
    assert torch.isinf(low[~mask]).all()


def test_a_wrong_label_gets_radius_zero():
    model = nn.Linear(3, 2).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    with torch.no_grad():
        wrong = 1 - model(x).argmax(1)
    assert (crown_radius(model, x, wrong) == 0).all()


def _pgd_margin(model: nn.Module, x: torch.Tensor, y: int, k: int, eps: float, norm: str, steps: int = 60) -> float:
    """The smallest f_y − f_k that projected gradient descent finds in the ε-ball (an upper bound of the true minimum)."""
    delta = torch.zeros_like(x, requires_grad=True)
    for _ in range(steps):
        out = model(x + delta)
        margin = out[0, y] - out[0, k]
        (g,) = torch.autograd.grad(margin, delta)
        with torch.no_grad():
            if norm == "l2":
                delta -= 0.1 * eps * g / g.norm().clamp_min(1e-12)
                delta *= min(1.0, eps / max(float(delta.norm()), 1e-300))
            else:
                delta -= 0.1 * eps * g.sign()
                delta.clamp_(-eps, eps)
    with torch.no_grad():
        out = model(x + delta)
    return float(out[0, y] - out[0, k])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_crown_lower_bounds_hold_at_sampled_and_pgd_points_of_the_ball(norm):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).double().eval()
    model.requires_grad_(False)
    x = torch.randn(6, 4, dtype=torch.float64)
    y = model(x).argmax(1)
    radius = crown_radius(model, x, y, norm=norm, tol=1e-6)
    assert (radius > 0).all()
    eps = 1.5 * radius  # beyond the certified radius, where the bounds are negative and still must hold
    low = crown_margin_bounds(model, x, y, eps, norm)
    assert (low[torch.arange(6), y] == torch.inf).all()
    for i in range(6):
        d = torch.randn(4000, 4, dtype=torch.float64)
        if norm == "l2":
            d = d / d.norm(dim=1, keepdim=True) * float(eps[i]) * torch.rand(4000, 1, dtype=torch.float64) ** 0.25
        else:
            d = (torch.rand(4000, 4, dtype=torch.float64) * 2 - 1) * float(eps[i])
            d[:2000] = d[:2000].sign() * float(eps[i])  # vertices of the box, where linear bounds are tight
        out = model(x[i] + d)
        sampled = (out[:, y[i] : y[i] + 1] - out).min(0).values
        for k in range(3):
            if k == y[i]:
                continue
            assert low[i, k] <= sampled[k] + 1e-10
            xi = x[i : i + 1].clone()
            with torch.enable_grad():
                assert low[i, k] <= _pgd_margin(model, xi, int(y[i]), k, float(eps[i]), norm) + 1e-10
    # at the certified radius itself every margin bound is positive (the radius is the certified end)
    assert (crown_margin_bounds(model, x, y, radius, norm).min(1).values > 0).all()
    # IBP intermediate bounds are sound too and, on this small net, looser than CROWN's
    ibp = CrownNetwork(model, (4,), intermediate="ibp").radius(x, y, norm=norm, tol=1e-6)
    assert (ibp <= radius * (1 + 1e-6)).all()


class _ResidualConv(nn.Module):
    """Conv → BatchNorm → ReLU → residual conv branch → MaxPool → AvgPool → flatten → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.c2 = nn.Conv2d(2, 2, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.running_mean.uniform_(-0.3, 0.3)
            self.bn.weight.uniform_(-1.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.c1(x)))
        h = h + F.relu(self.c2(h))
        h = self.avg(self.pool(h))
        return self.fc(h.view(h.size(0), -1))


def test_a_traced_conv_net_with_a_residual_gets_the_same_sound_radii_through_torchscript():
    torch.manual_seed(2)
    model = _ResidualConv().eval().requires_grad_(False)
    x = torch.rand(4, 1, 4, 4)
    y = model(x).argmax(1)
    radius = crown_radius(model, x, y, norm="l2", tol=1e-5)
    assert (radius > 0).all()
    with pytest.warns(FutureWarning):
        script = torch.jit.trace(model, x[:1])
    assert torch.allclose(crown_radius(script, x, y, norm="l2", tol=1e-5), radius, rtol=1e-9)
    # sound: sampled points of the ball at 1.2 × the radius never beat the margin bounds there
    eps = 1.2 * radius
    low = crown_margin_bounds(model, x, y, eps, "l2")
    double = _ResidualConv().double().eval()
    double.load_state_dict(model.state_dict())
    xd = x.double()
    for i in range(4):
        d = torch.randn(3000, 1, 4, 4, dtype=torch.float64)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * float(eps[i])
        with torch.no_grad():
            out = double(xd[i] + d)
        sampled = (out[:, y[i] : y[i] + 1] - out).min(0).values
        mask = torch.arange(3) != y[i]
        assert (low[i][mask] <= sampled[mask] + 1e-9).all()


def test_unsupported_layers_are_named():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(UnsupportedLayerError, match="Tanh"):
        crown_radius(model, torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))

    class Product(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * x

    with pytest.raises(UnsupportedLayerError, match="product of two input-dependent"):
        crown_margin_bounds(Product(), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), 0.1)


def test_bad_arguments_are_refused():
    model = nn.Linear(3, 2)
    x = torch.zeros(2, 3)
    with pytest.raises(InvalidInputError, match="norm"):
        crown_radius(model, x, torch.zeros(2, dtype=torch.long), norm="l1")
    with pytest.raises(InvalidInputError, match="labels"):
        crown_radius(model, x, torch.tensor([0, 5]))
    with pytest.raises(InvalidInputError, match="eps"):
        crown_margin_bounds(model, x, torch.zeros(2, dtype=torch.long), -1.0)
    with pytest.raises(InvalidInputError, match="intermediate"):
        CrownNetwork(model, (3,), intermediate="exact")


def test_no_certificate_of_the_ladder_exceeds_the_attack_radius_on_the_digits_mlp():
    """The study's ladder on 120 digits test points: global Lipschitz, LMT pair and CROWN ℓ2 all stay below the
    attack radius (box DeepFool / FMN) wherever it succeeded, and the best of them is the certificate."""
    import numpy as np

    from geometry import zoo
    from geometry.data import load_dataset
    from geometry.study.certify import CertifySettings, certify_study
    from geometry.study.readings import certificate_ladder_reading

    clf = zoo.load_model("digits-mlp")
    test = load_dataset("digits", split="test", limit=120)
    settings = CertifySettings(n_points=120, crown_points=120, crown_tol=0.05)
    study = certify_study(clf, test.images, test.labels.numpy(), settings)
    assert study.crown is not None and np.isfinite(study.crown).all()
    ladder = study.ladder()
    assert set(ladder) == {"global Lipschitz", "LMT pair", "CROWN ℓ2", "best certificate"}
    ok = np.isfinite(study.distance)
    assert ok.sum() >= 100
    for name, radius in ladder.items():
        assert (radius[ok] <= study.distance[ok]).all(), name
    assert study.check.sound and study.check.n_checked == int(ok.sum())
    assert np.allclose(study.best, np.fmax(study.certificate.radius, study.crown))
    reading = certificate_ladder_reading(study)
    assert "best sound bound" in reading and "median" in reading


def test_an_analytic_affine_classifier_is_bounded_exactly_and_a_circle_refused_cleanly(capfd):
    """The 2-D lab's analytic classifiers are plain functions (``x @ W.T + b`` on buffers): CROWN reads the affine
    one and its radius is the exact distance to the boundary, ``(f_y − f_k) / ‖w_y − w_k‖`` (Hölder is tight on
    an affine map); the circle's ``(x − c)²`` is refused with a named error — and neither prints a traceback."""
    from geometry.testing import affine_classifier, sphere_classifier

    W = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0]], dtype=torch.float64)
    b = torch.tensor([0.0, 0.3, -0.1], dtype=torch.float64)
    clf = affine_classifier(W, b, input_shape=(1, 1, 2))
    x = torch.randn(20, 1, 1, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = clf.predict(x)
    exact = _affine_distance(W, x.flatten(1) @ W.T + b, y, 2.0)
    assert torch.allclose(crown_radius(clf, x, y, tol=1e-9), exact, rtol=1e-7)
    circle = sphere_classifier(torch.zeros(2), 1.0, input_shape=(1, 1, 2))
    with pytest.raises(UnsupportedLayerError, match="pow"):
        crown_radius(circle, x, circle.predict(x))
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err


class _StridedResidual(nn.Module):
    """Strided, dilated and grouped convolutions, batch norm, a residual add, max and average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(16, 3)
        with torch.no_grad():
            self.bn.running_var.uniform_(0.5, 2.0)
            self.bn.running_mean.uniform_(-0.3, 0.3)
            self.bn.weight.uniform_(-1.5, 1.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn(self.c1(x)))
        h = h - F.relu(self.c2(h))
        h = self.avg(self.pool(h))
        return self.fc(torch.flatten(h, 1))


def test_the_direct_backward_pass_gives_the_autograd_paths_bounds_and_radii(monkeypatch):
    """The speed-up (closed-form transposes: matmul, conv_transpose2d or the dense conv matrix, per-channel batch
    norm scale, ±; the first layer's Hölder bounds; matrix-product constants) against the original path (vmapped
    autograd vjps, elementwise sums), kept as ``backward="autograd"``: the same radii and margin bounds to 1e-6 on
    two conv nets with batch norm and a residual ``+`` / ``−``, in both norms, as modules and through TorchScript,
    with small convolutions as dense matrices and (``_DENSE = 0``) by conv_transpose2d. The inputs have constant
    regions (as digits do), where pooling windows hold exactly tied lower bounds."""
    import geometry.crown as crown

    torch.manual_seed(4)
    for model, shape in ((_ResidualConv(), (1, 4, 4)), (_StridedResidual(), (1, 8, 8))):
        model = model.double().eval().requires_grad_(False)
        x = torch.rand(6, *shape, dtype=torch.float64)
        x[:, :, : shape[1] // 2] = 0.0  # a blank band: equal pre-activations side by side
        y = model(x).argmax(1)
        radii = {}
        for norm in ("l2", "linf"):
            radii[norm] = CrownNetwork(model, shape, backward="autograd").radius(x, y, norm=norm, tol=1e-2)
            assert (radii[norm] > 0).sum() >= 3
            assert torch.allclose(CrownNetwork(model, shape).radius(x, y, norm=norm, tol=1e-2), radii[norm], rtol=1e-6)
        with pytest.warns(FutureWarning):
            script = torch.jit.trace(model, x[:1])
        for dense in (True, False):
            monkeypatch.setattr(crown, "_DENSE", 2**20 if dense else 0)  # else: conv_transpose2d, pooling by vjp
            for net_of in (model, script):
                direct = CrownNetwork(net_of, shape)
                reference = CrownNetwork(net_of, shape, backward="autograd")
                closed = [op.back is not None for op in direct.ops if op.kind == "affine"]
                assert all(closed) if dense else sum(closed) >= 6  # conv, batch norm, ±, flatten, linear at least
                for norm in ("l2", "linf"):
                    for scale in (0.5, 2.0):  # inside the certified radius and beyond it (many unstable neurons)
                        eps = scale * radii[norm]
                        low_ref = reference.margin_bounds(x, y, eps, norm)
                        low = direct.margin_bounds(x, y, eps, norm)
                        assert torch.equal(torch.isinf(low), torch.isinf(low_ref))
                        fin = torch.isfinite(low_ref)
                        assert torch.allclose(low[fin], low_ref[fin], rtol=1e-6, atol=1e-6)


def test_pooling_winners_are_tied_within_rounding_and_otherwise_the_largest_lower_bound():
    """max_pool2d's own index on distinct and on exactly tied lower bounds; a 1-ulp difference between two equal
    bounds (two summation orders) does not move the winner — it did, and moved a digits-lenet bound by 0.009."""
    from geometry.crown import _pool_winner

    torch.manual_seed(5)
    for kernel, stride, padding in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1))):
        for lb in (torch.randn(2, 3, 7, 7, dtype=torch.float64), torch.randint(0, 3, (2, 3, 7, 7)).double()):
            low, idx = _pool_winner(lb, kernel, stride, padding)
            ref_low, ref_idx = F.max_pool2d(lb, kernel, stride, padding, return_indices=True)
            assert torch.equal(low, ref_low) and torch.equal(idx, ref_idx)
    lb = torch.full((1, 1, 2, 2), 0.3, dtype=torch.float64)
    lb[0, 0, 1, 1] = torch.nextafter(torch.tensor(0.3, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    assert int(F.max_pool2d(lb, 2, return_indices=True)[1]) == 3  # max_pool2d follows the ulp
    low, idx = _pool_winner(lb, (2, 2), (2, 2), (0, 0))
    assert int(idx) == 0 and float(low) == 0.3
    lb[0, 0, 1, 1] = 0.3 + 1e-6  # a real difference still wins
    assert int(_pool_winner(lb, (2, 2), (2, 2), (0, 0))[1]) == 3


def test_the_ladder_script_takes_the_attacks_and_fewer_attacks_never_shorten_the_attack_radius(tmp_path):
    """``docs/scripts/certificate_ladder.py --attacks``: the row records the attacks it ran; with FMN alone the
    attack radius is a minimum over fewer attacks, so the median attack / global Lipschitz ratio (the certificate
    does not depend on the attack) cannot fall below the default's (box DeepFool, FMN, DDN); an unknown attack name
    is refused by the argument parser (exit status 2), not a traceback."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    script = root / "docs" / "scripts" / "certificate_ladder.py"
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    base = [sys.executable, str(script), "--models", "digits-mlp", "--n", "6", "--tol", "0.2"]
    rows = {}
    for tag, extra in (("default", []), ("fmn", ["--attacks", "fmn"])):
        out = tmp_path / f"{tag}.json"
        done = subprocess.run([*base, *extra, "--out", str(out)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        (rows[tag],) = json.loads(out.read_text())
    assert rows["default"]["attacks"] == ["deepfool_box", "fmn", "ddn"]
    assert rows["fmn"]["attacks"] == ["fmn"]
    assert rows["fmn"]["violations"] == rows["default"]["violations"] == 0
    lip = "global Lipschitz"
    assert rows["fmn"]["median_attack_over"][lip] >= rows["default"]["median_attack_over"][lip] * (1 - 1e-9)
    bad = subprocess.run([*base, "--attacks", "carlini"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr
