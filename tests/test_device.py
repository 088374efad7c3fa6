"""The device setting (issue 15, item 1): resolve_device, Classifier.to / .device, the CLI's
--device, and the audit that every geometry function computes where the classifier lives.

A CPU-only machine cannot place a classifier elsewhere, so the audit uses the *dtype* as the proxy
for the device: a tensor created without ``device=`` is usually also created without ``dtype=``
(float32 by default), and a float64 classifier whose results are float64 *and* exact to 1e-10 on
analytic boundaries proves that no float32 intermediate (a host-side default tensor) got into the
computation. Where CUDA is present, the same results on cuda as on cpu within 1e-4.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from geometry.classifier import Classifier
from geometry.curvature import average_curvature, curvature_along, curved_subspace, random_subspace
from geometry.deepfool import deepfool
from geometry.device import DeviceError, available_devices, device_label, resolve_device
from geometry.errors import AtlasError
from geometry.hessian import boundary_gradient, hvp
from geometry.sections import normal_section, random_direction
from geometry.study import network_fingerprint
from geometry.testing import affine_classifier, quadratic_classifier, sphere_classifier

CUDA = torch.cuda.is_available()
SHAPE = (1, 4, 4)
D = 16


# ---------------------------------------------------------------------------- resolve_device
def test_resolve_device_spellings():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    expected = torch.device("cuda", torch.cuda.current_device()) if CUDA else torch.device("cpu")
    assert resolve_device("auto") == expected
    assert resolve_device(None) == expected
    assert available_devices()[0] == "cpu"
    assert len(available_devices()) == 1 + (torch.cuda.device_count() if CUDA else 0)
    assert device_label("cpu") == "cpu"


@pytest.mark.parametrize("spec", ["gpu", "mps", "cuda:x", "cuda:-1", "", "tpu:0", 3])
def test_resolve_device_rejects_unknown_spellings(spec):
    with pytest.raises(DeviceError, match="device") as info:
        resolve_device(spec)
    assert isinstance(info.value, AtlasError)


@pytest.mark.skipif(CUDA, reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_a_gpu_is_a_clear_error(spec):
    with pytest.raises(DeviceError, match="sees none on this machine"):
        resolve_device(spec)


@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_index_beyond_the_gpus_is_an_error():
    with pytest.raises(DeviceError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


# ---------------------------------------------------------------------------- Classifier.to
def test_classifier_to_cpu_round_trip(digits_lenet):
    clf = digits_lenet
    assert clf.device == torch.device("cpu")
    same = clf.to("cpu")
    assert same is clf  # nothing to move: the very same classifier
    assert clf.to("auto").device == resolve_device("auto")
    with pytest.raises(DeviceError):
        clf.to("gpu")
    # a network without parameters or buffers lives on the CPU
    bare = dataclasses.replace(clf, network=torch.nn.Flatten(), model=torch.nn.Flatten())
    assert bare.device == torch.device("cpu")


def test_cli_device_option_errors_before_any_work(capsys):
    from geometry.cli import main

    assert main(["--device", "gpu", "models"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "unknown device 'gpu'" in err and "Traceback" not in err
    assert main(["--device", "cpu", "models"]) == 0


# ---------------------------------------------------------------------------- the audit (dtype proxy)
def _float64_twin(clf: Classifier) -> Classifier:
    """The same network in float64 (a copy; the session's zoo network is never touched)."""
    memo: dict = {}
    network = copy.deepcopy(clf.network, memo).double()
    model = copy.deepcopy(clf.model, memo)
    return dataclasses.replace(clf, network=network, model=model)


def test_analytic_float64_classifiers_stay_float64_and_exact():
    """Closed forms to 1e-10: one float32 intermediate anywhere would cost ~1e-7."""
    gen = torch.Generator().manual_seed(0)
    # DeepFool on an affine classifier: one exact step onto the nearest hyperplane
    W = torch.randn(3, D, generator=gen, dtype=torch.float64)
    b = torch.randn(3, generator=gen, dtype=torch.float64)
    aff = affine_classifier(W, b, input_shape=SHAPE)
    x = torch.rand(5, *SHAPE, generator=gen, dtype=torch.float64)
    res = deepfool(aff, x, overshoot=0.0, max_iter=1)
    assert res.r.dtype == torch.float64 and res.norms.dtype == torch.float64
    f = x.flatten(1) @ W.T + b
    k = res.label
    j = res.adv_label
    w = W[j] - W[k]
    gap = (f.gather(1, k[:, None]) - f.gather(1, j[:, None])).squeeze(1)
    exact = (gap + 1e-4) / (w * w).sum(1)  # Algorithm 2's step: (|f'| + 1e-4)/‖w‖² · w
    torch.testing.assert_close(res.r.flatten(1), exact[:, None] * w, rtol=1e-10, atol=1e-12)

    # HVP and boundary gradient of a planted quadratic boundary
    A = torch.randn(D, D, generator=gen, dtype=torch.float64)
    A = A + A.T
    g = torch.randn(D, generator=gen, dtype=torch.float64)
    quad = quadratic_classifier(A, g, torch.zeros(D), input_shape=SHAPE)
    z = torch.randn(3, *SHAPE, generator=gen, dtype=torch.float64)
    v = torch.randn(3, D, generator=gen, dtype=torch.float64)
    lab, adv = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    out = hvp(quad, z, lab, adv, v, h=0.3).hv
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, v @ A, rtol=1e-10, atol=1e-10)
    bg = boundary_gradient(quad, z, lab, adv)
    assert bg.grad.dtype == torch.float64
    torch.testing.assert_close(bg.grad.flatten(1), g + z.flatten(1) @ A, rtol=1e-12, atol=1e-12)

    # Curvature 1/R of the sphere, along tangent directions, and S_c by eigsh (no dense shortcut)
    R = 2.0
    sph = sphere_classifier(torch.full((D,), 0.5, dtype=torch.float64), R, input_shape=SHAPE)
    xs = 0.5 + 0.3 * torch.randn(4, *SHAPE, generator=gen, dtype=torch.float64)
    dirs = torch.randn(3, D, generator=gen, dtype=torch.float64)
    df = deepfool(sph, xs)
    along = curvature_along(sph, xs, dirs, h=0.05, deepfool_result=df)
    assert along.kappa.dtype == torch.float64 and bool(along.converged.all())
    # F = ‖x − c‖² − R²: H = 2I everywhere (K = 2), normal curvature 1/‖z − c‖ at z = x + r
    two = torch.full_like(along.curvature, 2.0)
    torch.testing.assert_close(along.curvature, two, rtol=1e-10, atol=0)
    rho = (xs + df.r).flatten(1).sub(0.5).norm(dim=1)
    torch.testing.assert_close(along.kappa, (1 / rho)[:, None].expand_as(two), rtol=1e-10, atol=0)
    s = curved_subspace(sph, xs, 3, h=0.05, solver="eigsh", tol=1e-10, deepfool_result=df)
    assert s.basis.dtype == torch.float64 and s.curvatures.dtype == torch.float64
    torch.testing.assert_close(s.curvatures, torch.full((3,), 2.0, dtype=torch.float64), rtol=1e-10, atol=0)
    curve = average_curvature(
        sph, xs, random_subspace(D, 4, random_state=1), [1, 4], n_directions=3, h=0.05, deepfool_result=df
    )
    torch.testing.assert_close(curve.mean, torch.full((2,), 2.0, dtype=torch.float64), rtol=1e-10, atol=0)


def test_a_float64_network_gives_float64_results_and_agrees_with_float32(digits_lenet):
    clf32 = digits_lenet
    clf64 = _float64_twin(clf32)
    assert clf64.dtype == torch.float64 and clf32.dtype == torch.float32
    from geometry.data import load_dataset

    xs = load_dataset("digits", split="test").images[:6]
    ref = deepfool(clf32, xs)
    keep = ref.converged & (ref.label != ref.adv_label)
    z = (xs + ref.r)[keep].double()
    v = torch.randn(int(keep.sum()), clf32.d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = {}
    for name, clf in (("32", clf32), ("64", clf64)):
        x = xs.to(clf.dtype)
        df = deepfool(clf, x)
        assert df.r.dtype == clf.dtype
        hv = hvp(clf, z.to(clf.dtype), ref.label[keep], ref.adv_label[keep], v.to(clf.dtype)).hv
        s = curved_subspace(clf, x, 3, deepfool_result=df, solver="eigsh", tol=1e-6)
        sec = normal_section(
            clf, x[0], df.r[0], random_direction(clf.input_shape, random_state=0, dtype=clf.dtype), resolution=32
        )
        assert hv.dtype == clf.dtype and sec.e1.dtype == clf.dtype
        assert s.basis.dtype == torch.float64  # subspaces are float64 by contract, whatever the network
        res[name] = (df, hv, s, sec)
    (d32, h32, _, c32), (d64, h64, _, c64) = res["32"], res["64"]
    torch.testing.assert_close(d64.r.float(), d32.r, rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(h64.float(), h32, rtol=1e-2, atol=1e-3)
    assert (c64.labels == c32.labels).double().mean() > 0.99
    # the fingerprint hashes values and dtypes, not places: float64 is another network
    assert network_fingerprint(clf64) != network_fingerprint(clf32)


# ---------------------------------------------------------------------------- CUDA, where present
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_cuda_gives_the_cpu_results(digits_lenet):
    from geometry.data import load_dataset

    cpu = digits_lenet
    gpu = cpu.to("cuda")
    assert gpu.device.type == "cuda" and cpu.device == torch.device("cpu")  # the original stays put
    assert cpu.to("cuda") is gpu  # one copy per (network, device)
    assert gpu.to("cpu") is not cpu and gpu.to("cpu").device == torch.device("cpu")
    assert network_fingerprint(gpu) == network_fingerprint(cpu)  # caches are shared across devices
    xs = load_dataset("digits", split="test").images[:8]
    a, b = deepfool(cpu, xs), deepfool(gpu, xs)
    assert b.r.device == torch.device("cpu")  # public results stay CPU tensors
    torch.testing.assert_close(b.r, a.r, rtol=1e-4, atol=1e-4)
    keep = a.converged & (a.label != a.adv_label)
    z = (xs + a.r)[keep]
    v = torch.randn(int(keep.sum()), cpu.d, generator=torch.Generator().manual_seed(0))
    ha = hvp(cpu, z, a.label[keep], a.adv_label[keep], v).hv
    hb = hvp(gpu, z, a.label[keep], a.adv_label[keep], v).hv
    assert hb.device == torch.device("cpu")
    torch.testing.assert_close(hb, ha, rtol=1e-4, atol=1e-4 * float(ha.abs().max()))
    sa = curved_subspace(cpu, xs, 3, deepfool_result=a, solver="dense")
    sb = curved_subspace(gpu, xs, 3, deepfool_result=a, solver="dense")
    torch.testing.assert_close(sb.spectrum, sa.spectrum, rtol=1e-4, atol=1e-4)
    v2 = random_direction(cpu.input_shape, random_state=0)
    ca = normal_section(cpu, xs[0], a.r[0], v2, resolution=32)
    cb = normal_section(gpu, xs[0], a.r[0], v2, resolution=32)
    assert (ca.labels == cb.labels).double().mean() > 0.999
    assert math.isclose(ca.r_norm, cb.r_norm, rel_tol=1e-6)


# ---------------------------------------------------------------------------- the app
def test_sidebar_offers_the_devices_present_and_the_model_card_names_one():
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parent.parent / "app.py")
    at = AppTest.from_file(app, default_timeout=240).run()
    assert not at.exception, [e.value for e in at.exception]
    select = at.selectbox(key="device")
    assert select.options == [*available_devices()[1:], "cpu"]  # CUDA first (= auto) when present
    assert select.value == str(resolve_device("auto"))  # the default is "auto": cuda:0 or cpu
    assert select.disabled == (len(available_devices()) == 1)  # nothing to choose on a CPU-only machine
    text = " ".join(m.value for m in at.markdown)
    assert f"**Device:** {device_label(select.value)}" in text
