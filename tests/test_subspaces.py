"""Principal angles and the random-subspace baseline (geometry/subspaces.py; DESIGN §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from geometry.errors import InvalidInputError
from geometry.subspaces import RandomBaseline, principal_angles, random_baseline, random_subspace


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread):
    """Every test here runs on one thread (see conftest.one_thread)."""


def _orthogonal(k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
    return q


def _gaussian(d: int, p: int, seed: int) -> torch.Tensor:
    return torch.randn(d, p, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ---------------------------------------------------------------------------------------- angles
@pytest.mark.parametrize("d,p", [(5, 1), (30, 4), (50, 50)])
def test_subspace_against_itself_is_all_ones(d, p):
    A = _gaussian(d, p, 0)  # not orthonormal: orthonormalised inside
    cos = principal_angles(A, A)
    assert cos.shape == (p,)
    torch.testing.assert_close(cos, torch.ones(p, dtype=torch.float64), atol=1e-12, rtol=0)
    # another basis of the same span (invertible mixing) too
    M = _gaussian(p, p, 1) + 3 * torch.eye(p, dtype=torch.float64)
    torch.testing.assert_close(principal_angles(A, A @ M), torch.ones(p, dtype=torch.float64), atol=1e-10, rtol=0)


def test_orthogonal_subspaces_are_zeros():
    Q = random_subspace(40, 10, random_state=3).basis
    cos = principal_angles(Q[:, :4], Q[:, 4:10])
    assert cos.shape == (4,)
    assert float(cos.abs().max()) < 1e-12
    # coordinate subspaces
    e = torch.eye(6, dtype=torch.float64)
    assert torch.equal(principal_angles(e[:, :2], e[:, 2:5]), torch.zeros(2, dtype=torch.float64))


def test_known_angle_in_the_plane():
    theta = 0.3
    a = torch.tensor([[1.0], [0.0], [0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(theta)], [math.sin(theta)], [0.0]], dtype=torch.float64)
    assert float(principal_angles(a, b)[0]) == pytest.approx(math.cos(theta), abs=1e-14)
    # and two planes sharing one axis, tilted by theta in the other
    A = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    B = torch.tensor([[1.0, 0.0], [0.0, math.cos(theta)], [0.0, math.sin(theta)]], dtype=torch.float64)
    torch.testing.assert_close(principal_angles(A, B), torch.tensor([1.0, math.cos(theta)], dtype=torch.float64))


@pytest.mark.parametrize("seed", range(10))
def test_invariant_to_rotation_within_either_subspace(seed):
    d, p, q = 25, 4, 6
    A, B = _gaussian(d, p, seed), _gaussian(d, q, seed + 100)
    ref = principal_angles(A, B)
    A2 = A @ _orthogonal(p, seed + 200)
    B2 = B @ _orthogonal(q, seed + 300)
    torch.testing.assert_close(principal_angles(A2, B), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(principal_angles(A, B2), ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(principal_angles(A2, B2), ref, atol=1e-12, rtol=0)
    # symmetric in its arguments
    torch.testing.assert_close(principal_angles(B, A), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("d,p,q,seed", [(10, 3, 3, 0), (30, 2, 7, 1), (30, 7, 2, 2), (64, 10, 20, 3), (8, 8, 5, 4)])
def test_agrees_with_scipy_subspace_angles(d, p, q, seed):
    A, B = _gaussian(d, p, seed), _gaussian(d, q, seed + 50)
    ours = principal_angles(A, B)
    theirs = np.sort(np.cos(scipy.linalg.subspace_angles(A.numpy(), B.numpy())))[::-1]
    assert ours.shape == (min(p, q),)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-10)
    assert bool((ours[:-1] >= ours[1:]).all()), "cosines must be descending"
    assert float(ours.min()) >= 0.0 and float(ours.max()) <= 1.0


def test_accepts_numpy_vectors_and_float32():
    a = np.array([1.0, 1.0, 0.0], dtype=np.float32)
    B = np.eye(3)[:, :1]
    assert float(principal_angles(a, B)[0]) == pytest.approx(1 / math.sqrt(2), abs=1e-7)


def test_inputs_not_mutated():
    A, B = _gaussian(12, 3, 0), _gaussian(12, 4, 1)
    A0, B0 = A.clone(), B.clone()
    principal_angles(A, B)
    assert torch.equal(A, A0) and torch.equal(B, B0)


def test_errors_say_expected_and_given():
    A = _gaussian(10, 3, 0)
    with pytest.raises(InvalidInputError, match="rank"):
        principal_angles(torch.cat([A, A[:, :1]], 1), A)  # rank-deficient (repeated column)
    with pytest.raises(InvalidInputError, match="rank"):
        principal_angles(A, torch.zeros(10, 2, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="same dimension"):
        principal_angles(A, _gaussian(11, 3, 1))
    with pytest.raises(InvalidInputError, match="NaN"):
        principal_angles(A, torch.full((10, 2), float("nan")))
    with pytest.raises(InvalidInputError, match="at most d"):
        principal_angles(_gaussian(3, 4, 0), _gaussian(3, 1, 0))
    with pytest.raises(InvalidInputError, match="got shape"):
        principal_angles(torch.zeros(2, 3, 4), A)


# ---------------------------------------------------------------------------------------- random subspace
def test_random_subspace_is_orthonormal_reproducible_and_sign_fixed():
    S = random_subspace(50, 7, random_state=11)
    assert S.kind == "random" and S.spectrum_kind == "none" and S.input_shape is None
    Q = S.basis
    assert Q.shape == (50, 7) and Q.dtype == torch.float64
    torch.testing.assert_close(Q.T @ Q, torch.eye(7, dtype=torch.float64), atol=1e-12, rtol=0)
    assert torch.equal(Q, random_subspace(50, 7, random_state=11).basis)
    assert not torch.allclose(Q, random_subspace(50, 7, random_state=12).basis)
    # sign fix: Q = G·R⁻¹ with R's diagonal positive ⇒ diag(QᵀG) > 0
    G = torch.randn(50, 7, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    assert bool((torch.diagonal(Q.T @ G) > 0).all())
    gen = torch.Generator().manual_seed(0)
    assert random_subspace(5, 5, random_state=gen).basis.shape == (5, 5)


def test_one_random_subspace():
    """One function, one return type: the curvature module re-exports the subspaces one."""
    import geometry
    import geometry.curvature

    assert geometry.curvature.random_subspace is random_subspace is geometry.random_subspace
    assert geometry.curvature.Subspace is type(random_subspace(4, 2))


def test_subspace_says_what_its_spectrum_is():
    import dataclasses

    S = random_subspace(6, 2, random_state=0)
    with pytest.raises(InvalidInputError, match="spectrum_kind"):
        dataclasses.replace(S, spectrum_kind="eigen")
    assert S.estimator is None


@pytest.mark.parametrize("args", [(0, 1), (5, 0), (5, 6), (5.0, 2), (True, 1)])
def test_random_subspace_rejects_bad_sizes(args):
    with pytest.raises(InvalidInputError):
        random_subspace(*args, random_state=0)


def test_random_subspace_rejects_bad_random_state():
    with pytest.raises(InvalidInputError, match="random_state"):
        random_subspace(5, 2, random_state="seed")


# ---------------------------------------------------------------------------------------- baseline
def test_random_baseline_shapes_and_reproducibility():
    b = random_baseline(60, 3, 5, n_samples=7, random_state=1)
    assert isinstance(b, RandomBaseline)
    assert b.samples.shape == (7, 3) and b.mean.shape == (3,) and b.std.shape == (3,)
    assert (b.d, b.p, b.q) == (60, 3, 5)
    torch.testing.assert_close(b.mean, b.samples.mean(0))
    assert bool((b.samples[:, :-1] >= b.samples[:, 1:]).all())
    assert float(b.samples.min()) >= 0 and float(b.samples.max()) <= 1
    assert torch.equal(b.samples, random_baseline(60, 3, 5, n_samples=7, random_state=1).samples)
    one = random_baseline(60, 3, 5, n_samples=1, random_state=1)
    assert torch.equal(one.std, torch.zeros(3, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="q must be at most 60"):
        random_baseline(60, 3, 61)


def test_random_baseline_line_has_mean_squared_cosine_q_over_d():
    """For p = 1: E cos² = E‖P_B a‖² = q/d exactly (a uniform on the sphere, B fixed by invariance).

    Tolerance: 4 standard errors of the sample mean (estimated from the samples themselves).
    """
    d, q, n = 200, 10, 400
    b = random_baseline(d, 1, q, n_samples=n, random_state=0)
    c2 = b.samples[:, 0] ** 2
    se = float(c2.std()) / math.sqrt(n)
    assert abs(float(c2.mean()) - q / d) < 4 * se


def test_random_baseline_top_cosine_matches_wachter_edge():
    """d = 1000, p = q = 10: top cosine ≈ top singular value of a 10×10 Gaussian / √d ≈ (√p + √q)/√d.

    By Gordon's inequality E s_max(G) ≤ √p + √q for a p×q standard Gaussian G, so the mean sits
    *below* the edge 0.2 (finite-size shift, measured ≈ 0.18); the block QᵀQ of Haar matrices is
    Gaussian/√d up to O(p/d) corrections, hence the 2 % slack above. Lower tolerance: 25 %.
    """
    b = random_baseline(1000, 10, 10, n_samples=40, random_state=0)
    edge = math.sqrt(10 / 1000) * 2
    assert b.edge == pytest.approx(edge)
    top = float(b.mean[0])
    assert 0.75 * edge < top < 1.02 * edge
    # the baseline is far below the cosines of a shared direction (Fig. 10's point)
    assert float(b.samples[:, 0].max()) < 0.5
