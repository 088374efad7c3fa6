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
============  ===========================================  ===================================

Detection (``format=None``): the *content* decides, the extension only breaks ties.

* a zip archive (``PK\\x03\\x04``): its entries (under the archive's one root folder) tell the
  kind: ``code/…`` or ``constants.pkl`` → torchscript; ``archive_format`` or ``models/…`` →
  export; ``data.pkl`` alone → state_dict (``torch.save``). A zip whose directory cannot be read
  (truncated) is reported as corrupt, naming the kind the extension suggests;
* 8-byte little-endian header length followed by ``{`` → safetensors;
* a pickle stream (first byte ``0x80``) → state_dict in the legacy (non-zip) ``torch.save``
  format (e.g. files written before PyTorch 1.6);
* otherwise the extension: ``.pt2`` → export, ``.safetensors`` → safetensors, ``.pt`` / ``.pth``
  / ``.pkl`` / ``.bin`` / ``.ckpt`` → state_dict; anything else is refused.

Security: what is trusted
-------------------------
A model file is untrusted input (the app accepts uploads). Unpickling a Python pickle runs
arbitrary code, so:

* **state_dict** files are read *only* with ``torch.load(..., weights_only=True)`` (PyTorch's
  restricted unpickler: tensors, containers and primitive types, no other globals). A fully
  pickled module (``torch.save(model)``), or any pickle naming another global, is refused; we
  never fall back to ``weights_only=False``. **safetensors** holds no code at all (a JSON header
  and raw tensor bytes).
* **TorchScript** archives are read by TorchScript's C++ loader: its unpickler resolves classes
  only to TorchScript classes compiled from the archive's ``code/`` (TorchScript, not Python)
  and never imports or calls Python objects. That code *can* call any registered operator,
  and some touch the file system (``torch.save`` = ``aten::save``, ``aten::from_file``,
  torchvision's ``image::read_file`` / ``image::write_file``, ``debugprims::load_tensor``) or the
  network (``c10d``). Before loading, the ``code/`` sources are scanned: operator namespaces
  other than ``aten`` / ``prim`` / ``prims`` / ``quantized``, torchbind classes other than
  ``quantized``, and the names of those file operators are refused.
* **torch.export** programs: ``torch.export.load`` is *not* safe on its own. It unpickles
  pickled weights / constants and "opaque" constants with ``weights_only=False``, retries the
  sample inputs with ``weights_only=False`` when ``weights_only=True`` fails, loads compiled
  AOTInductor libraries, ``sympify``-s (= ``eval``-s) the symbolic shape expressions, and
  ``.module()`` ``exec``-s the archive's ``guards_code`` (both demonstrated to run code from a
  crafted ``.pt2``). Before calling it we therefore accept only plain ``torch.export.save``
  archives: a fixed list of entries (no AOTInductor / legacy / pickled payloads), weights and
  constants stored as raw tensor bytes, sample inputs that load with ``weights_only=True``,
  graph nodes that call only ``torch.ops.aten`` / ``prims`` operators (plus a few shape
  helpers and control-flow operators), and shape expressions made only of symbol names,
  numbers, arithmetic and an allow-list of sympy functions. ``.module(check_guards=False)``
  never executes ``guards_code`` (input shapes are still checked by the pre-hook that
  ``torch.export`` installs).

These checks are defence in depth, not a sandbox: a loaded model still runs on this machine and
can use CPU time and memory. ``max_bytes`` bounds the file size (and the uncompressed size of a
zip archive).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import re
import tokenize
import types
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import torch
from torch import nn

from .classifier import Classifier, make_classifier
from .errors import InvalidInputError, ModelLoadError, UnknownNameError
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
FORMATS: tuple[str, ...] = ("torchscript", "export", "state_dict", "safetensors")
#: Default size limit of a model file, in bytes (512 MiB).
DEFAULT_MAX_BYTES: int = 512 * 2**20

_FORMAT_LABEL = {
    "torchscript": "TorchScript (torch.jit.load)",
    "export": "torch.export program (torch.export.load)",
    "state_dict": "state_dict (torch.load with weights_only=True)",
    "safetensors": "safetensors state_dict",
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
    """Open a zip; return it, its single root folder ('' if none) and the entries relative to it."""
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in zf.namelist() if not n.endswith("/")]
    roots = {n.split("/", 1)[0] for n in names if "/" in n}
    root = roots.pop() if len(roots) == 1 and all("/" in n for n in names) else ""
    rel = [n[len(root) + 1 :] if root else n for n in names]
    return zf, root, rel


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
    if ext == ".pt2":
        return "export", "the .pt2 extension"
    if ext == ".safetensors":
        return "safetensors", "the .safetensors extension"
    if ext in _TORCH_SAVE_EXTENSIONS:
        return "state_dict", f"the {ext} extension"
    if not data:
        raise ModelLoadError(f"{name!r} is empty (0 bytes); expected a model file")
    raise ModelLoadError(
        f"{name!r} is not a recognised model file (first bytes {data[:8]!r}); expected TorchScript or a "
        "torch.save state_dict (.pt / .pth, a zip archive), a torch.export program (.pt2) or .safetensors"
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
_TS_NAMESPACES = {"aten", "prim", "prims", "quantized", "_quantized"}
_TS_CLASS_NAMESPACES = {"quantized"}
_FILE_OPERATORS = ("save", "from_file", "load_tensor", "read_file", "write_file")


def _code_tokens(text: str) -> list[str]:
    """NAME and OP tokens of TorchScript source (Python syntax), comments and whitespace dropped."""
    keep = (tokenize.NAME, tokenize.OP)
    return [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type in keep]


def _check_torchscript(data: bytes, name: str) -> None:
    """Refuse TorchScript whose code calls operators outside the allowed namespaces or file operators."""
    zf, root, rel = _zip_entries(data)
    for r in rel:
        if not (r.startswith("code/") and r.endswith(".py")):
            continue
        text = zf.read(f"{root}/{r}" if root else r).decode("utf-8", "replace")
        try:
            tokens = _code_tokens(text)
        except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
            raise ModelLoadError(f"refusing {name!r}: its TorchScript code ({r}) does not tokenize ({_first_line(exc)})") from exc
        for i, tok in enumerate(tokens):
            if tok in _FILE_OPERATORS:
                raise ModelLoadError(
                    f"refusing {name!r}: its TorchScript code ({r}) uses {tok!r}, an operator that reads or writes "
                    "files (torch.save / from_file / read_file / write_file); a classifier does not need it"
                )
            if tok not in ("ops", "classes") or tokens[i + 1 : i + 2] != ["."] or i + 2 >= len(tokens):
                continue
            # `ops.ns.op` / `torch.ops.ns.op` call an operator; `torchvision.ops.misc.X` is a class path
            qualified = i >= 1 and tokens[i - 1] == "."
            if qualified and not (i >= 2 and tokens[i - 2] == "torch" and (i < 3 or tokens[i - 3] != ".")):
                continue
            ns = tokens[i + 2]
            allowed = _TS_NAMESPACES if tok == "ops" else _TS_CLASS_NAMESPACES
            if ns not in allowed:
                kind = "calls operators" if tok == "ops" else "uses torchbind classes"
                raise ModelLoadError(
                    f"refusing {name!r}: its TorchScript code ({r}) {kind} of namespace {ns!r}; only "
                    f"{', '.join(sorted(allowed))} are allowed in an uploaded model (others can reach files, the "
                    "network or native extensions)"
                )


class _TorchScriptModel(nn.Module):
    """A loaded ScriptModule as a plain ``nn.Module`` child (``ScriptModule.requires_grad_`` raises,
    which :func:`~geometry.classifier.make_classifier` calls); ``forward`` just calls it."""

    def __init__(self, script: nn.Module):
        super().__init__()
        self.script = script

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.script(x)


def _load_torchscript(data: bytes, name: str, detected) -> nn.Module:
    try:
        _check_torchscript(data, name)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        if isinstance(exc, ModelLoadError):
            raise
        raise _corrupt(name, "torchscript", exc, detected) from exc
    try:
        with warnings.catch_warnings():  # "torch.jit.load is deprecated": not the uploader's concern
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            return _TorchScriptModel(torch.jit.load(io.BytesIO(data), map_location="cpu"))
    except Exception as exc:
        raise _corrupt(name, "torchscript", exc, detected) from exc


# ------------------------------------------------------------------------------ torch.export
_PT2_ENTRY = re.compile(
    r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id|models/model\.json"
    r"|data/weights/model_weights_config\.json|data/weights/weight_\d+"
    r"|data/constants/model_constants_config\.json|data/constants/tensor_\d+"
    r"|data/sample_inputs/model\.pt|extra/[\w.\-]+"
)
_PT2_NAMESPACES = {"aten", "prims"}
_PT2_HIGHER_ORDER = {"cond", "while_loop", "map_impl", "scan", "wrap_with_set_grad_enabled", "wrap_with_autocast"}
_PT2_OPERATOR_FUNCS = {
    "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "trunc",
    "eq", "ne", "lt", "le", "gt", "ge", "and_", "or_", "xor", "not_", "invert", "lshift", "rshift",
}
_SYMBOL_NAME = re.compile(r"[a-z]+\d+")
_EXPR_NAMES = {
    # sympy
    "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Abs", "Mod",
    "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "true", "false", "True", "False",
    "oo", "zoo", "nan", "floor", "ceiling", "sqrt",
    # torch.utils._sympy.functions, as passed to sympify by the export deserializer
    "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt", "FloorToInt",
    "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow", "FloatTrueDiv", "IntTrueDiv",
    "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt", "RoundDecimal",
    "ToFloat", "Identity",
    # assumptions given to Symbol(...)
    "integer", "positive", "nonnegative", "negative", "nonpositive", "real", "finite", "nonzero",
    "zero", "even", "odd", "rational", "extended_real", "commutative",
}
_EXPR_OPS = {"+", "-", "*", "/", "//", "%", "**", "(", ")", ",", "=", "==", "!=", "<", "<=", ">", ">=", "&", "|", "~", "^"}


def _pt2_refuse(name: str, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"refusing {name!r}: {why}. torch.export.load would unpickle or execute this content, so only plain "
        "torch.export.save archives of aten operators are accepted"
    )


def _check_target(target: str, name: str) -> None:
    m = re.fullmatch(r"torch\.ops\.([A-Za-z_]\w*)\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?", target)
    if m:
        ns, op = m.group(1), m.group(2)
        if "__" in target:
            raise _pt2_refuse(name, f"the graph calls {target!r}")
        if ns == "higher_order" and op in _PT2_HIGHER_ORDER:
            return
        if ns in _PT2_NAMESPACES and op not in _FILE_OPERATORS:
            return
        raise _pt2_refuse(name, f"the graph calls operator {target!r} (allowed: torch.ops.aten / prims, and "
                                f"higher-order {', '.join(sorted(_PT2_HIGHER_ORDER))})")
    m = re.fullmatch(r"_operator\.(\w+)", target)
    if m and m.group(1) in _PT2_OPERATOR_FUNCS:
        return
    m = re.fullmatch(r"math\.([a-z]\w*)", target)
    if m and "__" not in target:
        return
    if re.fullmatch(r"torch\._?sym_[a-z_]+", target):
        return
    raise _pt2_refuse(name, f"the graph calls {target!r}, which is not a torch operator")


def _check_expr(expr: str, name: str) -> None:
    """Shape expressions are sympify-ed (eval-ed): allow only symbols, numbers, arithmetic and known functions."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as exc:
        raise _pt2_refuse(name, f"a shape expression does not parse ({_first_line(exc)})") from exc
    for tok in tokens:
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            continue
        ok = (
            (tok.type == tokenize.NUMBER)
            or (tok.type == tokenize.NAME and (tok.string in _EXPR_NAMES or _SYMBOL_NAME.fullmatch(tok.string)))
            or (tok.type == tokenize.STRING and re.fullmatch(r"'[a-z]+\d+'|\"[a-z]+\d+\"", tok.string))
            or (tok.type == tokenize.OP and tok.string in _EXPR_OPS)
        )
        if not ok:
            shown = expr if len(expr) <= 120 else expr[:119] + "…"
            raise _pt2_refuse(name, f"the shape expression {shown!r} contains {tok.string!r}, which is not a symbol, "
                                    "number, arithmetic operator or known shape function")


def _walk_program(obj: Any, name: str) -> None:
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            target = o.get("target")
            if isinstance(target, str) and "inputs" in o and "outputs" in o:
                _check_target(target, name)
            for k, v in o.items():
                if k == "as_operator" and isinstance(v, str):
                    _check_target(v, name)
                elif k == "expr_str" and isinstance(v, str):
                    _check_expr(v, name)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(x for x in o if isinstance(x, (dict, list)))


def _check_payload_config(raw: bytes, prefix: str, what: str, name: str) -> None:
    try:
        config = json.loads(raw)["config"]
        items = list(config.items())
    except Exception as exc:
        raise _pt2_refuse(name, f"its {what} configuration is not valid JSON ({_first_line(exc)})") from exc
    for fqn, meta in items:
        if not isinstance(meta, dict):
            raise _pt2_refuse(name, f"its {what} configuration is malformed at {fqn!r}")
        if meta.get("use_pickle"):
            raise _pt2_refuse(name, f"{what} {fqn!r} is stored as a pickle (a tensor subclass?)")
        if not re.fullmatch(prefix + r"\d+", str(meta.get("path_name", ""))):
            raise _pt2_refuse(name, f"{what} {fqn!r} is stored as {meta.get('path_name')!r}, not raw tensor bytes")


def _check_pt2(data: bytes, name: str) -> None:
    zf, root, rel = _zip_entries(data)
    full = lambda r: f"{root}/{r}" if root else r  # noqa: E731
    for r in rel:
        if not _PT2_ENTRY.fullmatch(r):
            raise _pt2_refuse(name, f"the archive holds {full(r)!r} (AOTInductor libraries, legacy pickled weights, "
                                    "pickled constants or other models are not accepted)")
    if "models/model.json" not in rel:
        raise _pt2_refuse(name, "the archive has no models/model.json")
    if "archive_format" not in rel or zf.read(full("archive_format")).decode("utf-8", "replace").strip() != "pt2":
        raise _pt2_refuse(name, "the archive's archive_format is missing or not 'pt2'")
    if "data/weights/model_weights_config.json" in rel:
        _check_payload_config(zf.read(full("data/weights/model_weights_config.json")), "weight_", "weight", name)
    if "data/constants/model_constants_config.json" in rel:
        _check_payload_config(zf.read(full("data/constants/model_constants_config.json")), "tensor_", "constant", name)
    if "data/sample_inputs/model.pt" in rel:
        try:
            torch.load(io.BytesIO(zf.read(full("data/sample_inputs/model.pt"))), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise _pt2_refuse(name, f"its sample inputs are not a plain tensor pickle ({_first_line(exc, 200)}) and "
                                    "torch.export.load would retry with weights_only=False") from exc
    try:
        program = json.loads(zf.read(full("models/model.json")))
    except Exception as exc:
        raise _pt2_refuse(name, f"models/model.json is not valid JSON ({_first_line(exc)})") from exc
    _walk_program(program, name)
    for key in (program.get("range_constraints") or {}) if isinstance(program, dict) else ():
        if not _SYMBOL_NAME.fullmatch(str(key)):
            raise _pt2_refuse(name, f"the range constraint {key!r} is not a symbol name")


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


def _load_export(data: bytes, name: str, detected) -> nn.Module:
    try:
        _check_pt2(data, name)
    except ModelLoadError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise _corrupt(name, "export", exc, detected) from exc
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


# ------------------------------------------------------------------------------ state_dicts
def _load_pickled_state(data: bytes, name: str, detected) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL\s+([\w.]+)", text)
        if m or "Unsupported" in text:
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
) -> Classifier:
    """Load a user's model file as a frozen, validated :class:`~geometry.classifier.Classifier`.

    Parameters
    ----------
    source : path-like, bytes, or binary file object
        The model file. A file object needs ``getvalue()`` (Streamlit's ``UploadedFile``,
        ``io.BytesIO``) or ``read()``; its ``.name`` (if any) gives the display name and extension.
    format : {"torchscript", "export", "state_dict", "safetensors"}, optional
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

    Returns
    -------
    Classifier
        ``network`` = [Normalize(mean, std) →] model, eval mode, parameters frozen, on the CPU;
        ``info`` holds ``format``, ``detected`` (how the format was recognised), ``file``,
        ``bytes``, ``sha256`` (of the file; a cache key), ``parameters``, ``architecture`` (for
        weights files) and ``notes`` (wrapper unwrapped, prefixes stripped).

    Raises
    ------
    ModelLoadError
        the file is missing, over ``max_bytes``, empty, truncated or corrupt (the message names
        the file and the format tried), unrecognised, a pickled Python object (refused: loading
        it would run code from the file), a TorchScript / exported program that uses operators
        an uploaded model may not use (see "Security"), a state_dict that does not fit the
        architecture (missing / unexpected keys and shape mismatches listed), or a model that
        fails :func:`validate_classifier`.
    UnknownNameError
        unknown ``format`` or ``architecture``.
    InvalidInputError
        bad ``input_shape`` / ``mean`` / ``std`` / ``bounds`` / ``max_bytes``.

    Examples
    --------
    >>> clf = load_classifier("cifar_torchvision.pt", architecture="lenet", input_shape=(3, 32, 32),
    ...                       mean=(0.5,) * 3, std=(0.5,) * 3, class_names=CIFAR10_CLASSES)  # doctest: +SKIP
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) <= 0:
        raise InvalidInputError(f"input_shape must be (C, H, W) with positive sizes, got {tuple(input_shape)}")
    if format is not None and format not in FORMATS:
        raise UnknownNameError(f"unknown model format {format!r}; choose one of {', '.join(FORMATS)} (or None to detect)")
    if class_names is not None:
        class_names = tuple(str(c) for c in class_names)
        if not class_names:
            raise InvalidInputError("class_names must not be empty (or None for '0' … 'L-1')")
    data, display, file_name = _read_source(source, max_bytes)
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
    if fmt in ("torchscript", "export"):
        model = (_load_torchscript if fmt == "torchscript" else _load_export)(data, display, detected)
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
                          mean=mean, std=std, bounds=bounds, info=info)
    if class_names is None:
        x = torch.rand((4, *shape), generator=torch.Generator().manual_seed(0))
        x = (clf.bounds[0] + clf.bounds_range * x).to(clf.dtype)
        L_out = _probe_outputs(clf, x).shape[1]
        clf = dataclasses.replace(clf, class_names=tuple(str(i) for i in range(L_out)))
    validate_classifier(clf)
    return clf
