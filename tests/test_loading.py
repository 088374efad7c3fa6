"""Loading a user-supplied model: every format round-trips to identical logits, bad files give their
own clear message, code-carrying files are refused without running anything, and (marked
``shared_data``) the two real pretrained CIFAR-10 state_dicts reach their known accuracies."""

from __future__ import annotations

import functools
import io
import json
import os
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from geometry.classifier import make_classifier
from geometry.data import CIFAR10_CLASSES, load_dataset, load_npz
from geometry.errors import AtlasError, InvalidInputError, ModelLoadError, UnknownNameError
from geometry.loading import (
    FORMATS,
    CifarResNet,
    architecture_names,
    build_loading_architecture,
    detect_format,
    validate_classifier,
)
from geometry.loading import load_classifier as _load_classifier
from geometry.zoo import LeNet

# These tests check formats, messages and the screen, which run the same in the child process and
# here; loading in this process keeps them fast. The child process itself (limits, timeouts, the
# server never loading a refused file) is tested in tests/test_upload_security.py.
load_classifier = functools.partial(_load_classifier, isolate=False)

SHAPE = (1, 8, 8)
MEAN, STD = (0.3,), (0.25,)
KW = dict(input_shape=SHAPE, mean=MEAN, std=STD)

# the tests write TorchScript on purpose (users still upload it); torch ≥ 2.10 calls it deprecated
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")


def _lenet(seed: int = 0) -> LeNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LeNet(SHAPE, 10).eval()


def _probe(n: int = 16) -> torch.Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(1))


def _script_bytes(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(module.eval()), buf)
    return buf.getvalue()


def _export_bytes(module: nn.Module, *, dynamic: bool = True) -> bytes:
    x = _probe(2)
    dyn = ({0: torch.export.Dim("batch")},) if dynamic else None
    program = torch.export.export(module.eval(), (x,), dynamic_shapes=dyn)
    buf = io.BytesIO()
    torch.export.save(program, buf)
    return buf.getvalue()


def _torch_save_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _rewrite_zip(data: bytes, edit) -> bytes:
    """Copy a zip archive entry by entry; ``edit(relative_name, bytes)`` returns new bytes or None (drop)."""
    zin = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        root = zin.namelist()[0].split("/", 1)[0]
        for info in zin.infolist():
            rel = info.filename.split("/", 1)[1]
            new = edit(rel, zin.read(info.filename))
            if new is not None:
                zout.writestr(info.filename, new)
        extra = edit("__extra__", None)
        if extra:
            for rel, content in extra.items():
                zout.writestr(f"{root}/{rel}", content)
    return out.getvalue()


@pytest.fixture(scope="module")
def model() -> LeNet:
    return _lenet()


@pytest.fixture(scope="module")
def reference(model):
    """The original network, wrapped the way the loaded one will be."""
    return make_classifier(_lenet(), input_shape=SHAPE, class_names=[str(i) for i in range(10)], mean=MEAN, std=STD)


@pytest.fixture(scope="module")
def files(tmp_path_factory, model) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    from safetensors.torch import save_file

    paths = {
        "script": folder / "scripted.pt",
        "trace": folder / "traced.pt",
        "export": folder / "exported.pt2",
        "state_dict": folder / "weights.pth",
        "safetensors": folder / "weights.safetensors",
    }
    paths["script"].write_bytes(_script_bytes(model))
    traced = torch.jit.trace(model, _probe(2))
    torch.jit.save(traced, str(paths["trace"]))
    paths["export"].write_bytes(_export_bytes(model))
    torch.save(model.state_dict(), paths["state_dict"])
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(paths["safetensors"]))
    return paths


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize(
    "kind, fmt",
    [
        ("script", "torchscript"),
        ("trace", "torchscript"),
        ("export", "export"),
        ("state_dict", "state_dict"),
        ("safetensors", "safetensors"),
    ],
)
def test_every_format_round_trips_to_identical_logits(files, reference, kind, fmt):
    arch = {"architecture": "lenet"} if fmt in ("state_dict", "safetensors") else {}
    clf = load_classifier(files[kind], **KW, **arch)
    assert clf.info["format"] == fmt
    assert detect_format(files[kind]) == fmt
    x = _probe()
    assert torch.equal(clf.logits(x), reference.logits(x))
    assert clf.class_names == tuple(str(i) for i in range(10))  # default names from the probe
    assert clf.name == files[kind].stem
    assert clf.input_shape == SHAPE and clf.mean == MEAN and clf.std == STD
    assert all(not p.requires_grad for p in clf.network.parameters())
    assert clf.info["parameters"] == sum(p.numel() for p in reference.model.parameters())
    # differentiable in the input (the atlas needs ∇f)
    xg = x[:2].clone().requires_grad_(True)
    clf(xg)[:, 0].sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all()


def test_loading_leaves_the_global_rng_alone(files):
    state = torch.random.get_rng_state()
    load_classifier(files["state_dict"], architecture="lenet", **KW)
    load_classifier(files["script"], **KW)
    assert torch.equal(state, torch.random.get_rng_state())


def test_bytes_and_file_like_sources(files, reference):
    data = files["script"].read_bytes()
    x = _probe()

    clf = load_classifier(data, **KW)
    assert clf.name == "uploaded-model" and clf.info["file"] == "uploaded model (bytes)"
    assert torch.equal(clf.logits(x), reference.logits(x))

    class Upload:  # what streamlit's UploadedFile offers
        name = "my net.pt"

        def __init__(self, b):
            self._b = b

        def getvalue(self):
            return self._b

    clf = load_classifier(Upload(data), **KW)
    assert clf.name == "my net" and torch.equal(clf.logits(x), reference.logits(x))

    with open(files["state_dict"], "rb") as fh:  # a plain binary file object (read())
        clf = load_classifier(fh, architecture="lenet", **KW)
    assert torch.equal(clf.logits(x), reference.logits(x))

    buf = io.BytesIO(files["export"].read_bytes())
    assert torch.equal(load_classifier(buf, **KW).logits(x), reference.logits(x))


def test_class_names_bounds_and_info(files):
    names = [f"digit {i}" for i in range(10)]
    clf = load_classifier(
        files["state_dict"], architecture="lenet", class_names=names, bounds=(0.0, 255.0), name="mine", **KW
    )
    assert clf.class_names == tuple(names) and clf.bounds == (0.0, 255.0) and clf.name == "mine"
    assert len(clf.info["sha256"]) == 64 and clf.info["bytes"] == files["state_dict"].stat().st_size
    assert clf.info["architecture"] == "lenet"


def test_data_parallel_prefix_and_checkpoint_wrappers(tmp_path, model, reference):
    x = _probe()
    prefixed = {f"module.{k}": v for k, v in model.state_dict().items()}
    for i, obj in enumerate(
        [
            prefixed,
            {"epoch": 7, "state_dict": prefixed},
            {"model_state_dict": model.state_dict()},
            {"net": prefixed, "acc": 0.5},
        ]
    ):
        path = tmp_path / f"ckpt{i}.pt"
        torch.save(obj, path)
        clf = load_classifier(path, architecture="lenet", **KW)
        assert torch.equal(clf.logits(x), reference.logits(x)), i
    assert "stripped prefix 'module.'" in clf.info["notes"]
    assert "unwrapped checkpoint['net']" in clf.info["notes"]


def test_legacy_non_zip_state_dict(tmp_path, model, reference):
    path = tmp_path / "legacy.pt"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    clf = load_classifier(path, architecture="lenet", **KW)
    assert clf.info["detected"].startswith("pickle stream")
    assert torch.equal(clf.logits(_probe()), reference.logits(_probe()))


def test_architecture_kwargs_and_num_classes_read_from_weights(tmp_path):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        wide = LeNet((3, 32, 32), 7, channels=(32, 64), hidden=(256, 128)).eval()
    path = tmp_path / "wide.pt"
    torch.save(wide.state_dict(), path)
    clf = load_classifier(
        path,
        architecture="lenet",
        architecture_kwargs={"channels": (32, 64), "hidden": (256, 128)},
        input_shape=(3, 32, 32),
    )
    assert clf.num_classes == 7
    assert "num_classes=7 read from the weights" in clf.info["notes"]
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clf.logits(x), wide(x))


def test_torchvision_architecture(tmp_path):
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torchvision.models.get_model("shufflenet_v2_x0_5", weights=None, num_classes=10).eval()
    path = tmp_path / "shuffle.pth"
    torch.save(net.state_dict(), path)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    clf = load_classifier(path, architecture="torchvision:shufflenet_v2_x0_5", input_shape=(3, 32, 32))
    assert clf.num_classes == 10  # read from the weights
    assert torch.allclose(clf.logits(x), net(x), atol=1e-6)
    with torch.device("meta"):  # a plain torchvision name works too when it is not a zoo name
        plain = build_loading_architecture("shufflenet_v2_x0_5", input_shape=(3, 32, 32), num_classes=10)
    assert type(plain) is type(net)
    assert "torchvision:shufflenet_v2_x0_5" in architecture_names() and "resnet20" in architecture_names()


def test_scripted_torchvision_blocks_are_not_mistaken_for_foreign_operators():
    from torchvision.ops.misc import Conv2dNormActivation

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            Conv2dNormActivation(1, 4, kernel_size=3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
        ).eval()
    data = _script_bytes(net)
    assert b"torchvision/ops/misc" in data  # class paths `__torch__.torchvision.ops.misc…` in the code
    clf = load_classifier(data, input_shape=SHAPE)
    assert torch.equal(clf.logits(_probe()), net(_probe()))


def test_cifar_resnet20_layout():
    net = CifarResNet((3, 32, 32), 10, depth=20)
    sd = net.state_dict()
    assert sum(p.numel() for p in net.parameters()) == 272_474
    assert tuple(sd["conv1.weight"].shape) == (16, 3, 3, 3) and "conv1.bias" not in sd
    assert tuple(sd["layer2.0.downsample.0.weight"].shape) == (32, 16, 1, 1)
    assert "layer3.0.downsample.1.running_mean" in sd and "layer1.0.downsample.0.weight" not in sd
    assert tuple(sd["fc.weight"].shape) == (10, 64)
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


# ------------------------------------------------------------------------------------ refused files
def test_pickled_module_is_refused_with_the_reason_and_the_way_out(tmp_path, model):
    path = tmp_path / "whole_model.pt"
    torch.save(model, path)
    with pytest.raises(ModelLoadError) as info:
        load_classifier(path, architecture="lenet", **KW)
    msg = str(info.value)
    assert "refusing 'whole_model.pt'" in msg and "geometry.architectures.LeNet" in msg
    assert "runs arbitrary code" in msg and "weights_only=False" in msg
    assert "torch.jit.script" in msg and "torch.export.save" in msg and "state_dict()" in msg


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "weights.pt"
    torch.save({"conv1.weight": torch.zeros(1), "x": Payload()}, path)
    legacy = tmp_path / "legacy.pth"
    torch.save({"p": Payload()}, legacy, _use_new_zipfile_serialization=False)
    for p in (path, legacy):
        with pytest.raises(ModelLoadError, match=r"refusing .*pickled Python object"):
            load_classifier(p, architecture="lenet", **KW)
        with pytest.raises(ModelLoadError):  # whatever format the caller claims
            load_classifier(p, format="torchscript", **KW)
    assert not marker.exists()


def test_malicious_exported_programs_are_refused_and_never_run(tmp_path, model):
    marker = tmp_path / "pwned"
    good = _export_bytes(model)
    code = f"__import__('os').system('touch {marker}')"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    def edit_json(change):
        def edit(rel, data):
            if rel == "models/model.json":
                program = json.loads(data)
                change(program)
                return json.dumps(program).encode()
            return None if rel == "__extra__" else data

        return edit

    def first_node(program):
        return program["graph_module"]["graph"]["nodes"][0]

    def set_expr(program):
        for value in program["graph_module"]["graph"]["tensor_values"].values():
            for size in value.get("sizes", []):
                if "as_expr" in size:
                    size["as_expr"]["expr_str"] = code
                    return

    crafted = {
        "sample inputs": lambda rel, data: (
            _torch_save_bytes((Payload(),))
            if rel == "data/sample_inputs/model.pt"
            else None
            if rel == "__extra__"
            else data
        ),
        "target": edit_json(lambda p: first_node(p).update(target="torch.os.system")),
        "image op": edit_json(lambda p: first_node(p).update(target="torch.ops.image.write_file.default")),
        "expression": edit_json(set_expr),
        "aoti": lambda rel, data: {"data/aotinductor/model/model.so": b"\x7fELF"} if rel == "__extra__" else data,
        "pickled weight": lambda rel, data: (
            data.replace(b'"use_pickle": false', b'"use_pickle": true', 1)
            if rel == "data/weights/model_weights_config.json"
            else None
            if rel == "__extra__"
            else data
        ),
    }
    names = {
        "sample inputs": "sample inputs",
        "target": "'torch.os.system'",
        "image op": "image.write_file",
        "expression": "the shape expression",
        "aoti": "aotinductor",
        "pickled weight": "stored as a pickle",
    }
    for what, edit in crafted.items():
        with pytest.raises(ModelLoadError, match="refusing") as info:
            load_classifier(_rewrite_zip(good, edit), **KW)
        assert names[what] in str(info.value), what
    assert not marker.exists()

    # guards_code is exec-ed by ExportedProgram.module(): we never ask for it, so this loads and runs nothing
    guarded = _rewrite_zip(good, edit_json(lambda p: p.update(guards_code=[code])))
    clf = load_classifier(guarded, **KW)
    clf.logits(_probe())
    assert not marker.exists()


def test_torchscript_that_touches_files_is_refused(tmp_path):
    marker = tmp_path / "written"
    data = _script_bytes(_WritesFile(str(marker)))
    with pytest.raises(ModelLoadError, match=r"refusing .*uses 'torch.save'; an uploaded model may call only"):
        load_classifier(data, input_shape=(1, 2, 2))
    assert not marker.exists()
    # hand-edited code calling torchvision's file operator (the scan runs before anything is compiled)
    data = _rewrite_zip(
        _script_bytes(_Flat()),
        lambda rel, b: (
            None
            if rel == "__extra__"
            else (
                b.replace(b"torch.flatten(x, 1)", b"ops.image.read_file('/etc/passwd')") if rel.endswith(".py") else b
            )
        ),
    )
    with pytest.raises(ModelLoadError, match=r"calls operator 'ops.image.read_file'"):
        load_classifier(data, input_shape=(1, 2, 2))


class _WritesFile(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        torch.save(x, self.path)
        return x.flatten(1)


@pytest.mark.parametrize("kind", ["script", "export", "state_dict", "safetensors"])
def test_truncated_file_names_file_and_format(files, tmp_path, kind):
    data = files[kind].read_bytes()
    path = tmp_path / files[kind].name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_classifier(path, architecture="lenet", **KW)
    msg = str(info.value)
    assert files[kind].name in msg and "truncated or corrupt" in msg
    assert {
        "script": "PyTorch zip archive",
        "export": "torch.export",
        "state_dict": "PyTorch zip archive",
        "safetensors": "safetensors",
    }[kind] in msg
    # with the format given explicitly the message names it too
    fmt = {"script": "torchscript", "export": "export", "state_dict": "state_dict", "safetensors": "safetensors"}[kind]
    with pytest.raises(ModelLoadError, match=r"could not load '.*' as .*truncated or corrupt"):
        load_classifier(path, format=fmt, architecture="lenet", **KW)


def test_truncated_legacy_pickle(tmp_path, model):
    path = tmp_path / "old.pt"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"could not load 'old.pt' as state_dict .*truncated"):
        load_classifier(path, architecture="lenet", **KW)


def test_unrecognised_empty_missing_and_oversized_files(tmp_path, files):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello world, not a model")
    with pytest.raises(ModelLoadError, match=r"'notes.txt' is not a recognised model file"):
        load_classifier(junk, **KW)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="is empty"):
        load_classifier(empty, **KW)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_classifier(tmp_path / "missing.pt", **KW)
    npz = tmp_path / "data.npz"
    import numpy as np

    np.savez(npz, images=np.zeros((2, 8, 8)))
    with pytest.raises(ModelLoadError, match="zip archive but not a PyTorch model"):
        load_classifier(npz, **KW)
    with pytest.raises(ModelLoadError, match=r"over the limit of 1,000 bytes"):
        load_classifier(files["state_dict"], architecture="lenet", max_bytes=1000, **KW)
    with pytest.raises(ModelLoadError, match=r"over the limit"):
        load_classifier(files["script"].read_bytes(), max_bytes=1000, **KW)
    with pytest.raises(ModelLoadError, match="source must be a file path, bytes, or a binary file object"):
        load_classifier(123, **KW)


def test_zip_that_unpacks_beyond_the_limit(files):
    bomb = _rewrite_zip(
        files["script"].read_bytes(), lambda rel, b: {"extra/padding": b"\0" * 3_000_000} if rel == "__extra__" else b
    )
    out = io.BytesIO()  # recompress: the padding deflates to a few kB
    with zipfile.ZipFile(io.BytesIO(bomb)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    assert len(out.getvalue()) < 1_000_000
    with pytest.raises(ModelLoadError, match=r"unpacks to 3,\d{3},\d{3} bytes .*over the limit of 1,000,000 bytes"):
        load_classifier(out.getvalue(), max_bytes=1_000_000, **KW)


def test_wrong_format_names_the_detected_one(files):
    with pytest.raises(ModelLoadError, match=r"TorchScript .*looks like state_dict .*try format='state_dict'"):
        load_classifier(files["state_dict"], format="torchscript", **KW)
    with pytest.raises(UnknownNameError, match="unknown model format 'keras'"):
        load_classifier(files["state_dict"], format="keras", **KW)


def test_state_dict_needs_an_architecture_and_a_fitting_one(files):
    with pytest.raises(ModelLoadError, match=r"is a state_dict .*pass architecture="):
        load_classifier(files["state_dict"], **KW)
    with pytest.raises(UnknownNameError, match="unknown architecture 'lenet5'"):
        load_classifier(files["state_dict"], architecture="lenet5", **KW)
    with pytest.raises(ModelLoadError) as info:  # another architecture: keys differ
        load_classifier(files["state_dict"], architecture="mlp", num_classes=10, **KW)
    msg = str(info.value)
    assert "do not fit architecture 'mlp'" in msg and "4 unexpected key(s) (conv1.weight, conv1.bias" in msg
    assert "fc1.weight: file (120, 64) vs model (256, 64)" in msg
    with pytest.raises(ModelLoadError, match=r"10 missing key\(s\) \(conv1.weight, .*10 unexpected key\(s\)"):
        load_classifier(
            _torch_save_bytes({f"net.{k}": v for k, v in _lenet().state_dict().items()}), architecture="lenet", **KW
        )
    with pytest.raises(ModelLoadError) as info:  # same layers, other input size: shapes differ
        load_classifier(files["state_dict"], architecture="lenet", input_shape=(1, 28, 28), num_classes=10)
    msg = str(info.value)
    assert "shape mismatch(es)" in msg and "fc1.weight: file (120, 64) vs model (120, 256)" in msg
    with pytest.raises(ModelLoadError, match=r"fc3.weight: file \(10, 84\) vs model \(3, 84\)"):
        load_classifier(files["state_dict"], architecture="lenet", class_names=["a", "b", "c"], **KW)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelLoadError, match="holds a list, not a state_dict"):
        load_classifier(path, architecture="lenet", **KW)
    path = tmp_path / "meta.pt"
    torch.save({"epoch": 3, "optimizer": {"lr": 0.1}}, path)
    with pytest.raises(ModelLoadError, match=r"holds a dict that is not a state_dict \(keys 'epoch', 'optimizer'\)"):
        load_classifier(path, architecture="lenet", **KW)


# ------------------------------------------------------------------------------------ validation
class _ExtraDim(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10].unsqueeze(-1)


class _NaN(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10] * float("nan")


class _Noisy(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10]
        return out + 0.1 * torch.randn_like(out)


class _AlwaysDropout(nn.Module):
    def forward(self, x):
        return nn.functional.dropout(x.flatten(1)[:, :10], 0.5, training=True)


class _BatchStats(nn.Module):
    def forward(self, x):
        out = x.flatten(1)[:, :10]
        return out - out.mean(0, keepdim=True)


class _Detached(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10].detach()


class _Flat(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


@pytest.mark.parametrize(
    "module, phrase",
    [
        (_ExtraDim(), r"must return logits of shape \(N, L\) = \(4, L\); .* returned shape \(4, 10, 1\)"),
        (_NaN(), r"returned NaN or inf logits \(40 of 40 values\)"),
        (_Noisy(), r"is not deterministic in eval mode"),  # loaded: refused earlier, by the screen (below)
        (_AlwaysDropout(), r"is not deterministic in eval mode"),
        (_BatchStats(), r"different logits alone than inside a batch"),
        (_Detached(), r"not differentiable with respect to its input"),
    ],
)
def test_bad_models_each_get_their_own_message(module, phrase):
    data = _script_bytes(module)
    # random sampling is not on the operator allow-list: the screen refuses it before any forward pass
    with pytest.raises(ModelLoadError, match=r"uses 'torch.randn_like'" if isinstance(module, _Noisy) else phrase):
        load_classifier(data, input_shape=SHAPE, class_names=[str(i) for i in range(10)], name="bad")
    with pytest.raises(ModelLoadError, match=phrase):  # the same check, called directly
        validate_classifier(make_classifier(module, input_shape=SHAPE, class_names=[str(i) for i in range(10)]))


def test_mismatched_class_names(files):
    with pytest.raises(
        ModelLoadError, match=r"returns 10 logits per image but 3 class names were given \('a', 'b', 'c'\)"
    ):
        load_classifier(files["script"], class_names=["a", "b", "c"], **KW)


def test_wrong_input_shape(files):
    with pytest.raises(
        ModelLoadError, match=r"does not accept a probe batch of shape \(4, 3, 8, 8\) .*Check input_shape"
    ):
        load_classifier(files["script"], input_shape=(3, 8, 8))
    with pytest.raises(InvalidInputError, match=r"input_shape must be \(C, H, W\)"):
        load_classifier(files["script"], input_shape=(8, 8))
    with pytest.raises(InvalidInputError, match="one value per channel"):
        load_classifier(files["script"], input_shape=SHAPE, mean=(0.5, 0.5, 0.5), std=(1, 1, 1))


def test_program_exported_for_a_fixed_batch_is_explained(model):
    data = _export_bytes(model, dynamic=False)
    with pytest.raises(ModelLoadError, match=r"does not accept a probe batch .*Dim\('batch'\)"):
        load_classifier(data, **KW)


def test_exported_in_training_mode_is_caught():
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10), nn.Dropout(0.5)).train()
    program = torch.export.export(net, (_probe(2),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    with pytest.raises(ModelLoadError, match="not deterministic in eval mode"):
        load_classifier(buf.getvalue(), input_shape=SHAPE)


def test_validate_arguments(files):
    clf = load_classifier(files["script"], **KW)
    validate_classifier(clf, n_probe=2, random_state=torch.Generator().manual_seed(5))
    with pytest.raises(InvalidInputError, match="n_probe"):
        validate_classifier(clf, n_probe=1)
    with pytest.raises(InvalidInputError, match="random_state"):
        validate_classifier(clf, random_state="zero")


def test_every_error_is_an_atlas_error():
    assert issubclass(ModelLoadError, AtlasError) and set(FORMATS) == {
        "torchscript",
        "export",
        "onnx",
        "state_dict",
        "safetensors",
    }


# ------------------------------------------------------------------------------------ real weights
@pytest.mark.shared_data
def test_captum_cifar10_lenet_reaches_its_known_accuracy(shared_data):
    path = shared_data / "weights" / "captum_cifar10_lenet" / "cifar_torchvision.pt"
    clf = load_classifier(
        path,
        architecture="lenet",
        input_shape=(3, 32, 32),
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
        class_names=CIFAR10_CLASSES,
    )
    assert clf.info["format"] == "state_dict" and clf.info["parameters"] == 62_006
    test = load_dataset("cifar10", root=shared_data, split="test")
    assert len(test) == 10_000
    accuracy = clf.accuracy(test.images, test.labels)
    assert 0.56 <= accuracy <= 0.61, accuracy  # data README §3: 58.4 % on the full JPEG test set


@pytest.mark.shared_data
def test_pyhessian_resnet20_reaches_its_known_accuracy(shared_data):
    path = shared_data / "weights" / "pyhessian_cifar10_resnet20" / "net.pkl"
    clf = load_classifier(
        path,
        architecture="resnet20",
        input_shape=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        class_names=CIFAR10_CLASSES,
    )
    assert "stripped prefix 'module.'" in clf.info["notes"]
    assert clf.info["detected"].startswith("pickle stream")  # legacy non-zip serialization, saved from CUDA
    lossless = load_npz(shared_data / "cifar10" / "test_batch_first846_lossless.npz", split="test")
    accuracy = clf.accuracy(lossless.images, lossless.labels, batch_size=256)
    assert accuracy >= 0.90, accuracy  # measured 92.4 % here (94.2 % on all 4,511 lossless images)
