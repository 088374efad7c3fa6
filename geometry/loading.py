"""Load a user-supplied model file as a frozen :class:`~geometry.classifier.Classifier`.

Issue "Inspect a user-supplied model": an engineer uploads their own network and the atlas
measures its boundary like any zoo network. :func:`load_classifier` reads the file, builds the
module, wraps it with :func:`~geometry.classifier.make_classifier` (normalisation inside, eval
mode, parameters frozen, pixel-space ``bounds``) and checks it with :func:`validate_classifier`.

Formats (:data:`FORMATS`)
-------------------------
============  ===========================================  ===================================
format        how it is saved                              how it is read
============  ===========================================  ===================================
torchscript   ``torch.jit.save(torch.jit.script(m), f)``    ``torch.jit.load(f, map_location=
              or ``torch.jit.trace``; a zip archive with   "cpu")``
              ``code/``, ``constants.pkl``, ``data.pkl``
export        ``torch.export.save(torch.export.export(m,    ``torch.export.load(f).module(
              (x,), dynamic_shapes=...), f)``; a ``.pt2``  check_guards=False)``
              zip archive (``archive_format`` = ``pt2``)
state_dict    ``torch.save(m.state_dict(), f)`` (zip or    ``torch.load(f, map_location="cpu",
              legacy non-zip), ``.pt`` / ``.pth``;         weights_only=True)`` into the
              also a checkpoint dict holding it under      ``architecture`` built here
              ``state_dict`` / ``model_state_dict`` /
              ``net`` / ``model``
safetensors   ``safetensors.torch.save_file(sd, f)``       ``safetensors.torch.load(bytes)``
onnx          ``torch.onnx.export(m, (x,), f,              ``onnx.load_model_from_string`` →
              opset_version=17, dynamic_axes=…)``, or any  ``onnx2torch.convert`` (a
              framework's ONNX exporter; ``.onnx``         ``torch.fx`` GraphModule)
============  ===========================================  ===================================

Detection (``format=None``): the *content* decides, the extension only breaks ties.

* a zip archive (``PK\\x03\\x04``): its entries (under the archive's one root folder) tell the
  kind: ``code/…`` or ``constants.pkl`` → torchscript; ``archive_format`` or ``models/…`` →
  export; ``data.pkl`` alone → state_dict (``torch.save``). A zip whose directory cannot be read
  (truncated) is reported as corrupt, naming the kind the extension suggests;
* 8-byte little-endian header length followed by ``{`` → safetensors;
* a pickle stream (first byte ``0x80``) → state_dict in the legacy (non-zip) ``torch.save``
  format (e.g. files written before PyTorch 1.6);
* an ONNX ModelProto (protobuf field 1 first, parses with a graph) → onnx;
* anything else is refused as "not a recognised model file", saying what a file with its
  extension should start with (random bytes named ``.pt`` are not called a pickle).

Security: what is trusted
-------------------------
A model file is untrusted input (the app accepts uploads); issue 9 made the defence sound by
construction rather than by a list of known-bad names:

* **state_dict** files are read *only* with ``torch.load(..., weights_only=True)`` (PyTorch's
  restricted unpickler: tensors, containers and primitive types, no other globals). A fully
  pickled module (``torch.save(model)``), or any pickle naming another global, is refused; we
  never fall back to ``weights_only=False``. **safetensors** holds no code at all.
* **TorchScript** and **torch.export** files are code. Before anything is loaded,
  :mod:`geometry.screen` checks the archive (one record folder, allowed entry names only, no
  duplicates, the same records for Python's zipfile and PyTorch's reader), parses the TorchScript
  code with :mod:`ast` and checks every operator against one allow-list of pure tensor operators,
  and checks a ``.pt2`` program's graph and shape expressions (walked, never evaluated); after
  loading, the inlined TorchScript forward graph is checked again node by node, before the first
  forward pass. ``.module(check_guards=False)`` never executes a ``.pt2``'s ``guards_code``.
* **ONNX** files are protobuf (no code); tensors stored as external data (file paths), custom
  operator domains and model-local functions are refused, and onnx2torch converts the standard
  operators it has converters for into ordinary PyTorch modules (others are refused by name).
* **Isolation.** With ``isolate=True`` (the default; the app always, the command line unless
  ``--trust-model-code``) the screen, the load and :func:`validate_classifier`'s probe run first
  in a fresh child process limited in wall-clock time, CPU time and memory, with no file writes,
  in a private empty folder (:mod:`geometry.sandbox`); this process loads the file only after the
  child succeeded. A model that loops or allocates without bound on the probe is refused within
  the limits. A model that passes still runs here afterwards, restricted to the allowed
  operators; what it costs on other inputs is not bounded.

``max_bytes`` bounds the file size (and the uncompressed size of a zip archive);
``input_shape`` is bounded by :data:`MAX_INPUT_VALUES` before anything is allocated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from .classifier import Classifier, make_classifier
from .errors import InvalidInputError, ModelLoadError, UnknownNameError
from .sandbox import DEFAULT_LIMITS, SandboxLimits, run_isolated
from .screen import screen_export_archive, screen_torchscript_archive, screen_torchscript_graph
from .zoo import ARCHITECTURES, build_architecture

__all__ = [
    "FORMATS",
    "DEFAULT_MAX_BYTES",
    "LOADING_ARCHITECTURES",
    "CifarResNet",
    "architecture_names",
    "build_loading_architecture",
    "detect_format",
    "load_classifier",
    "validate_classifier",
]

#: Model file formats understood by :func:`load_classifier`.
FORMATS: tuple[str, ...] = ("torchscript", "export", "onnx", "state_dict", "safetensors")
#: Default size limit of a model file, in bytes (512 MiB).
DEFAULT_MAX_BYTES: int = 512 * 2**20

_FORMAT_LABEL = {
    "torchscript": "TorchScript (torch.jit.load)",
    "export": "torch.export program (torch.export.load)",
    "state_dict": "state_dict (torch.load with weights_only=True)",
    "safetensors": "safetensors state_dict",
    "onnx": "ONNX model (converted with onnx2torch)",
}
_STATE_DICT_WRAPPERS = ("state_dict", "model_state_dict", "net", "model")
_STRIPPED_PREFIXES = ("module.", "_orig_mod.")  # nn.DataParallel / DistributedDataParallel, torch.compile
_TORCH_SAVE_EXTENSIONS = (".pt", ".pth", ".pkl", ".bin", ".ckpt", ".tar")
_EXPORT_HINT = (
    "Export instead, then upload that file: TorchScript (torch.jit.save(torch.jit.script(model), 'model.pt') "
    "or torch.jit.trace), a torch.export program (torch.export.save(torch.export.export(model, (x,), "
    "dynamic_shapes=({0: torch.export.Dim('batch')},)), 'model.pt2')), or the weights alone "
    "(torch.save(model.state_dict(), 'weights.pt') or safetensors) together with the architecture name"
)


# ------------------------------------------------------------------------------ architectures
class _BasicBlock(nn.Module):
    """CIFAR ResNet basic block: conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut, → ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """The CIFAR ResNet of He et al. (2016, §4.2): depth 6n+2, three stages of n basic blocks.

    Stem ``conv1`` (3×3, ``width`` channels, no bias) + ``bn1`` + ReLU; ``layer1`` / ``layer2`` /
    ``layer3`` of n :class:`_BasicBlock` with width, 2·width, 4·width channels (stride 2 at the
    start of layer2 and layer3, where the shortcut ``downsample`` is a 1×1 conv without bias
    (``.0``) + BN (``.1``)); global average pool; ``fc`` (L, 4·width). ResNet-20: n = 3, width
    16, 0.27 M parameters. The layer names match the PyHessian / bearpaw CIFAR ResNet, so its
    state_dicts load directly (after stripping ``module.``).

    Shapes: input (N, C, H, W) normalised pixels → logits (N, L).
    """

    def __init__(self, input_shape=(3, 32, 32), num_classes: int = 10, *, depth: int = 20, width: int = 16):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise InvalidInputError(f"CIFAR ResNet depth must be 6n+2 (8, 14, 20, 32, …), got {depth}")
        n = (depth - 2) // 6
        c = int(input_shape[0])
        self.conv1 = nn.Conv2d(c, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        planes = [width, 2 * width, 4 * width]
        in_planes = width
        stages = []
        for i, p in enumerate(planes):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(in_planes, p, stride=2 if (i > 0 and j == 0) else 1))
                in_planes = p
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


#: Architectures defined here (not in the zoo, which trains its own): name → builder(input_shape, L, **kw).
LOADING_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "resnet20": lambda shape, L, **kw: CifarResNet(shape, L, depth=20, **kw),
}


def _torchvision_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def architecture_names() -> list[str]:
    """Names accepted by ``architecture=``: the zoo's, this module's, and ``"torchvision:<name>"``.

    The torchvision names are its classification models (``torchvision.models.list_models``);
    a plain ``"resnet18"`` works too when it is not a zoo name.
    """
    return sorted(ARCHITECTURES) + sorted(LOADING_ARCHITECTURES) + [f"torchvision:{n}" for n in _torchvision_names()]


def build_loading_architecture(name: str, *, input_shape: Sequence[int], num_classes: int, **kwargs) -> nn.Module:
    """An untrained network ``name`` for ``input_shape`` (C, H, W) and ``num_classes`` outputs.

    Looked up in order: the zoo (:data:`geometry.zoo.ARCHITECTURES`: ``lenet``, ``mlp``, …), this
    module's :data:`LOADING_ARCHITECTURES` (``resnet20``), torchvision's classification models
    (``"torchvision:resnet18"``, or plain ``"resnet18"``), built with
    ``torchvision.models.get_model(name, weights=None, num_classes=num_classes)`` (nothing is
    downloaded). Initialisation draws from a fixed seed inside ``torch.random.fork_rng``, so the
    global RNG is untouched.

    Raises
    ------
    UnknownNameError
        no architecture of that name (the message lists the families and examples).
    ModelLoadError
        the constructor failed for these arguments (message has its first line).
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownNameError(f"architecture must be a name such as 'lenet', 'resnet20' or 'torchvision:resnet18', got {name!r}")
    key = name.strip()
    tv_name = None
    if key.lower().startswith("torchvision:"):
        tv_name = key.split(":", 1)[1].strip()
    elif key not in ARCHITECTURES and key not in LOADING_ARCHITECTURES:
        tv_name = key
    shape = tuple(int(s) for s in input_shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            if tv_name is None and key in ARCHITECTURES:
                return build_architecture(key, input_shape=shape, num_classes=num_classes, **kwargs)
            if tv_name is None:
                return LOADING_ARCHITECTURES[key](shape, int(num_classes), **kwargs)
            tv_names = _torchvision_names()
            if tv_name not in tv_names:
                raise UnknownNameError(
                    f"unknown architecture {name!r}; expected a zoo architecture ({', '.join(sorted(ARCHITECTURES))}), "
                    f"{', '.join(sorted(LOADING_ARCHITECTURES))}, or a torchvision classification model as "
                    f"'torchvision:<name>' ({len(tv_names)} names, e.g. resnet18, vgg11, mobilenet_v2)"
                )
            import torchvision

            return torchvision.models.get_model(tv_name, weights=None, num_classes=int(num_classes), **kwargs)
        except (UnknownNameError, InvalidInputError):
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"could not build architecture {name!r} for input_shape {shape} and {num_classes} classes "
                f"(kwargs {kwargs}): {_first_line(exc)}"
            ) from exc


# ------------------------------------------------------------------------------ small helpers
def _first_line(exc: BaseException, limit: int = 400) -> str:
    """``Type: first line`` of an exception (the last line for a TorchScript interpreter traceback)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if text.startswith("The following operation failed in the TorchScript interpreter") and len(lines) > 1:
        text = lines[-1]  # "RuntimeError: <the model's own message>"
    text = re.split(r" This is an internal miniz error| In PyTorch 2\.6, ", text)[0].rstrip(".")
    m = re.search(r"GLOBAL ([\w.]+)", str(exc))
    if text.startswith("Weights only load failed") and m:
        text = f"weights_only=True refuses the Python global {m.group(1)}"
    if not re.match(r"[A-Za-z_][\w.]*(Error|Exception): ", text):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mib(n: int) -> str:
    return f"{n:,} bytes" + (f" ({n / 2**20:.1f} MiB)" if n >= 2**20 else "")


def _generator(random_state) -> torch.Generator:
    if isinstance(random_state, torch.Generator):
        return random_state
    if random_state is None:
        random_state = 0
    if isinstance(random_state, bool) or not isinstance(random_state, int):
        raise InvalidInputError(f"random_state must be an int or a torch.Generator, got {type(random_state).__name__}")
    return torch.Generator().manual_seed(int(random_state))


def _read_source(source, max_bytes: int) -> tuple[bytes, str, str]:
    """(content, display name, file name for the extension) of a path / bytes / binary file object."""
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
        raise InvalidInputError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    over = lambda n, what: ModelLoadError(  # noqa: E731
        f"{what} is {_mib(n)}, over the limit of {_mib(max_bytes)} (max_bytes); "
        "pass a larger max_bytes if you trust the file"
    )
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ModelLoadError(f"model file {str(path)!r} does not exist (or is not a file)")
        size = path.stat().st_size
        if size > max_bytes:
            raise over(size, f"model file {path.name!r}")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"could not read model file {str(path)!r}: {_first_line(exc)}") from exc
        return data, path.name, path.name
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name, file_name = "uploaded model (bytes)", ""
    elif hasattr(source, "getvalue") or hasattr(source, "read"):
        raw_name = getattr(source, "name", None)
        file_name = Path(raw_name).name if isinstance(raw_name, str) else ""
        name = file_name or "uploaded model"
        try:
            data = source.getvalue() if hasattr(source, "getvalue") else source.read(max_bytes + 1)
        except Exception as exc:
            raise ModelLoadError(f"could not read {name!r}: {_first_line(exc)}") from exc
        if isinstance(data, str):
            raise ModelLoadError(f"{name!r} was opened in text mode; open model files in binary mode ('rb')")
        data = bytes(data)
    else:
        raise ModelLoadError(
            f"source must be a file path, bytes, or a binary file object (such as an upload), got {type(source).__name__}"
        )
    if len(data) > max_bytes:
        raise over(len(data), repr(name))
    return data, name, file_name


# ------------------------------------------------------------------------------ detection
def _zip_entries(data: bytes) -> tuple[zipfile.ZipFile, str, list[str]]:
    """Open a zip; return it, its single root folder ('' if none) and the entries with their first
    folder stripped (for *detection* only: :mod:`geometry.screen` then refuses any archive with more
    than one record folder)."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in zf.namelist() if not n.endswith("/")]
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    root = roots.pop() if len(roots) == 1 and all("/" in n for n in names) else ""
    rel = [n.split("/", 1)[1] if "/" in n else n for n in names]
    return zf, root, rel


def _is_onnx(data: bytes) -> bool:
    """An ONNX ModelProto: protobuf field 1 (ir_version, varint) first, and it parses with a graph."""
    if data[:1] != b"\x08":
        return False
    try:
        import onnx

        model = onnx.load_model_from_string(data)
    except Exception:  # noqa: BLE001 - not ONNX
        return False
    return model.HasField("graph") and len(model.graph.node) > 0


def _is_safetensors(data: bytes) -> bool:
    if len(data) < 10:
        return False
    n = int.from_bytes(data[:8], "little")
    return 2 <= n < 2**31 and data[8:9] == b"{"


def _detect(data: bytes, file_name: str, name: str) -> tuple[str, str]:
    """(format, how it was recognised). Raises ModelLoadError for unreadable / unknown files."""
    ext = Path(file_name).suffix.lower() if file_name else ""
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        try:
            _, _, rel = _zip_entries(data)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            if ext == ".pt2":
                tried = _FORMAT_LABEL["export"] + " (from the .pt2 extension)"
            else:
                tried = "a PyTorch zip archive (TorchScript, torch.export or torch.save state_dict)"
            raise ModelLoadError(
                f"could not load {name!r}: it starts like a zip archive but its directory cannot be read, so the "
                f"file is truncated or corrupt ({_first_line(exc)}); tried: {tried}. Upload the complete file again."
            ) from exc
        if "constants.pkl" in rel or any(r.startswith("code/") for r in rel):
            return "torchscript", "zip archive with code/ and constants.pkl"
        if "archive_format" in rel or any(r.startswith("models/") for r in rel):
            return "export", "zip archive with archive_format / models/ (torch.export.save)"
        if "data.pkl" in rel:
            return "state_dict", "zip archive with data.pkl only (torch.save)"
        shown = ", ".join(rel[:6]) + (", …" if len(rel) > 6 else "")
        raise ModelLoadError(
            f"{name!r} is a zip archive but not a PyTorch model file (it holds: {shown or 'nothing'}); expected "
            "TorchScript (code/, constants.pkl), a torch.export .pt2 (archive_format, models/) or a torch.save "
            "state_dict (data.pkl)"
        )
    if _is_safetensors(data):
        return "safetensors", "safetensors header (8-byte length + JSON)"
    if data[:1] == b"\x80":
        return "state_dict", "pickle stream (legacy non-zip torch.save)"
    if not data:
        raise ModelLoadError(f"{name!r} is empty (0 bytes); expected a model file")
    if (ext == ".onnx" or data[:1] == b"\x08") and _is_onnx(data):
        return "onnx", "an ONNX protobuf (ModelProto with a graph)"
    expected = {
        ".pt2": "a torch.export .pt2 is a zip archive (it starts with PK)",
        ".safetensors": "a .safetensors file starts with an 8-byte header length and a JSON header",
        ".onnx": "an .onnx file is an ONNX ModelProto (protobuf, first byte 0x08)",
    }.get(ext, f"a {ext} file from torch.save is a zip archive or a pickle stream" if ext in _TORCH_SAVE_EXTENSIONS
          else "")
    raise ModelLoadError(
        f"{name!r} is not a recognised model file: its content is none of the formats the atlas reads (first "
        f"bytes {data[:8]!r}{'; ' + expected if expected else ''}). Expected TorchScript or a torch.save state_dict "
        "(.pt / .pth), a torch.export program (.pt2), an ONNX model (.onnx) or .safetensors; the file may be "
        "truncated, damaged or of another kind"
    )


def detect_format(source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The format :func:`load_classifier` would use for ``source`` (one of :data:`FORMATS`).

    Reads the content (see the module docstring for the rules). Raises
    :class:`~geometry.errors.ModelLoadError` for unreadable, oversized or unrecognised files.
    """
    data, name, file_name = _read_source(source, max_bytes)
    return _detect(data, file_name, name)[0]


def _corrupt(name: str, fmt: str, exc: BaseException, detected: tuple[str, str] | None = None) -> ModelLoadError:
    msg = f"could not load {name!r} as {_FORMAT_LABEL[fmt]}: the file is truncated or corrupt, or not in this format ({_first_line(exc)})"
    if detected is not None and detected[0] != fmt:
        msg += f"; its content looks like {_FORMAT_LABEL[detected[0]]} ({detected[1]}): try format={detected[0]!r}"
    return ModelLoadError(msg)


# ------------------------------------------------------------------------------ TorchScript
class _TorchScriptModel(nn.Module):
    """A loaded ScriptModule as a plain ``nn.Module`` child (``ScriptModule.requires_grad_`` raises,
    which :func:`~geometry.classifier.make_classifier` calls); ``forward`` just calls it."""

    def __init__(self, script: nn.Module):
        super().__init__()
        self.script = script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def _load_torchscript(data: bytes, name: str, detected, info: dict) -> nn.Module:
    """Screen the archive and its code (:mod:`geometry.screen`), load it, screen the inlined graph."""
    screen_torchscript_archive(data, name)
    try:
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": not the uploader's concern
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            script = torch.jit.load(io.BytesIO(data), map_location="cpu")
    except Exception as exc:
        raise _corrupt(name, "torchscript", exc, detected) from exc
    info["graph_nodes"] = screen_torchscript_graph(script, name)
    return _TorchScriptModel(script)


# ------------------------------------------------------------------------------ torch.export
def _fixed_mode(module: nn.Module) -> nn.Module:
    """Make an exported GraphModule accept ``train()`` / ``eval()`` as no-ops.

    ``ExportedProgram.module()`` makes both raise; the graph's mode (dropout, batch norm) was fixed
    when it was exported, and :func:`validate_classifier` catches a program exported in training
    mode (non-deterministic dropout, batch statistics).
    """

    def _fixed(self, mode: bool = True):
        return self

    module.train = types.MethodType(_fixed, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(lambda self: self, module)  # type: ignore[method-assign]
    return module


def _load_export(data: bytes, name: str, detected, info: dict) -> nn.Module:
    """Screen the ``.pt2`` (:func:`geometry.screen.screen_export_archive`), then load it on the CPU."""
    screen_export_archive(data, name)
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as exc:
        raise _corrupt(name, "export", exc, detected) from exc
    try:
        devices = {t.device.type for t in list(program.state_dict.values()) + list(program.constants.values())
                   if isinstance(t, torch.Tensor)}
        if devices - {"cpu"}:
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, "cpu")
        module = program.module(check_guards=False)
    except Exception as exc:
        raise ModelLoadError(f"could not turn the exported program {name!r} into a module on the CPU: {_first_line(exc)}") from exc
    return _fixed_mode(module)


# ------------------------------------------------------------------------------ ONNX
#: ONNX operator domains accepted (the standard operator set); custom domains are refused.
ONNX_DOMAINS = ("", "ai.onnx")


def _onnx_graphs(graph) -> Iterable:
    """The graph and every subgraph (If / Loop / Scan bodies) inside it."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _onnx_graphs(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _onnx_graphs(g)


def _load_onnx(data: bytes, name: str, detected, info: dict) -> nn.Module:
    """Parse an ONNX model (protobuf only: no code) and convert it with onnx2torch.

    Refused before conversion: tensors stored as external data (they name files to read),
    operators outside the standard domains, model-local functions. onnx2torch then builds ordinary
    PyTorch modules from its own table of converters; an operator (or operator-set version) it has
    no converter for is refused by name.
    """
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as exc:  # pragma: no cover - both are dependencies of the project
        raise ModelLoadError(f"ONNX support needs the packages onnx and onnx2torch ({_first_line(exc)})") from exc
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:
        raise _corrupt(name, "onnx", exc, detected) from exc
    if not model.HasField("graph") or not model.graph.node:
        raise ModelLoadError(f"{name!r} is not an ONNX model with a graph (it parsed as an empty ModelProto)")
    if model.functions:
        raise ModelLoadError(f"refusing {name!r}: it defines model-local ONNX functions "
                             f"({', '.join(f.name for f in model.functions)[:200]}); export without them")
    op_types: set[str] = set()
    for g in _onnx_graphs(model.graph):
        for t in list(g.initializer) + [a.t for n in g.node for a in n.attribute if a.HasField("t")]:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                raise ModelLoadError(
                    f"refusing {name!r}: tensor {t.name!r} is stored as external data (a file path); upload one "
                    "self-contained .onnx (onnx.save_model(m, f, save_as_external_data=False))"
                )
        for node in g.node:
            if node.domain not in ONNX_DOMAINS:
                raise ModelLoadError(f"refusing {name!r}: it uses operator {node.op_type!r} of the custom domain "
                                     f"{node.domain!r}; only the standard ONNX operator set is accepted")
            op_types.add(node.op_type)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = convert(model)
    except NotImplementedError as exc:
        m = re.search(r"operation_type='(\w+)', version=(\d+)", str(exc))
        what = f"operator {m.group(1)!r} at operator-set version {m.group(2)}" if m else _first_line(exc)
        raise ModelLoadError(
            f"refusing {name!r}: onnx2torch has no converter for {what}; only operators of its table can be "
            "loaded (exporting with an older opset, e.g. torch.onnx.export(..., opset_version=17), often helps)"
        ) from exc
    except Exception as exc:
        raise ModelLoadError(f"could not convert the ONNX model {name!r} to PyTorch: {_first_line(exc)}") from exc
    info["onnx_operators"] = sorted(op_types)
    info["onnx_opset"] = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    return module

# ------------------------------------------------------------------------------ state_dicts
def _load_pickled_state(data: bytes, name: str, detected) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL\s+([\w.]+)", text)
        if m or ("Unsupported" in text and (data[:1] == b"\x80" or data[:2] == b"PK")):
            what = f"a pickled Python object ({m.group(1)})" if m else "a pickled Python object"
            raise ModelLoadError(
                f"refusing {name!r}: it holds {what}, not just tensors, so it can only be read by unpickling "
                "with torch.load(weights_only=False), which runs arbitrary code from the file (a fully pickled "
                f"module such as torch.save(model) is saved this way). {_EXPORT_HINT}."
            ) from exc
        raise _corrupt(name, "state_dict", exc, detected) from exc
    except Exception as exc:
        raise _corrupt(name, "state_dict", exc, detected) from exc


def _load_safetensors(data: bytes, name: str, detected) -> dict:
    try:
        from safetensors.torch import load as load_safetensors

        return load_safetensors(data)
    except Exception as exc:
        raise _corrupt(name, "safetensors", exc, detected) from exc


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def _extract_state_dict(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The parameter dict inside ``obj`` and the notes of what was unwrapped / stripped."""
    notes: list[str] = []
    if not _is_tensor_dict(obj):
        if isinstance(obj, Mapping):
            for key in _STATE_DICT_WRAPPERS:
                if key in obj and _is_tensor_dict(obj[key]):
                    obj = obj[key]
                    notes.append(f"unwrapped checkpoint[{key!r}]")
                    break
            else:
                keys = [repr(k) for k in list(obj)[:8]]
                raise ModelLoadError(
                    f"{name!r} holds a dict that is not a state_dict (keys {', '.join(keys) or 'none'}"
                    f"{', …' if len(obj) > 8 else ''}); expected parameter name → tensor, or a checkpoint dict "
                    f"holding one under {', '.join(repr(k) for k in _STATE_DICT_WRAPPERS)}"
                )
        else:
            shape = f" of shape {tuple(obj.shape)}" if isinstance(obj, torch.Tensor) else ""
            raise ModelLoadError(
                f"{name!r} holds a {type(obj).__name__}{shape}, not a state_dict; expected a dict of parameter "
                "name → tensor (torch.save(model.state_dict(), f))"
            )
    sd = dict(obj)
    changed = True
    while changed:
        changed = False
        for prefix in _STRIPPED_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                notes.append(f"stripped prefix {prefix!r}")
                changed = True
    return sd, notes


def _infer_num_classes(architecture: str, input_shape, sd: Mapping[str, torch.Tensor], kwargs: dict) -> int | None:
    """Read L from the weights: build the architecture on the meta device with a sentinel L and
    find the tensor whose dimension equals it."""
    sentinel = 7919
    try:
        with torch.device("meta"):
            probe = build_loading_architecture(architecture, input_shape=input_shape, num_classes=sentinel, **kwargs)
    except (UnknownNameError, InvalidInputError):
        raise
    except Exception:
        return None
    for key, t in probe.state_dict().items():
        if key in sd and sentinel in t.shape:
            dim = list(t.shape).index(sentinel)
            if sd[key].dim() == t.dim():
                return int(sd[key].shape[dim])
    return None


def _fit_state_dict(model: nn.Module, sd: Mapping[str, torch.Tensor], *, name: str, architecture: str,
                    input_shape, num_classes: int) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    mismatched = [(k, tuple(sd[k].shape), tuple(expected[k].shape)) for k in expected
                  if k in sd and tuple(sd[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        show = lambda xs: ", ".join(xs[:5]) + (", …" if len(xs) > 5 else "")  # noqa: E731
        if missing:
            parts.append(f"{len(missing)} missing key(s) ({show(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) ({show(unexpected)})")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es) (" + show(
                [f"{k}: file {a} vs model {b}" for k, a, b in mismatched]) + ")")
        raise ModelLoadError(
            f"the weights in {name!r} do not fit architecture {architecture!r} built for input_shape "
            f"{tuple(input_shape)} and {num_classes} classes: {'; '.join(parts)}. Check architecture, "
            "input_shape and num_classes (or architecture_kwargs)"
        )
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise ModelLoadError(f"could not load the weights of {name!r} into {architecture!r}: {_first_line(exc)}") from exc


# ------------------------------------------------------------------------------ validation
def _run(clf: Classifier, x: torch.Tensor, *, what: str) -> torch.Tensor:
    try:
        with torch.no_grad():
            out = clf.network(x)
    except Exception as exc:
        hint = ""
        if clf.info.get("format") == "export":
            hint = (" An exported program must accept any batch size: export with "
                    "dynamic_shapes=({0: torch.export.Dim('batch')},).")
        raise ModelLoadError(
            f"model {clf.name!r} does not accept {what} of shape {tuple(x.shape)} (input_shape "
            f"{tuple(clf.input_shape)} = (C, H, W), pixels in bounds {tuple(clf.bounds)}): {_first_line(exc)}. "
            f"Check input_shape.{hint}"
        ) from exc
    if not isinstance(out, torch.Tensor):
        raise ModelLoadError(
            f"model {clf.name!r} must return a tensor of logits of shape (N, L); for {what} of shape "
            f"{tuple(x.shape)} it returned a {type(out).__name__}"
        )
    return out


def _probe_outputs(clf: Classifier, x: torch.Tensor) -> torch.Tensor:
    out = _run(clf, x, what="a probe batch")
    n = x.shape[0]
    if out.dim() != 2 or out.shape[0] != n:
        raise ModelLoadError(
            f"model {clf.name!r} must return logits of shape (N, L) = ({n}, L); for a probe batch of shape "
            f"{tuple(x.shape)} it returned shape {tuple(out.shape)}"
        )
    if not out.is_floating_point():
        raise ModelLoadError(f"model {clf.name!r} must return floating-point logits, got dtype {out.dtype}")
    return out


def validate_classifier(clf: Classifier, *, n_probe: int = 4, random_state=0) -> None:
    """Check that ``clf`` behaves like a classifier the atlas can measure; raise otherwise.

    A probe batch ``x`` of shape ``(n_probe, *clf.input_shape)``, pixels uniform in
    ``clf.bounds`` (drawn from ``random_state``), goes through ``clf.network``. Checks, in order:

    1. the model accepts inputs of that shape;
    2. it returns one floating-point tensor of shape ``(N, L)`` (not ``(N, L, 1)``, ``(N,)``, a tuple…);
    3. ``L == len(clf.class_names)``;
    4. every logit is finite (no NaN / inf);
    5. eval mode is deterministic: a second forward pass on the same batch gives identical logits
       (fails for dropout applied unconditionally, random noise in ``forward``…);
    6. each image's logits do not depend on the rest of the batch: ``x[:1]`` alone gives the
       first row again (up to float rounding; fails for batch statistics used at inference, or a
       program exported for a fixed batch size);
    7. the logits are differentiable with respect to the pixels, with a finite gradient
       (DeepFool and the curvature need ``∇f``).

    Parameters
    ----------
    clf : Classifier
    n_probe : int, ≥ 2
    random_state : int or torch.Generator

    Raises
    ------
    ModelLoadError
        one message per failed check, giving what was expected and what the model did.
    InvalidInputError
        ``n_probe`` < 2 or a bad ``random_state``.
    """
    if isinstance(n_probe, bool) or not isinstance(n_probe, int) or n_probe < 2:
        raise InvalidInputError(f"n_probe must be an integer ≥ 2, got {n_probe!r}")
    gen = _generator(random_state)
    low, high = clf.bounds
    x = (low + (high - low) * torch.rand((n_probe, *clf.input_shape), generator=gen)).to(clf.dtype)
    out = _probe_outputs(clf, x)
    L = out.shape[1]
    if L != len(clf.class_names):
        shown = ", ".join(repr(c) for c in clf.class_names[:5]) + (", …" if len(clf.class_names) > 5 else "")
        raise ModelLoadError(
            f"model {clf.name!r} returns {L} logits per image but {len(clf.class_names)} class names were given "
            f"({shown}); give exactly one name per output"
        )
    bad = ~torch.isfinite(out)
    if bad.any():
        raise ModelLoadError(
            f"model {clf.name!r} returned NaN or inf logits ({int(bad.sum())} of {out.numel()} values) for a probe "
            f"batch of images uniform in bounds {tuple(clf.bounds)}; expected finite logits"
        )
    again = _run(clf, x, what="a probe batch")
    if again.shape != out.shape or not torch.equal(again, out):
        diff = float((again - out).abs().max()) if again.shape == out.shape else float("nan")
        raise ModelLoadError(
            f"model {clf.name!r} is not deterministic in eval mode: two forward passes on the same probe batch gave "
            f"different logits (max |difference| {diff:.3g}). Common causes: dropout applied regardless of mode "
            "(F.dropout(..., training=True)), random noise in forward, or a program exported in training mode "
            "(call model.eval() before exporting)"
        )
    single = _run(clf, x[:1], what="a batch of one image")
    if single.dim() != 2 or single.shape != (1, L):
        raise ModelLoadError(
            f"model {clf.name!r} must return logits of shape (1, {L}) for a batch of one image, got {tuple(single.shape)}"
        )
    scale = float(out[0].abs().max()) + 1.0
    if not torch.allclose(single[0], out[0], rtol=1e-4, atol=1e-4 * scale):
        raise ModelLoadError(
            f"model {clf.name!r} gives an image different logits alone than inside a batch (max |difference| "
            f"{float((single[0] - out[0]).abs().max()):.3g}); the prediction of an image must not depend on the other "
            "images (batch statistics at inference, e.g. BatchNorm left in training mode?)"
        )
    xg = x.detach().clone().requires_grad_(True)
    try:
        with torch.enable_grad():
            logits = clf.network(xg)
            (grad,) = torch.autograd.grad(logits[:, 0].sum(), xg)
    except Exception as exc:
        raise ModelLoadError(
            f"model {clf.name!r} is not differentiable with respect to its input ({_first_line(exc)}); the atlas needs "
            "gradients of the logits with respect to the pixels (DeepFool, curvature)"
        ) from exc
    if grad is None or grad.shape != xg.shape or not torch.isfinite(grad).all():
        raise ModelLoadError(
            f"model {clf.name!r} gives a missing or non-finite gradient of its logits with respect to the pixels"
        )


# ------------------------------------------------------------------------------ public entry
def load_classifier(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    format: str | None = None,
    architecture: str | None = None,
    num_classes: int | None = None,
    input_shape: Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    bounds: tuple[float, float] = (0.0, 1.0),
    class_names: Sequence[str] | None = None,
    name: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    architecture_kwargs: Mapping[str, Any] | None = None,
    isolate: bool = True,
    limits: SandboxLimits | None = None,
) -> Classifier:
    """Load a user's model file as a frozen, validated :class:`~geometry.classifier.Classifier`.

    Parameters
    ----------
    source : path-like, bytes, or binary file object
        The model file. A file object needs ``getvalue()`` (Streamlit's ``UploadedFile``,
        ``io.BytesIO``) or ``read()``; its ``.name`` (if any) gives the display name and extension.
    format : {"torchscript", "export", "onnx", "state_dict", "safetensors"}, optional
        Default: detected from the content, then the extension (module docstring, "Detection").
    architecture : str, optional
        Required for ``state_dict`` / ``safetensors`` (weights only), ignored otherwise: a zoo
        architecture (``"lenet"``, ``"lenet-softplus"``, ``"mlp"``), ``"resnet20"``
        (:class:`CifarResNet`), or a torchvision classification model (``"torchvision:resnet18"``,
        or ``"resnet18"``), built untrained for ``input_shape`` / ``num_classes`` and then filled
        with ``load_state_dict(strict=True)``. See :func:`architecture_names`.
    num_classes : int, optional
        L for building ``architecture``. Default: ``len(class_names)``, else read from the
        weights (the tensor whose size depends on L, e.g. the last layer's weight).
    input_shape : (C, H, W)
        Shape of one input image, in pixels.
    mean, std : sequence of C floats, optional
        The normalisation the model was trained with; it goes *inside* the classifier, so the
        classifier takes pixels in ``bounds`` (DESIGN §3). Omit if the model normalises itself.
    bounds : (low, high)
        Valid pixel range (default [0, 1]).
    class_names : sequence of L str, optional
        Default ``"0" … "L-1"`` with L read from a probe forward pass.
    name : str, optional
        Display name / cache key; default the file name without extension.
    max_bytes : int
        Refuse files larger than this (default :data:`DEFAULT_MAX_BYTES` = 512 MiB).
    architecture_kwargs : mapping, optional
        Extra keyword arguments for the architecture (e.g. ``{"channels": (32, 64), "hidden":
        (256, 128)}`` for the zoo's CIFAR-10 LeNet).
    isolate : bool
        Default True: the first load and the validation probe run in a resource-limited child
        process (:func:`geometry.sandbox.run_isolated`), and this process loads the file only
        after the child succeeded (screened again, not probed again). False runs everything here:
        for a file you trust (the command line's ``--trust-model-code``) and for tests.
    limits : SandboxLimits, optional
        The child's wall-clock, CPU and memory limits (default
        :data:`geometry.sandbox.DEFAULT_LIMITS`: 60 s, 60 s, 3 GiB).

    Returns
    -------
    Classifier
        ``network`` = [Normalize(mean, std) →] model, eval mode, parameters frozen, on the CPU;
        ``info`` holds ``format``, ``detected`` (how the format was recognised), ``file``,
        ``bytes``, ``sha256`` (of the file; a cache key), ``parameters``, ``architecture`` (for
        weights files), ``notes`` (wrapper unwrapped, prefixes stripped), ``graph_nodes``
        (TorchScript nodes screened) and ``isolation`` (the child's limits and timings, or
        "trusted" when ``isolate=False``).

    Raises
    ------
    ModelLoadError
        the file is missing, over ``max_bytes``, empty, truncated or corrupt (the message names
        the file and the format tried), unrecognised, a pickled Python object (refused: loading
        it would run code from the file), a TorchScript / exported program that fails the
        screen of :mod:`geometry.screen`, an ONNX model with external data, custom operators or
        operators onnx2torch cannot convert, a state_dict that does not fit the architecture
        (missing / unexpected keys and shape mismatches listed), a model that fails
        :func:`validate_classifier`, or one whose check ran past a limit of ``limits``.
    UnknownNameError
        unknown ``format`` or ``architecture``.
    InvalidInputError
        bad ``input_shape`` / ``mean`` / ``std`` / ``bounds`` / ``max_bytes``.

    Examples
    --------
    >>> clf = load_classifier("cifar_torchvision.pt", architecture="lenet", input_shape=(3, 32, 32),
    ...                       mean=(0.5,) * 3, std=(0.5,) * 3, class_names=CIFAR10_CLASSES)  # doctest: +SKIP
    """
    shape = check_input_shape(input_shape)
    if format is not None and format not in FORMATS:
        raise UnknownNameError(f"unknown model format {format!r}; choose one of {', '.join(FORMATS)} (or None to detect)")
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if not class_names:
            raise InvalidInputError("class_names must not be empty (or None for '0' … 'L-1')")
    data, display, file_name = _read_source(source, max_bytes)
    options = dict(format=format, architecture=architecture, num_classes=num_classes, input_shape=list(shape),
                   mean=None if mean is None else [float(v) for v in mean],
                   std=None if std is None else [float(v) for v in std],
                   bounds=[float(b) for b in bounds], class_names=None if class_names is None else list(class_names),
                   name=name, max_bytes=max_bytes, architecture_kwargs=_jsonable(architecture_kwargs))
    if not isolate:
        clf = _load_bytes(data, display, file_name, validate=True, **options)  # type: ignore[arg-type]
        clf.info["isolation"] = "trusted (isolate=False: loaded and probed in this process)"
        return clf
    lim = limits or DEFAULT_LIMITS
    if not isinstance(lim, SandboxLimits):
        raise InvalidInputError(f"limits must be a SandboxLimits, got {type(lim).__name__}")
    report = run_isolated(data, {**options, "display": display, "file_name": file_name}, limits=lim, display=display)
    clf = _load_bytes(data, display, file_name, validate=False, probe_classes=int(report["num_classes"]),
                      **options)  # type: ignore[arg-type]
    clf.info["isolation"] = {"limits": lim.describe(), "child_seconds": round(float(report["wall_seconds"]), 2)}
    return clf


#: Largest input accepted, in values per image (C·H·W): 16.7 M, i.e. 3 × 2364 × 2364.
MAX_INPUT_VALUES: int = 2**24


def check_input_shape(input_shape: Any) -> tuple[int, int, int]:
    """``input_shape`` as (C, H, W) positive ints with C·H·W ≤ :data:`MAX_INPUT_VALUES`; checked before any allocation.

    Raises
    ------
    InvalidInputError
        not three positive integers, or too large (the message gives the size and the limit).
    """
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = len(shape) == 3 and all(float(s) == int(float(s)) for s in input_shape)
    except (TypeError, ValueError, OverflowError):
        shape, ok = (), False
    if not ok or min(shape) <= 0:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive integer sizes, got {input_shape!r}")
    values = shape[0] * shape[1] * shape[2]
    if values > MAX_INPUT_VALUES:
        raise InvalidInputError(
            f"input_shape {shape} has {values:,} values per image, over the limit of {MAX_INPUT_VALUES:,} "
            "(3 × 2364 × 2364); the atlas measures image classifiers up to that size"
        )
    return shape  # type: ignore[return-value]


def _jsonable(obj: Any) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, int, float, str)):
        return obj
    raise InvalidInputError(f"architecture_kwargs must hold numbers, strings, lists and dicts, got {type(obj).__name__}")


def _load_bytes(data: bytes, display: str, file_name: str, *, format, architecture, num_classes, input_shape, mean,
                std, bounds, class_names, name, max_bytes, architecture_kwargs, validate: bool,
                probe_classes: int | None = None) -> Classifier:
    """The body of :func:`load_classifier` once the file is in memory (also run by the sandbox child)."""
    shape = check_input_shape(input_shape)
    class_names = None if class_names is None else tuple(class_names)
    if not data:
        raise ModelLoadError(f"{display!r} is empty (0 bytes); expected a model file")
    try:
        detected: tuple[str, str] | None = _detect(data, file_name, display)
    except ModelLoadError:
        if format is None:
            raise
        detected = None  # the caller insists on a format: let that loader report the failure
    fmt = format or detected[0]  # type: ignore[index]
    how = "given as format=" + repr(format) if format else detected[1]  # type: ignore[index]
    notes: list[str] = []
    info: dict[str, Any] = {"format": fmt, "detected": how, "file": display, "bytes": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()}

    if data[:4] == b"PK\x03\x04":  # a zip archive may declare entries far larger than the file
        try:
            total = sum(i.file_size for i in zipfile.ZipFile(io.BytesIO(data)).infolist())
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise _corrupt(display, fmt, exc, detected) from exc
        if total > max_bytes:
            raise ModelLoadError(
                f"{display!r} unpacks to {_mib(total)}, over the limit of {_mib(max_bytes)} (max_bytes); "
                "pass a larger max_bytes if you trust the file"
            )
    if fmt in ("torchscript", "export", "onnx"):
        loader = {"torchscript": _load_torchscript, "export": _load_export, "onnx": _load_onnx}[fmt]
        try:
            model = loader(data, display, detected, info)
        except ModelLoadError as exc:
            if detected is None or detected[0] == fmt:
                raise
            raise ModelLoadError(f"{exc}; its content looks like {_FORMAT_LABEL[detected[0]]} ({detected[1]}): "
                                 f"try format={detected[0]!r}") from exc
        if architecture is not None:
            notes.append(f"architecture={architecture!r} ignored: the file holds its own")
    else:
        if fmt == "state_dict":
            raw = _load_pickled_state(data, display, detected)
        else:
            raw = _load_safetensors(data, display, detected)
        sd, notes = _extract_state_dict(raw, display)
        if architecture is None:
            raise ModelLoadError(
                f"{display!r} is a state_dict (weights only, {len(sd)} tensors, first keys "
                f"{', '.join(list(sd)[:3])}): pass architecture= one of {', '.join(sorted(ARCHITECTURES))}, "
                f"{', '.join(sorted(LOADING_ARCHITECTURES))} or 'torchvision:<name>' (e.g. 'torchvision:resnet18')"
            )
        kwargs = dict(architecture_kwargs or {})
        L = num_classes if num_classes is not None else (len(class_names) if class_names else None)
        if L is None:
            L = _infer_num_classes(architecture, shape, sd, kwargs)
            if L is None:  # the keys do not match the architecture: guess, and let the fit report the keys
                L = next((int(t.shape[0]) for t in reversed(list(sd.values())) if t.dim() == 2), None)
            if L is None:
                raise ModelLoadError(
                    f"could not read the number of classes of {display!r} for architecture {architecture!r}; "
                    "pass num_classes or class_names"
                )
            notes.append(f"num_classes={L} read from the weights")
        if isinstance(L, bool) or not isinstance(L, int) or L < 1:
            raise InvalidInputError(f"num_classes must be a positive integer, got {L!r}")
        model = build_loading_architecture(architecture, input_shape=shape, num_classes=L, **kwargs)
        _fit_state_dict(model, sd, name=display, architecture=architecture, input_shape=shape, num_classes=L)
        info["architecture"] = architecture
        if kwargs:
            info["architecture_kwargs"] = kwargs

    info["parameters"] = int(sum(p.numel() for p in model.parameters()))
    info["notes"] = notes
    clf_name = name or (Path(file_name).stem if file_name else "uploaded-model")
    clf = make_classifier(model, input_shape=shape, class_names=class_names or (), name=clf_name,
                          mean=mean, std=std, bounds=tuple(bounds), info=info)  # type: ignore[arg-type]
    if class_names is None:
        if probe_classes is not None:
            L_out = probe_classes
        else:
            x = torch.rand((4, *shape), generator=torch.Generator().manual_seed(0))
            x = (clf.bounds[0] + clf.bounds_range * x).to(clf.dtype)
            L_out = _probe_outputs(clf, x).shape[1]
        clf = dataclasses.replace(clf, class_names=tuple(str(i) for i in range(L_out)))
    if validate:
        validate_classifier(clf)
    return clf
