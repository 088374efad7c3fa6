"""On-disk cache: where trained models, decoded datasets and computed subspaces live.

The folder is ``$BOUNDARY_ATLAS_CACHE`` if set, else ``$XDG_CACHE_HOME/boundary-atlas``
(``~/.cache/boundary-atlas``). Every write is atomic (write to a temporary file in the same
folder, then ``os.replace``) so an interrupted run never leaves a half-written file behind.
Keys are hashes of everything that defines the content (recipe, data, settings), so a changed
recipe never reuses a stale file.

Caches heal and never lie (issue 9): every cache file of tensors (zoo weights, subspaces, decoded
datasets) is written by :func:`save_tensors` — safetensors with a format version and a SHA-256 of
its metadata and tensors in its header — and read back by :func:`load_tensors`, which deletes a file
that is truncated, unreadable, fails its hash, lacks its metadata, has another format version or
holds NaN / inf where finite values are required, warns once (:class:`DamagedCacheWarning`, naming
the file) and reports a miss, so the caller recomputes. :func:`file_lock` lets two processes that
miss the same entry compute it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from .errors import AtlasError, InvalidInputError

__all__ = [
    "cache_dir",
    "cache_key",
    "atomic_write",
    "atomic_write_bytes",
    "tensors_digest",
    "save_tensors",
    "read_tensors",
    "load_tensors",
    "discard_damaged",
    "file_lock",
    "CorruptFileError",
    "DamagedCacheError",
    "DamagedCacheWarning",
]


def cache_dir(sub: str | None = None) -> Path:
    """The cache folder (created on demand), or its sub-folder ``sub``."""
    env = os.environ.get("BOUNDARY_ATLAS_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "boundary-atlas"
    path = root / sub if sub else root
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_key(obj: Any, length: int = 16) -> str:
    """A stable hex digest of a JSON-serialisable description (dict keys sorted)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` then atomically move ``tmp_path`` to ``path``. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""

    def write(p: Path) -> None:
        p.write_bytes(data)

    return atomic_write(path, write)


# ---------------------------------------------------------------------------- verified tensor files
SHA_KEY = "boundary_atlas_sha256"
VERSION_KEY = "boundary_atlas_format"
_DIGEST_TAG = b"boundary-atlas-tensors/1\n"


class CorruptFileError(InvalidInputError):
    """A tensor file is damaged: truncated or unreadable, fails its SHA-256, lacks its metadata, has
    another format version, or holds NaN / inf where finite values are required."""


class DamagedCacheError(AtlasError, FileNotFoundError):
    """A cache file was damaged and has been removed; it cannot be recomputed in this call (e.g.
    ``load_model(..., train=False)``). The next call that may recompute it does so."""


class DamagedCacheWarning(UserWarning):
    """A damaged cache file was deleted (it will be recomputed). The message names the file."""


def tensors_digest(tensors: dict, meta: dict[str, str] | None = None) -> str:
    """SHA-256 (hex) of string metadata and tensors, in a canonical order.

    Parameters
    ----------
    tensors : name → torch.Tensor (any dtype, shape, device)
    meta : name → str; the key ``SHA_KEY`` is left out (it holds the digest itself)

    Returns
    -------
    64 hex characters. Covers every metadata (key, value) in sorted order, then for each tensor in
    sorted name order its name, dtype, shape and raw bytes (native byte order, C-contiguous).
    """
    import torch

    h = hashlib.sha256(_DIGEST_TAG)
    for k, v in sorted((meta or {}).items()):
        if k != SHA_KEY:
            h.update(json.dumps(["meta", k, v]).encode() + b"\n")
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(json.dumps(["tensor", name, str(t.dtype), list(t.shape)]).encode() + b"\n")
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def save_tensors(path: Path, tensors: dict, meta: dict[str, str] | None = None, *, version: int) -> Path:
    """Atomically write ``tensors`` and ``meta`` to the safetensors file ``path``, with a format
    version and a SHA-256 (:func:`tensors_digest`) in its metadata, for :func:`load_tensors`.

    Parameters
    ----------
    tensors : name → torch.Tensor (moved to CPU, made contiguous; shapes and dtypes kept)
    meta : name → str, stored in the header (the keys ``SHA_KEY`` and ``VERSION_KEY`` are reserved)
    version : the caller's format version; a file read back with another version is a miss

    Returns ``path``. Raises InvalidInputError for a reserved or non-string metadata entry, OSError when
    the file cannot be written (a full disk; an upload worker, which may write no file).
    """
    from safetensors.torch import save_file

    meta = dict(meta or {})
    if (
        SHA_KEY in meta
        or VERSION_KEY in meta
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    ):
        raise InvalidInputError(f"metadata must map str to str without {SHA_KEY!r} / {VERSION_KEY!r}")
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    meta[VERSION_KEY] = str(int(version))
    meta[SHA_KEY] = tensors_digest(tensors, meta)

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except OSError:
            raise
        except Exception as exc:  # safetensors reports a failed write (disk full, RLIMIT_FSIZE) as SafetensorError
            raise OSError(f"could not write {path}: {exc}") from exc

    return atomic_write(Path(path), write)


def read_tensors(path: Path, *, version: int, finite: bool | Collection[str] = True) -> tuple[dict, dict[str, str]]:
    """Read and verify a file written by :func:`save_tensors` (never deletes anything).

    Parameters
    ----------
    path : the file
    version : the format version it must carry
    finite : True — every floating tensor must be free of NaN / inf; a collection of names — only
        those tensors; False — no check

    Returns
    -------
    (tensors, meta) — name → CPU tensor, and the caller's metadata (reserved keys removed).

    Raises
    ------
    FileNotFoundError
        no such file.
    CorruptFileError
        truncated / unreadable, no metadata, other format version, SHA-256 mismatch, or non-finite values.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as exc:  # SafetensorError, OSError, …: whatever it is, the file is unusable
        raise CorruptFileError(f"{path} is truncated or unreadable ({type(exc).__name__}: {exc})") from exc
    if SHA_KEY not in meta or VERSION_KEY not in meta:
        raise CorruptFileError(f"{path} lacks its integrity metadata (written by an older version?)")
    if meta[VERSION_KEY] != str(int(version)):
        raise CorruptFileError(f"{path} has format version {meta[VERSION_KEY]!r}, expected {int(version)}")
    if tensors_digest(tensors, meta) != meta[SHA_KEY]:
        raise CorruptFileError(f"{path} fails its SHA-256 check (the file was modified or damaged)")
    names = [k for k, t in tensors.items() if t.is_floating_point()] if finite is True else list(finite or ())
    for k in names:
        if k not in tensors:
            raise CorruptFileError(f"{path} lacks the tensor {k!r}")
        if tensors[k].is_floating_point() and not bool(tensors[k].isfinite().all()):
            raise CorruptFileError(f"{path} holds NaN / inf values in {k!r}")
    del meta[SHA_KEY], meta[VERSION_KEY]
    return tensors, meta


def discard_damaged(path: Path, reason: object = "") -> None:
    """Delete the damaged cache file ``path`` (if still there) and warn once, naming it.

    Emits a :class:`DamagedCacheWarning`; never raises (a file that cannot be deleted is left).
    """
    path = Path(path)
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    detail = str(reason)
    if detail.startswith(str(path)):  # CorruptFileError messages start with the path
        detail = detail[len(str(path)) :].strip()
    detail = f" ({detail})" if detail else ""
    warnings.warn(
        f"removed a damaged cache file {path}{detail}; it will be recomputed", DamagedCacheWarning, stacklevel=3
    )


def load_tensors(
    path: Path, *, version: int, finite: bool | Collection[str] = True
) -> tuple[dict, dict[str, str]] | None:
    """:func:`read_tensors`, but a cache miss instead of an error: None when the file is missing, and
    None after deleting it (:func:`discard_damaged`) when it is damaged. Never returns bad data."""
    try:
        return read_tensors(path, version=version, finite=finite)
    except FileNotFoundError:
        return None
    except CorruptFileError as exc:
        discard_damaged(path, exc)
        return None


@contextlib.contextmanager
def file_lock(path: Path, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``<path>.lock`` (next to ``path``) for the ``with`` block.

    Another process (or thread) entering the same lock waits until it is released; the operating
    system releases it if the holder dies. ``on_wait()`` is called once if the lock is busy, before
    waiting. The lock file itself is left in place (deleting it would race). Without ``fcntl``
    (Windows) this is a no-op.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux / macOS
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
