"""Which format a model file is in, read from its content; reading the file (:func:`_read_source`).

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

:func:`_corrupt` builds the "truncated or corrupt" message of every reader, naming the format the
content looks like when it is not the one tried.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import BinaryIO, TypeAlias

from ..errors import ModelLoadError
from ..errors import first_line as _first_line
from ..validation import check_int

__all__ = ["FORMATS", "DEFAULT_MAX_BYTES", "detect_format"]

#: Model file formats understood by :func:`geometry.loading.load_classifier`.
FORMATS: tuple[str, ...] = ("torchscript", "export", "onnx", "state_dict", "safetensors")
#: Default size limit of a model file, in bytes (512 MiB).
DEFAULT_MAX_BYTES: int = 512 * 2**20
#: What a model file can be given as: a path, its bytes, or a binary file object (an upload).
Source: TypeAlias = str | os.PathLike | bytes | BinaryIO

_FORMAT_LABEL = {
    "torchscript": "TorchScript (torch.jit.load)",
    "export": "torch.export program (torch.export.load)",
    "state_dict": "state_dict (torch.load with weights_only=True)",
    "safetensors": "safetensors state_dict",
    "onnx": "ONNX model (converted with onnx2torch)",
}
_TORCH_SAVE_EXTENSIONS = (".pt", ".pth", ".pkl", ".bin", ".ckpt", ".tar")


def _mib(n: int) -> str:
    return f"{n:,} bytes" + (f" ({n / 2**20:.1f} MiB)" if n >= 2**20 else "")


def _read_source(source: Source, max_bytes: int) -> tuple[bytes, str, str]:
    """(content, display name, file name for the extension) of a path / bytes / binary file object."""
    max_bytes = check_int("max_bytes", max_bytes, 1)
    over = lambda n, what: ModelLoadError(
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


def _zip_entries(data: bytes) -> tuple[zipfile.ZipFile, str, list[str]]:
    """Open a zip; return it, its single root folder ('' if none) and the entries with their first
    folder stripped (for *detection* only: :mod:`geometry.loading.screen` then refuses any archive with more
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
    except Exception:
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
    }.get(
        ext,
        f"a {ext} file from torch.save is a zip archive or a pickle stream" if ext in _TORCH_SAVE_EXTENSIONS else "",
    )
    raise ModelLoadError(
        f"{name!r} is not a recognised model file: its content is none of the formats the atlas reads (first "
        f"bytes {data[:8]!r}{'; ' + expected if expected else ''}). Expected TorchScript or a torch.save state_dict "
        "(.pt / .pth), a torch.export program (.pt2), an ONNX model (.onnx) or .safetensors; the file may be "
        "truncated, damaged or of another kind"
    )


def detect_format(source: Source, *, max_bytes: int = DEFAULT_MAX_BYTES) -> str:
    """The format :func:`load_classifier` would use for ``source`` (one of :data:`FORMATS`).

    Reads the content (see :mod:`geometry.loading.detect` for the rules). Raises
    :class:`~geometry.errors.ModelLoadError` for unreadable, oversized or unrecognised files.
    """
    data, name, file_name = _read_source(source, max_bytes)
    return _detect(data, file_name, name)[0]


def _corrupt(name: str, fmt: str, exc: BaseException, detected: tuple[str, str] | None = None) -> ModelLoadError:
    msg = f"could not load {name!r} as {_FORMAT_LABEL[fmt]}: the file is truncated or corrupt, or not in this format ({_first_line(exc)})"
    if detected is not None and detected[0] != fmt:
        msg += f"; its content looks like {_FORMAT_LABEL[detected[0]]} ({detected[1]}): try format={detected[0]!r}"
    return ModelLoadError(msg)
