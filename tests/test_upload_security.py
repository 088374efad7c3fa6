"""Issue 9, parts 1–3 and 7: an uploaded model can never act on the server.

Every crafted file is built inside its test. The payloads are live: each test first shows that
plain ``torch.jit.load`` + forward of the same bytes *does* write (or read) the file, then that the
atlas refuses the bytes — through the API, the command line and the app's upload function — and
the marker never appears. The looping / memory-hungry models are refused by the child process of
:mod:`geometry.loading.sandbox` within its limits, and the server process never loads them.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from geometry.errors import AtlasError, InvalidInputError, ModelLoadError
from geometry.loading import load_classifier, screen
from geometry.loading.sandbox import SandboxLimits
from geometry.zoo import LeNet

pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.\w+` is deprecated:FutureWarning")
SHAPE = (1, 2, 2)


def _script_bytes(module: nn.Module) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.script(module.eval()), buf)
    return buf.getvalue()


def _append_entries(data: bytes, entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO(data)
    with warnings.catch_warnings(), zipfile.ZipFile(out, "a") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": on purpose
        for name, blob in entries.items():
            zf.writestr(name, blob)
    return out.getvalue()


class _WritesFile(nn.Module):
    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        torch.save(x, self.path)
        return x.flatten(1)


class _ReadsFile(nn.Module):
    """Copies the first bytes of a system file into its logits (``torch.from_file``)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def forward(self, x):
        stolen = torch.from_file(self.path, shared=False, size=4, dtype=torch.uint8)
        return x.flatten(1) + stolen.to(x.dtype)


class _Loops(nn.Module):
    def forward(self, x):
        out = x.flatten(1)
        for _ in range(1000000000000):
            out = out + 1.0
        return out


class _Hungry(nn.Module):
    def forward(self, x):
        big = torch.ones(2147483648, dtype=torch.float32)  # 8 GiB, over the 1 GiB limit below
        return x.flatten(1) + big[:4].sum()


def _bypass_variants(data: bytes) -> dict[str, bytes]:
    """The measured bypasses: one extra top-level entry, or a second record folder."""
    return {
        "decoy constants.pkl": _append_entries(data, {"constants.pkl": b"decoy"}),
        "second root folder": _append_entries(data, {"zzz/code/__torch__/x.py": b"x = 1\n", "zzz/data.pkl": b""}),
        "duplicate code entry": _append_entries(
            data, {next(n for n in zipfile.ZipFile(io.BytesIO(data)).namelist() if n.endswith(".py")): b"x = 1\n"}
        ),
        "zip comment": _with_comment(data, b"made by hand"),
        "fake directory in comment": _with_comment(data, b"PK\x05\x06" + bytes(18)),
        "plain": data,
    }


def _with_comment(data: bytes, comment: bytes) -> bytes:
    out = io.BytesIO(data)
    with zipfile.ZipFile(out, "a") as zf:
        zf.comment = comment
    return out.getvalue()


def test_the_payloads_are_live(tmp_path):
    """Without the screen, torch.jit.load of the decoy archive runs torch.save / from_file in forward."""
    marker = tmp_path / "written-by-plain-torch"
    data = _bypass_variants(_script_bytes(_WritesFile(str(marker))))["decoy constants.pkl"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.load(io.BytesIO(data))(torch.zeros(1, *SHAPE))
    assert marker.exists()
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01\x02\x03\x04")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.jit.load(io.BytesIO(_script_bytes(_ReadsFile(str(secret)))))(torch.zeros(1, *SHAPE))
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0]]


@pytest.mark.parametrize("payload", ["writes", "reads"])
def test_bypass_archives_are_refused_and_never_run(tmp_path, payload):
    marker = tmp_path / "pwned"
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x01\x02\x03\x04")
    module = _WritesFile(str(marker)) if payload == "writes" else _ReadsFile(str(secret))
    expected = {
        "decoy constants.pkl": r"outside its record folder",
        "second root folder": r"outside its record folder",
        "duplicate code entry": r"more than once",
        "zip comment": r"zip comment",
        "fake directory in comment": r"truncated or corrupt|not a PyTorch model file",
        "plain": r"uses 'torch\.(save|from_file)'",
    }
    for what, data in _bypass_variants(_script_bytes(module)).items():
        for isolate in (False, True) if what in ("decoy constants.pkl", "plain") else (False,):
            with pytest.raises(ModelLoadError, match=expected[what]):
                load_classifier(data, input_shape=SHAPE, isolate=isolate)
    assert not marker.exists()


def test_the_loaded_graph_is_screened_again_inlined():
    """The graph screen alone (no code screen) finds a file operator inside a submodule's method."""

    class Inner(nn.Module):
        def forward(self, x):
            torch.manual_seed(0)
            return x

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Inner()

        def forward(self, x):
            return self.inner(x).flatten(1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(Outer())
    with pytest.raises(ModelLoadError, match=r"forward graph calls 'aten::manual_seed'"):
        screen.screen_torchscript_graph(scripted, "m")
    with pytest.raises(ModelLoadError, match=r"uses 'torch\.manual_seed'"):
        load_classifier(_script_bytes(Outer()), input_shape=SHAPE, isolate=False)
    ok = torch.jit.script(LeNet((1, 8, 8), 10).eval())
    assert screen.screen_torchscript_graph(ok, "lenet") > 20


@pytest.mark.parametrize(
    "source, phrase",
    [
        ("def forward(self, x):\n    return torch.save(x, 'f')\n", r"uses 'torch\.save'"),
        ("def forward(self, x):\n    f = getattr(torch, 'save')\n    return f(x)\n", r"uses 'torch' as a value"),
        ("def forward(self, x):\n    return ops.c10d.broadcast(x)\n", r"calls operator 'ops\.c10d\.broadcast'"),
        ("def forward(self, x):\n    return ops.aten.from_file('x')\n", r"calls operator 'ops\.aten\.from_file'"),
        ("def forward(self, x):\n    return torch.classes.my.Thing()\n", r"uses 'torch\.classes\.my\.Thing'"),
        ("def forward(self, x):\n    print(x)\n    return x\n", r"calls 'print'"),
        ("def forward(self, x):\n    return fork(self.f, x)\n", r"calls 'fork'"),
        ("def forward(self, x):\n    return x.save('f')\n", r"calls method 'save'"),
        ("import os\ndef forward(self, x):\n    return x\n", r"Import statement"),
        ("def forward(self, x):\n    return getattr(self, 'a' + 'b')(x)\n", r"computed attribute name"),
        ("def forward(self, x):\n    return math.system(x)\n", r"uses 'math\.system'"),
    ],
)
def test_code_screen_refuses_what_is_not_allowed(source, phrase):
    with pytest.raises(ModelLoadError, match=phrase):
        screen.screen_torchscript_code({"code/__torch__/m.py": source}, "m")


def test_code_screen_accepts_real_networks():
    import torchvision

    for module in (
        LeNet((1, 28, 28), 10),
        torchvision.models.resnet18(num_classes=10),
        torchvision.models.mobilenet_v2(num_classes=10),
    ):
        data = _script_bytes(module)
        entries = screen.screen_torchscript_archive(data, "real")
        assert any(e.startswith("code/") for e in entries)


@pytest.mark.parametrize(
    "expr",
    [
        "Symbol('s77', positive=True, integer=True)",
        "s0*s1 + 2",
        "Ne(s77, 1)",
        "FloorDiv(s0, 2) - 1",
        "PowByNatural(s0, 2)",
        "s0**2",
        "Max(1, s0)",
        "Eq(Mod(s0, 4), 0)",
        "-s3 + 9223372036854775807",
    ],
)
def test_real_shape_expressions_pass(expr):
    screen.check_shape_expression(expr)


@pytest.mark.parametrize(
    "expr, phrase",
    [
        ("s0 + 0*10**10**9", r"raises to a power"),
        ("Pow(10, 10**9)", r"calls Pow with an exponent"),
        ("s0 + 99999999999999999999999", r"larger than 2\*\*63"),
        ("__import__('os').system('x')", r"calls .__import__"),
        ("s0.__class__", r"contains a Attribute"),
        ("(lambda: 1)()", r"calls 'lambda: 1'"),
        ("Symbol('s0', evaluate=__import__)", r"passes the keyword 'evaluate'"),
        ("s0 + " * 600 + "1", r"longer than 2000"),
        ("Max(" * 45 + "s0" + ")" * 45, r"nests deeper"),
    ],
)
def test_dangerous_shape_expressions_are_refused_without_evaluation(expr, phrase):
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=phrase):
        screen.check_shape_expression(expr, name="m.pt2")
    assert time.perf_counter() - t0 < 1.0  # nothing was evaluated (10**10**9 alone takes minutes)


def test_looping_model_is_refused_within_the_cpu_limit(monkeypatch):
    data = _script_bytes(_Loops())
    limits = SandboxLimits(wall_seconds=60, cpu_seconds=4, memory_bytes=2**30)
    loads = []
    real_load = torch.jit.load
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"more than 4 s of CPU time"):
        load_classifier(data, input_shape=SHAPE, limits=limits)
    elapsed = time.perf_counter() - t0
    print(f"looping model refused after {elapsed:.1f} s (CPU limit 4 s + interpreter start)")
    assert elapsed < limits.wall_seconds
    assert loads == []  # the server process never loaded it


def test_looping_model_is_refused_at_the_wall_clock_limit_and_the_child_is_gone():
    data = _script_bytes(_Loops())
    limits = SandboxLimits(wall_seconds=8, cpu_seconds=600, memory_bytes=2**30)
    before = _children()
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"did not finish within 8 s"):
        load_classifier(data, input_shape=SHAPE, limits=limits)
    print(f"refused after {time.perf_counter() - t0:.1f} s (8 s from the child's ready + its start)")
    time.sleep(0.2)
    assert _children() <= before  # the child's whole process group was killed


def _children() -> set[int]:
    """PIDs of this process's living children, read from /proc (no helper process of our own)."""
    me, kids = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                kids.add(int(entry.name))
    return kids


def test_memory_hungry_model_is_refused_by_the_memory_limit():
    limits = SandboxLimits(wall_seconds=60, cpu_seconds=30, memory_bytes=2**30)
    with pytest.raises(ModelLoadError, match=r"more than 1\.0 GiB of memory"):
        load_classifier(_script_bytes(_Hungry()), input_shape=SHAPE, limits=limits)


def test_child_limits_forbid_file_writes_and_the_environment_is_minimal(tmp_path):
    """The child's own limits (as set by the sandbox): any write to a file fails, even one the screen missed."""
    from geometry.loading import sandbox

    code = (
        f"import sys, os, json; sys.path.insert(0, {str(Path(sandbox.__file__).parents[2])!r}); "
        "from geometry.loading.sandbox import _apply_limits; "
        "start = os.listdir('.'); _apply_limits(cpu_seconds=30, memory_bytes=2**30)\n"
        "fd = os.open('x', os.O_WRONLY | os.O_CREAT)\n"
        "try:\n    os.write(fd, b'1'); wrote = True\nexcept OSError:\n    wrote = False\n"
        "print(json.dumps({'start': start, 'wrote': wrote, 'size': os.path.getsize('x')}))"
    )
    folder = tmp_path / "child"
    folder.mkdir()
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=sandbox._child_env(str(folder)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert '"start": []' in out.stdout and '"wrote": false' in out.stdout and '"size": 0' in out.stdout, out
    env = sandbox._child_env("/tmp/x")
    assert "BOUNDARY_ATLAS_DATA" not in env and env["BOUNDARY_ATLAS_CACHE"] == "/tmp/x" and env["HOME"] == "/tmp/x"


def test_a_good_model_passes_the_child_and_records_its_limits():
    clf = load_classifier(_script_bytes(LeNet((1, 8, 8), 10)), input_shape=(1, 8, 8))
    assert clf.info["isolation"]["limits"] == SandboxLimits().describe()
    assert clf.class_names == tuple(str(i) for i in range(10))
    assert clf.info["graph_nodes"] > 20


# ------------------------------------------------------------------------------ ONNX (part 3)
def _onnx_bytes(module: nn.Module, shape, *, opset: int = 17) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (torch.rand(2, *shape),),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "batch"}},
        )
    return buf.getvalue()


def test_zoo_model_exported_to_onnx_loads_back_with_the_same_logits(digits_lenet):
    data = _onnx_bytes(digits_lenet.network, digits_lenet.input_shape)
    clf = load_classifier(data, input_shape=digits_lenet.input_shape, class_names=digits_lenet.class_names)
    assert clf.info["format"] == "onnx" and "Conv" in clf.info["onnx_operators"]
    x = torch.rand((32, *digits_lenet.input_shape), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(clf.logits(x), digits_lenet.logits(x), atol=1e-5, rtol=0)
    x.requires_grad_(True)  # differentiable: DeepFool and the curvature need ∇f
    (grad,) = torch.autograd.grad(clf.network(x)[:, 0].sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def _onnx_with(node_kwargs: dict, *, external: bool = False) -> bytes:
    """x (N, 1, 2, 2) → Flatten → (N, 4) → <node>(·, w) → y (N, 4)."""
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 2, 2])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    if external:
        w.data_location = TensorProto.EXTERNAL
        w.ClearField("float_data")
        entry = w.external_data.add()
        entry.key, entry.value = "location", "/etc/passwd"
    flat = helper.make_node("Flatten", inputs=["x"], outputs=["f"], axis=1)
    node = helper.make_node(inputs=["f", "w"], outputs=["y"], **node_kwargs)
    graph = helper.make_graph([flat, node], "g", [inp], [out], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return model.SerializeToString()


def test_onnx_unknown_custom_and_external_data_are_refused_by_name():
    clf = load_classifier(_onnx_with({"op_type": "Add"}), input_shape=(1, 2, 2), isolate=False)
    assert clf.logits(torch.zeros(1, 1, 2, 2)).tolist() == [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ModelLoadError, match=r"no converter for operator 'FancyOp'"):
        load_classifier(_onnx_with({"op_type": "FancyOp"}), input_shape=(1, 2, 2), isolate=False)
    with pytest.raises(ModelLoadError, match=r"operator 'Exec' of the custom domain 'evil\.ops'"):
        load_classifier(_onnx_with({"op_type": "Exec", "domain": "evil.ops"}), input_shape=(1, 2, 2), isolate=False)
    with pytest.raises(ModelLoadError, match=r"tensor 'w' is stored as external data"):
        load_classifier(_onnx_with({"op_type": "Add"}, external=True), input_shape=(1, 2, 2), isolate=False)


# ------------------------------------------------------------------------------ truthful messages, sizes
def test_random_bytes_named_pt_are_not_called_a_pickle(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(bytes(range(7, 250)) * 10)
    with pytest.raises(ModelLoadError) as info:
        load_classifier(path, architecture="lenet", input_shape=(1, 8, 8), isolate=False)
    msg = str(info.value)
    assert "not a recognised model file" in msg and "pickled Python object" not in msg
    assert "zip archive or a pickle stream" in msg


def test_huge_input_shape_is_refused_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(InvalidInputError, match=r"10,000,000,000 values per image, over the limit"):
        load_classifier(b"anything", input_shape=(1, 100000, 100000))
    assert time.perf_counter() - t0 < 1.0


# ------------------------------------------------------------------------------ the CLI and the app
def test_cli_refuses_the_bypass_archive(tmp_path, capsys):
    from geometry.cli import main

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(_bypass_variants(_script_bytes(_WritesFile(str(marker))))["decoy constants.pkl"])
    for extra in ([], ["--trust-model-code"]):
        rc = main(
            [
                "report",
                "--model",
                str(path),
                "--dataset",
                "digits",
                "--input-shape",
                "1",
                "8",
                "8",
                "--out",
                str(tmp_path / "report"),
                "--n-points",
                "4",
                *extra,
            ]
        )
        assert rc == 2
        err = capsys.readouterr().err
        assert "outside its record folder" in err and "Traceback" not in err
    assert not marker.exists()


def test_app_upload_refuses_the_bypass_archive(tmp_path):
    pytest.importorskip("streamlit")
    from pages.ui import upload as _upload

    marker = tmp_path / "pwned"

    class Upload(io.BytesIO):  # what st.file_uploader hands over
        name = "innocent.pt"

    data = _bypass_variants(_script_bytes(_WritesFile(str(marker))))["second root folder"]
    with pytest.raises(AtlasError, match="outside its record folder"):
        _upload.register_upload(
            model_file=Upload(data),
            fmt="auto",
            architecture=_upload.NO_ARCHITECTURE,
            data_kind="built-in dataset",
            builtin="digits",
            data_file=None,
            shape_text="1, 8, 8",
            mean_text="",
            std_text="",
            names_text="",
        )
    assert not marker.exists()


def test_pt2_whose_shape_expression_would_hang_sympy_is_refused_quickly():
    """The measured hang: an expression of allowed tokens, ``… + 0*10**10**9``, inside a real .pt2."""
    import json

    model = LeNet((1, 8, 8), 10).eval()
    program = torch.export.export(model, (torch.rand(2, 1, 8, 8),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    replaced = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            blob = zin.read(info)
            if info.filename.endswith("models/model.json"):
                text = json.dumps(json.loads(blob))
                new = text.replace("Symbol('s", "0*10**10**9 + Symbol('s", 1)
                replaced.append(new != text)
                blob = new.encode()
            zout.writestr(info, blob)
    assert replaced == [True]
    t0 = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"raises to a power that is not a literal"):
        load_classifier(out.getvalue(), input_shape=(1, 8, 8), isolate=False)
    assert time.perf_counter() - t0 < 5.0
