"""Reading an untrusted zip (a data upload, an ``.npz``): entry count from the end record, entry
names and declared sizes checked before anything is written, entries extracted streamed.

The limits (:data:`~geometry.data.limits.MAX_ZIP_ENTRIES`,
:data:`~geometry.data.limits.MAX_ZIP_UNPACKED_BYTES`) are read at call time.
"""

from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO

from ..errors import InvalidInputError
from . import limits
from .common import _first_line, _gib, _is_image_name

_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    zlib.error,
    struct.error,
    ValueError,
    RuntimeError,
    NotImplementedError,  # RuntimeError: encrypted entry; NotImplementedError: unknown compression
)


def _zip_declared_entries(fh: BinaryIO) -> int | None:
    """Entry count declared by the zip's end-of-central-directory record (zip64 too), read from the
    file's tail before :class:`zipfile.ZipFile` builds one object per entry; None if not found."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - (22 + 0xFFFF)))
    tail = fh.read()
    pos = tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + 22 > len(tail):
        return None
    (count,) = struct.unpack("<H", tail[pos + 10 : pos + 12])
    if count == 0xFFFF and pos >= 20 and tail[pos - 20 : pos - 16] == b"PK\x06\x07":
        (offset,) = struct.unpack("<Q", tail[pos - 12 : pos - 4])
        fh.seek(offset)
        record = fh.read(40)
        if len(record) == 40 and record[:4] == b"PK\x06\x06":
            (count,) = struct.unpack("<Q", record[32:40])
    return count


def _open_zip(fh: BinaryIO, what: str, kind: str) -> zipfile.ZipFile:
    """``zipfile.ZipFile(fh)`` with at most :data:`MAX_ZIP_ENTRIES` entries (checked before and
    after parsing the listing); InvalidInputError naming ``what`` for anything unreadable."""
    try:
        declared = _zip_declared_entries(fh)
        if declared is None or declared <= limits.MAX_ZIP_ENTRIES:
            fh.seek(0)
            zf = zipfile.ZipFile(fh)
            declared = len(zf.infolist())
            if declared <= limits.MAX_ZIP_ENTRIES:
                return zf
            zf.close()
    except _ZIP_READ_ERRORS as e:
        raise InvalidInputError(f"could not read {what} as {kind}: {_first_line(e)}") from e
    raise InvalidInputError(
        f"{what} has {declared:,} entries, over the limit of {limits.MAX_ZIP_ENTRIES:,} entries per zip "
        "(MAX_ZIP_ENTRIES)"
    )


def _zip_plan(zf: zipfile.ZipFile, what: str) -> list[tuple[zipfile.ZipInfo, tuple[str, ...], bool]]:
    """Check every entry name and the declared sizes before anything is written.

    Returns ``(info, path parts, is_image)`` of each file to extract (folders, hidden files and
    ``__MACOSX/`` are skipped). Refuses absolute paths, drive letters, ``..``, duplicate names, a
    file that another entry uses as a folder, and image files declaring more than
    :data:`MAX_ZIP_UNPACKED_BYTES` uncompressed in all.
    """
    plan: list[tuple[zipfile.ZipInfo, tuple[str, ...], bool]] = []
    names: dict[tuple[str, ...], str] = {}
    total = 0
    for info in zf.infolist():
        name = info.filename
        loose = PurePosixPath(name.replace("\\", "/"))
        if loose.is_absolute() or ".." in loose.parts or PureWindowsPath(name).drive:
            raise InvalidInputError(
                f"{what}: refusing zip entry {name!r}: paths must stay inside the archive "
                "(no absolute paths, drive letters or '..')"
            )
        p = PurePosixPath(name)
        if info.is_dir() or not p.parts or p.name.startswith(".") or "__MACOSX" in p.parts:
            continue
        if p.parts in names:
            raise InvalidInputError(f"{what}: the zip holds two entries named {name!r}; rename or remove one")
        names[p.parts] = name
        image = _is_image_name(p.name)
        if image:
            total += info.file_size
        plan.append((info, p.parts, image))
    for parts, name in names.items():
        for k in range(1, len(parts)):
            if parts[:k] in names:
                raise InvalidInputError(
                    f"{what}: zip entry {names[parts[:k]]!r} is a file but {name!r} uses it as a folder; "
                    "rename one of them"
                )
    if total > limits.MAX_ZIP_UNPACKED_BYTES:
        raise InvalidInputError(
            f"{what}: its images declare {total:,} bytes ({_gib(total)}) uncompressed, over the limit of "
            f"{limits.MAX_ZIP_UNPACKED_BYTES:,} bytes ({_gib(limits.MAX_ZIP_UNPACKED_BYTES)}, MAX_ZIP_UNPACKED_BYTES)"
        )
    return plan


def _extract_zip(
    zf: zipfile.ZipFile, plan: Sequence[tuple[zipfile.ZipInfo, tuple[str, ...], bool]], base: Path, what: str
) -> None:
    """Write the planned entries below ``base``: images streamed (CRC-checked, at most their declared
    size), other files as empty placeholders (only their names matter to the folder layout)."""
    for info, parts, image in plan:
        dest = base.joinpath(*parts)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            if image:
                with zf.open(info) as src, open(dest, "xb") as out:  # "x": never overwrite
                    shutil.copyfileobj(src, out, 1 << 20)
            else:
                open(dest, "xb").close()
        except _ZIP_READ_ERRORS as e:
            raise InvalidInputError(f"could not unpack {what}: zip entry {info.filename!r}: {_first_line(e)}") from e
