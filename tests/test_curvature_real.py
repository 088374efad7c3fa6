"""Fig. 7a on real data: the curved subspace S_c of an MNIST LeNet is positively curved at held-out
boundary points, more than a random subspace and than the flat subspace S_f, and the excess fades
as m grows (ICLR 2018 §5, Fig. 7a).

Settings (the paper's recipe at a smaller size): S_c and S_f from n = 100 training points (the app's
choice of points), finite-difference HVPs at the authors' scale h = 10·√d/512 ≈ 0.55, boundary point
z = x + r(x), tangent-projected, m up to 20; K_S on the first 200 test points with 10 random unit
directions per m (shared by the points). Measured (mean ± std over points, share with K_S > 0):

    m          1                 2                 5                 10                20
    S_c     +0.32 ± 1.70 57 %  +0.13 ± 1.37 52 %  +0.17 ± 1.34 50 %  +0.03 ± 0.71 49 %  +0.00 ± 0.60 48 %
    S_f     −0.36 ± 0.71 28 %  −0.35 ± 0.64 28 %  −0.33 ± 0.63 30 %  −0.31 ± 0.59 24 %  −0.33 ± 0.56 24 %
    random  −0.10 ± 0.14 18 %  −0.10 ± 0.11 17 %  −0.11 ± 0.11 12 %  −0.11 ± 0.10 12 %  −0.10 ± 0.10 14 %

The spread over points is large (S_c's std ≈ 1.7 at m = 1; only 57 % of points are positively curved,
where the paper's CIFAR-10 LeNet is "strongly oriented towards positive curvature"), so the
assertions compare means and shares with room, never exact values. Deterministic (seeded). Time:
105 s (49 s of CPU) on the 2-core machine at load average 8; most of it in eigsh (22,500 HVPs).
"""

from __future__ import annotations

import time

import pytest
import torch

from geometry.curvature import average_curvature, curved_subspace, flat_subspace, random_subspace
from geometry.deepfool import deepfool
from geometry.hessian import default_h
from geometry.study import choose_points

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

N_ESTIMATE = 100
N_HELDOUT = 200
N_DIRECTIONS = 10
M_MAX = 20
M_VALUES = [1, 2, 5, 10, 20]


@pytest.fixture(scope="module")
def fig7a(mnist_lenet, mnist_data):
    clf = mnist_lenet
    train, test = mnist_data
    est = train.images[choose_points(len(train), N_ESTIMATE, random_state=0)]
    held = test.images[:N_HELDOUT]
    h = default_h(clf)
    t0 = time.perf_counter()
    df_est = deepfool(clf, est)
    S_c = curved_subspace(clf, est, M_MAX, h=h, random_state=0, deepfool_result=df_est)
    S_f = flat_subspace(clf, est, M_MAX, deepfool_result=df_est)
    S_r = random_subspace(clf.d, M_MAX, random_state=0, input_shape=clf.input_shape)
    df_held = deepfool(clf, held)
    curves = {
        name: average_curvature(
            clf, held, s, M_VALUES, n_directions=N_DIRECTIONS, h=h, random_state=0, deepfool_result=df_held
        )
        for name, s in (("S_c", S_c), ("S_f", S_f), ("random", S_r))
    }
    seconds = time.perf_counter() - t0
    for name, c in curves.items():  # shown with -s / on failure: the measured numbers
        print(
            f"{name:>6}: K_S "
            + "  ".join(
                f"m={m}: {float(mu):+.3f}±{float(sd):.3f} ({float(p):.0%}>0)"
                for m, mu, sd, p in zip(M_VALUES, c.mean, c.std, c.share_positive, strict=True)
            )
        )
    print(f"h = {h:.4f}, S_c: {S_c.n_hvp} HVPs, asymmetry {S_c.asymmetry:.2f}; {seconds:.0f} s")
    return S_c, curves


def test_boundary_points_are_usable(fig7a):
    S_c, curves = fig7a
    assert S_c.n_dropped <= 5  # DeepFool converges on (nearly) every training point
    assert all(c.n >= N_HELDOUT - 5 for c in curves.values())
    assert torch.isfinite(curves["S_c"].mean).all()


def test_curved_subspace_is_positively_curved_at_small_m(fig7a):
    _, c = fig7a
    sc, rnd, sf = c["S_c"], c["random"], c["S_f"]
    # m = 1: measured +0.32 (S_c) vs −0.10 (random) vs −0.36 (S_f)
    assert float(sc.mean[0]) > 0.1
    assert float(sc.mean[0]) > float(rnd.mean[0]) + 0.2
    assert float(sc.mean[0]) > float(sf.mean[0]) + 0.3
    # more points are positively curved along S_c than along random directions (57 % vs 18 %)
    assert float(sc.share_positive[0]) > float(rnd.share_positive[0]) + 0.2
    # over the small-m end of the curve (m ≤ 5) S_c stays above random (and above S_f at every m)
    assert bool((sc.mean[:3] > rnd.mean[:3]).all())
    assert bool((sc.mean > sf.mean).all())


def test_random_directions_are_nearly_flat_and_do_not_depend_on_m(fig7a):
    _, c = fig7a
    rnd = c["random"]
    # measured −0.10 ± 0.10–0.14 at every m: slightly negative, much less spread than S_c
    assert bool((rnd.mean.abs() < 0.3).all())
    assert float(rnd.mean.max() - rnd.mean.min()) < 0.1
    assert bool((rnd.std < c["S_c"].std).all())


def test_curvature_of_s_c_falls_towards_the_random_baseline_as_m_grows(fig7a):
    _, c = fig7a
    excess = c["S_c"].mean - c["random"].mean  # measured +0.43 at m = 1, +0.10 at m = 20
    assert float(excess[-1]) < float(excess[0]) - 0.1
    assert float(c["S_c"].std[-1]) < float(c["S_c"].std[0])  # averaging over more directions narrows it
