"""On-disk cache: where trained models, decoded datasets and computed subspaces live.

The folder is ``$BOUNDARY_ATLAS_CACHE`` if set, else ``$XDG_CACHE_HOME/boundary-atlas``
(``~/.cache/boundary-atlas``). Every write is atomic (write to a temporary file in the same
folder, then ``os.replace``) so an interrupted run never leaves a half-written file behind.
Keys are hashes of everything that defines the content (recipe, data, settings), so a changed
recipe never reuses a stale file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

__all__ = ["cache_dir", "cache_key", "atomic_write", "atomic_write_bytes"]


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
    return atomic_write(path, lambda p: p.write_bytes(data))
