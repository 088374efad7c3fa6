"""Lipschitz bounds of uploaded models through their graphs: torch.export programs (ATen operators),
ONNX models and TorchScript modules give the same bound as the network they were exported from; an
operator without a rule is named (geometry.lipschitz; issue 12)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from geometry import zoo
from geometry.classifier import make_classifier
from geometry.lipschitz import UnsupportedLayerError, lipschitz_bound
from geometry.loading import load_classifier
from geometry.loading.export import _fixed_mode


def _export_bytes(module: nn.Module, shape, dtype) -> bytes:
    x = torch.rand(2, *shape, dtype=dtype)
    program = torch.export.export(module.eval(), (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _onnx_bytes(module: nn.Module, shape, dtype) -> bytes:
    buf = io.BytesIO()
    torch.onnx.export(
        module.eval(),
        (torch.rand(2, *shape, dtype=dtype),),
        buf,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
    )
    return buf.getvalue()


@pytest.fixture(scope="module")
def lenet():
    clf = zoo.load_model("digits-lenet")
    return clf, lipschitz_bound(clf)


def _upload(clf, data: bytes, fmt: str):
    norm = clf.network[0]
    return load_classifier(
        data,
        format=fmt,
        input_shape=tuple(clf.input_shape),
        class_names=clf.class_names,
        mean=norm.mean.flatten().tolist(),
        std=norm.std.flatten().tolist(),
        isolate=False,
        name=f"upload:{fmt}",
    )


def _assert_same_bound(got, ref):
    assert got.upper == pytest.approx(ref.upper, rel=1e-6)
    assert got.estimate == pytest.approx(ref.estimate, rel=1e-6)
    assert got.body_upper == pytest.approx(ref.body_upper, rel=1e-6)  # LMT's pair refinement is available
    assert torch.allclose(got.last_weight, ref.last_weight, rtol=1e-6, atol=1e-7)
    assert [round(layer.upper, 4) for layer in got.layers] == [round(layer.upper, 4) for layer in ref.layers]


@pytest.mark.parametrize("fmt", ["export", "onnx"])
def test_an_uploaded_lenet_gets_the_zoo_networks_bound(lenet, fmt):
    clf, ref = lenet
    make = _export_bytes if fmt == "export" else _onnx_bytes
    up = _upload(clf, make(clf.network[1], tuple(clf.input_shape), clf.dtype), fmt)
    assert up.info["format"] == fmt
    got = lipschitz_bound(up)
    _assert_same_bound(got, ref)
    if fmt == "export":  # the layers keep the names of the exported module's parameters
        assert [layer.name for layer in got.layers] == [layer.name for layer in ref.layers]


class _Block(nn.Module):
    """Conv → BatchNorm → LeakyReLU → residual → AvgPool → Flatten → Dropout → Linear, with a scaling."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.act = nn.LeakyReLU(0.2)
        self.pool = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(2 * 3 * 3, 4)
        with torch.no_grad():  # non-trivial batch-norm statistics
            self.bn.running_var.copy_(torch.tensor([0.3, 2.0]))
            self.bn.weight.copy_(torch.tensor([1.5, -0.7]))

    def forward(self, x):
        h = x + 0.5 * self.act(self.bn(self.conv(x)))
        return self.fc(self.drop(torch.flatten(self.pool(h), 1)))


def test_exported_operators_are_bounded_like_the_modules():
    torch.manual_seed(0)
    model = _Block().to(torch.float64).eval()
    shape = (2, 6, 6)
    ref = lipschitz_bound(make_classifier(model, input_shape=shape, class_names=list("abcd")))
    program = torch.export.export(model, (torch.rand(2, *shape, dtype=torch.float64),))
    bare = make_classifier(
        _fixed_mode(program.module()), input_shape=shape, class_names=list("abcd")
    )  # no normalisation
    got = lipschitz_bound(bare)
    assert got.upper == pytest.approx(ref.upper, rel=1e-9)
    assert got.estimate == pytest.approx(ref.estimate, rel=1e-9)
    kinds = {layer.name: layer.kind for layer in got.layers}
    assert kinds["conv"] == "Conv2d" and kinds["bn"] == "BatchNorm" and kinds["fc"] == "Linear"
    # composition over the ATen graph: the residual adds the identity to the branch, chains multiply
    c = {layer.kind: layer.upper for layer in got.layers}
    assert c["scaling"] == pytest.approx(0.5)
    expected = (1.0 + 0.5 * c["Conv2d"] * c["BatchNorm"]) * c["avg_pool2d"] * c["Linear"]
    assert got.upper == pytest.approx(expected, rel=1e-12)
    assert c["BatchNorm"] == pytest.approx(1.5 / math.sqrt(0.3 + 1e-5), rel=1e-6)  # 0.3 stored in float32


class _Exp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.exp(torch.flatten(x, 1)))


def test_an_exported_operator_without_a_rule_is_named():
    model = _Exp().to(torch.float64).eval()
    program = torch.export.export(model, (torch.rand(2, 1, 2, 2, dtype=torch.float64),))
    clf = make_classifier(_fixed_mode(program.module()), input_shape=(1, 2, 2), class_names=list("abc"))
    with pytest.raises(UnsupportedLayerError, match=r"aten\.exp"):
        lipschitz_bound(clf)


def test_a_cached_bound_is_not_shared_across_structures_with_the_same_weights(lenet):
    """Same weights, another graph (TorchScript): the weights' fingerprint agrees, the structure's does not,
    so the bound of a TorchScript upload is computed from its own graph (and agrees with the zoo's)."""
    from geometry.study.certify import lipschitz_study, structure_fingerprint
    from geometry.study.points import network_fingerprint

    clf, ref = lenet
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(clf.network[1].eval()), buf)
    scripted = _upload(clf, buf.getvalue(), "torchscript")
    assert network_fingerprint(scripted) == network_fingerprint(clf)
    assert structure_fingerprint(scripted) != structure_fingerprint(clf)
    assert structure_fingerprint(zoo.load_model("digits-lenet")) == structure_fingerprint(clf)
    got = lipschitz_study(scripted)
    _assert_same_bound(got, ref)
    assert [layer.name for layer in got.layers][1:] == [f"script.{layer.name}" for layer in ref.layers][1:]


class _TracedResidual(nn.Module):
    """Conv → BatchNorm → ReLU → residual conv branch → MaxPool → ``view(size(0), -1)`` → Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.c2 = nn.Conv2d(3, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(3 * 2 * 2, 4)
        with torch.no_grad():
            self.bn.running_var.copy_(torch.tensor([0.3, 2.0, 1.0]))

    def forward(self, x):
        h = torch.relu(self.bn(self.c1(x)))
        h = self.pool(h + torch.relu(self.c2(h)))
        return self.fc(h.view(h.size(0), -1))


def test_a_traced_torchscript_conv_net_gets_its_certificates():
    """torch.jit.trace records convolutions as ``aten::_convolution`` and the flatten's ``x.size(0)``: both have a
    rule, so an ordinary traced conv net (a residual add included) gets the module's Lipschitz bound and CROWN's
    radii, uploaded as TorchScript like any user's file."""
    from geometry.certify import certify
    from geometry.crown import crown_radius

    torch.manual_seed(3)
    model = _TracedResidual().eval().requires_grad_(False)
    shape = (1, 4, 4)
    ref_clf = make_classifier(model, input_shape=shape, class_names=list("abcd"), mean=(0.5,), std=(0.25,))
    with pytest.warns(FutureWarning):
        traced = torch.jit.trace(model, torch.rand(1, *shape))
    buf = io.BytesIO()
    torch.jit.save(traced, buf)
    up = load_classifier(
        buf.getvalue(),
        format="torchscript",
        input_shape=shape,
        class_names=list("abcd"),
        mean=[0.5],
        std=[0.25],
        isolate=False,
        name="upload:traced",
    )
    ref, got = lipschitz_bound(ref_clf), lipschitz_bound(up)
    assert got.upper == pytest.approx(ref.upper, rel=1e-9)
    assert "Conv2d" in {layer.kind for layer in got.layers}
    xs = torch.rand(3, *shape)
    assert certify(up, xs).radius == pytest.approx(certify(ref_clf, xs).radius, rel=1e-6)
    labels = ref_clf.logits(xs).argmax(1)
    assert torch.allclose(
        crown_radius(up, xs, labels, tol=1e-5), crown_radius(ref_clf, xs, labels, tol=1e-5), rtol=1e-9
    )
