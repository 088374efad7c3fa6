"""Hostile uploads: issue 9 part 4 ("Data and upload limits").

Each test builds its crafted file inside the test (no binary blobs) and reproduces a measured fault:
a tiny zip of huge blank PNGs (decoded ~4 GiB), an ``.npz`` with the label 300,000,000, an ``.npz``
header declaring 93 GiB, zip entries that lie about their size / clash / escape the archive, and
the ``atlas-upload-*`` folder every zip upload used to leave in the temp dir. Every one must end
in one clear :class:`InvalidInputError` that names the upload (and the limit, where one is met),
decided from headers before anything large is decoded or allocated. A valid small upload still
loads with the right shape and labels.
"""

from __future__ import annotations

import io
import struct
import tempfile
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from geometry import data as data_mod
from geometry.data import (
    MAX_CLASSES,
    MAX_DECODED_BYTES,
    MAX_IMAGE_PIXELS,
    load_dataset,
    load_npz,
    load_zip_upload,
)
from geometry.errors import DatasetNotFoundError, InvalidInputError

NAME = "hostile_upload.zip"


# ---------------------------------------------------------------------------------------- builders
def _png(array_or_size, mode: str = "L") -> bytes:
    """PNG bytes of an array, or of a blank image of (width, height) in ``mode``."""
    if isinstance(array_or_size, np.ndarray):
        im = Image.fromarray(array_or_size)
    else:
        im = Image.new(mode, array_or_size)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """Zip bytes of ``(name, content)`` pairs (a name ending in '/' is a folder entry)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; we want them
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, content in entries:
                zf.writestr(name, content)
    return buf.getvalue()


def _declare_size(raw: bytes, member: str, size: int) -> bytes:
    """The zip with ``member``'s uncompressed size field rewritten to ``size`` (local header and
    central directory), leaving its data alone: an entry that lies about its size."""
    out = bytearray(raw)
    encoded = member.encode()
    for sig, size_at, name_len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        pos = out.find(sig)
        while pos >= 0:
            (n,) = struct.unpack_from("<H", out, pos + name_len_at)
            if bytes(out[pos + name_at : pos + name_at + n]) == encoded:
                struct.pack_into("<I", out, pos + size_at, size)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width × height (8-bit gray) followed by a tiny IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _upload(raw: bytes, name: str) -> io.BytesIO:
    f = io.BytesIO(raw)  # what st.file_uploader hands over: a BytesIO with a name
    f.name = name
    return f


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _npy_header_only(shape, descr: str = "<f4") -> bytes:
    """A .npy file that is only a (version 2.0) header declaring ``shape`` of ``descr``: no data."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_2_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _refused(call, *fragments: str) -> str:
    with pytest.raises(InvalidInputError) as info:
        call()
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, (fragment, msg)
    return msg


@pytest.fixture
def tmpdir_count(tmp_path, monkeypatch):
    """Point the temp dir at an empty folder; returns a function counting ``atlas-upload-*`` in it."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return lambda: len(list(temp.glob("atlas-upload-*")))


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel gets decoded: the refusal must come from headers."""

    def boom(*args, **kwargs):
        raise AssertionError("pixels were decoded before the limits were checked")

    monkeypatch.setattr(data_mod.common, "_decode_images", boom)


def _small_class_zip() -> tuple[bytes, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    pixels = {k: rng.integers(0, 256, size=(3, 4), dtype=np.uint8) for k in ("cat/b.png", "cat/a.png", "dog/x.png")}
    entries = [(f"mydata/{k}", _png(v)) for k, v in pixels.items()]
    entries += [("mydata/", b""), ("mydata/.DS_Store", b"junk"), ("__MACOSX/mydata/._cat", b"junk")]
    return _zip(entries), pixels


# --------------------------------------------------------------------- 5. valid upload, temp folder
def test_valid_zip_upload_loads_and_leaves_no_temp_folder(tmpdir_count, monkeypatch):
    raw, pixels = _small_class_zip()
    during = []
    decode = data_mod.common._decode_images

    def spy(*args, **kwargs):
        during.append(tmpdir_count())  # the extraction really lives in the (patched) temp dir
        return decode(*args, **kwargs)

    monkeypatch.setattr(data_mod.common, "_decode_images", spy)
    assert tmpdir_count() == 0
    ds = load_zip_upload(raw, name=NAME)
    assert during == [1] and tmpdir_count() == 0
    assert ds.images.shape == (3, 1, 3, 4) and ds.images.dtype == torch.float32
    assert ds.class_names == ("cat", "dog") and ds.labels.tolist() == [0, 0, 1]
    expected = np.stack([pixels[k] for k in ("cat/a.png", "cat/b.png", "dog/x.png")])[:, None]
    assert torch.equal(ds.images, torch.from_numpy(expected).float() / 255)
    assert ds.split == "test" and NAME in ds.source and "atlas-upload" not in ds.source


@pytest.mark.parametrize("fault", ["bad image", "bad crc", "no classes"])
def test_failed_zip_upload_leaves_no_temp_folder(tmpdir_count, fault):
    png = _png(np.zeros((3, 4), dtype=np.uint8))
    if fault == "bad image":  # fails after extraction, while decoding
        raw, expected = _zip([("a/0.png", png), ("a/1.png", b"not a png")]), f"{NAME}:a/1.png"
    elif fault == "bad crc":  # fails during extraction
        raw, expected = _declare_size(_zip([("a/0.png", png)]), "a/0.png", len(png) - 10), "CRC"
    else:
        raw, expected = _zip([("loose.png", png)]), NAME
    with pytest.raises((InvalidInputError, DatasetNotFoundError)) as info:
        load_zip_upload(raw, name=NAME)
    assert expected in str(info.value) and "atlas-upload" not in str(info.value)
    assert tmpdir_count() == 0


def test_app_unzip_helper_is_the_data_function_and_leaves_no_temp_folder(tmpdir_count):
    from pages.ui import upload as _upload

    raw, _ = _small_class_zip()
    ds = _upload._unzip_image_folder(raw, NAME)
    assert ds.images.shape == (3, 1, 3, 4) and ds.labels.tolist() == [0, 0, 1]
    with pytest.raises(InvalidInputError, match="CRC"):
        png = _png(np.zeros((2, 2), dtype=np.uint8))
        _upload._unzip_image_folder(_declare_size(_zip([("a/0.png", png)]), "a/0.png", 3), NAME)
    assert tmpdir_count() == 0


# ----------------------------------------------------------------- 1. decoded size, from headers
def test_zip_of_huge_blank_pngs_is_refused_from_headers(tmpdir_count, no_decoding):
    blank = _png((6000, 6000), mode="1")  # 36 Mpx, a few KB
    raw = _zip([(f"blank/c{i % 2}/{i}.png", blank) for i in range(120)])
    assert len(raw) < 100_000  # the measured fault: a ~39 KB zip that decodes to ~4 GiB
    _refused(
        lambda: load_zip_upload(raw, name=NAME),
        f"{NAME}:blank/c0/0.png",
        "6000×6000",
        "36,000,000",
        f"{MAX_IMAGE_PIXELS:,}",
        "MAX_IMAGE_PIXELS",
    )
    assert tmpdir_count() == 0


def test_zip_whose_images_decode_over_the_byte_limit_is_refused(no_decoding):
    side = 2048  # each image is under MAX_IMAGE_PIXELS, but 70 of them pass 1 GiB as float32
    assert side * side <= MAX_IMAGE_PIXELS and 70 * side * side * 4 > MAX_DECODED_BYTES
    blank = _png((side, side))
    raw = _zip([(f"c/{i:02d}.png", blank) for i in range(70)])
    _refused(
        lambda: load_zip_upload(raw, name=NAME),
        NAME,
        "MAX_DECODED_BYTES",
        f"{MAX_DECODED_BYTES:,}",
        "of 70 images",
        "2048×2048",
    )


def test_too_many_images_are_refused(monkeypatch, no_decoding):
    monkeypatch.setattr(data_mod, "MAX_IMAGES", 5)
    png = _png(np.zeros((2, 2), dtype=np.uint8))
    raw = _zip([(f"c/{i}.png", png) for i in range(6)])
    _refused(lambda: load_zip_upload(raw, name=NAME), NAME, "6 images", "limit of 5", "MAX_IMAGES")


def test_pil_decompression_bomb_error_is_reported_with_the_limit(no_decoding):
    bomb = _png_header_only(20_000, 20_000)  # 400 Mpx: PIL raises DecompressionBombError at open
    with pytest.raises(Image.DecompressionBombError):
        Image.open(io.BytesIO(bomb))
    raw = _zip([("c/bomb.png", bomb)])
    _refused(lambda: load_zip_upload(raw, name=NAME), f"{NAME}:c/bomb.png", "MAX_IMAGE_PIXELS")


def test_local_imagefolder_checks_the_pixel_limit_too(tmp_path, no_decoding):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "big.png").write_bytes(_png((6000, 6000), mode="1"))
    _refused(lambda: load_dataset("imagefolder", root=tmp_path), str(tmp_path / "a" / "big.png"), "MAX_IMAGE_PIXELS")


# ------------------------------------------------------------------------------ 2. npz class count
def test_npz_with_a_huge_label_is_refused_before_building_classes():
    raw = _npz(images=np.zeros((1, 2, 2), dtype=np.uint8), labels=np.array([300_000_000]))
    assert len(raw) < 1000  # the measured fault: 654 bytes
    _refused(
        lambda: load_npz(_upload(raw, "labels.npz")), "labels.npz", "300,000,000", f"{MAX_CLASSES:,}", "MAX_CLASSES"
    )
    ok = load_npz(
        _upload(_npz(images=np.zeros((2, 2, 2), dtype=np.uint8), labels=np.array([0, MAX_CLASSES - 1])), "ok.npz")
    )
    assert ok.num_classes == MAX_CLASSES


def test_npz_class_names_over_the_limit_are_refused():
    raw = _npz(
        images=np.zeros((1, 2, 2), dtype=np.uint8),
        labels=np.array([0]),
        class_names=np.array([str(i) for i in range(MAX_CLASSES + 1)]),
    )
    _refused(lambda: load_npz(_upload(raw, "names.npz")), "names.npz", f"{MAX_CLASSES + 1:,} names", "MAX_CLASSES")


# --------------------------------------------------------------------------- 3. npz declared sizes
def _npz_with(images_member: bytes, labels=None) -> bytes:
    labels = np.array([0]) if labels is None else labels
    return _zip([("images.npy", images_member), ("labels.npy", _npy(labels))])


def test_npz_header_declaring_93_gib_is_refused_before_np_load(monkeypatch):
    raw = _npz_with(_npy_header_only((25_000_000, 1000)))  # float32: 1e11 bytes = 93.1 GiB, no data
    assert len(raw) < 2000

    def boom(*args, **kwargs):
        raise AssertionError("np.load ran before the header was checked")

    monkeypatch.setattr(np, "load", boom)
    _refused(
        lambda: load_npz(_upload(raw, "huge.npz")),
        "huge.npz",
        "'images'",
        "(25000000, 1000)",
        "93.13 GiB",
        f"{MAX_DECODED_BYTES:,}",
        "MAX_DECODED_BYTES",
    )


def test_npz_header_declaring_more_data_than_it_holds_is_refused():
    raw = _npz_with(_npy_header_only((1000, 8, 8), descr="|u1"), labels=np.zeros(1000, dtype=np.int64))
    _refused(lambda: load_npz(_upload(raw, "short.npz")), "short.npz", "(1000, 8, 8)", "64,000 bytes", "holds only 0")


def test_npz_object_arrays_are_refused_from_the_header():
    raw = _npz_with(_npy(np.array([np.zeros((2, 2)), None], dtype=object)))  # a pickle inside
    _refused(lambda: load_npz(_upload(raw, "objects.npz")), "objects.npz", "'images'", "object", "pickle")


def test_npz_that_is_not_a_zip_is_refused_clearly(tmp_path):
    path = tmp_path / "plain.npz"
    path.write_bytes(_npy(np.zeros((2, 3, 3), dtype=np.uint8)))  # a .npy renamed .npz
    _refused(lambda: load_npz(path), str(path), ".npz")


def test_valid_npz_upload_still_loads():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    f = _upload(_npz(images=images, labels=np.array([1, 0])), "fine.npz")
    ds = load_npz(f, split="test")
    assert ds.images.shape == (2, 1, 3, 4) and ds.labels.tolist() == [1, 0] and ds.class_names == ("0", "1")
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images).float() / 255)


# --------------------------------------------------------------------------------- 4. zip errors
def _bad_zips():
    png = _png(np.zeros((3, 4), dtype=np.uint8))
    good = _zip([("a/0.png", png)])
    return {
        "not a zip": (b"this is not a zip file", "could not read"),
        "entry lies about its size (Bad CRC-32)": (
            _declare_size(_zip([("a/0.png", png), ("b/0.png", png)]), "b/0.png", len(png) - 10),
            "Bad CRC-32",
        ),
        "truncated zip": (good[: len(good) // 2], "could not read"),
        "file and folder of the same name": (_zip([("data", png), ("data/a/0.png", png)]), "uses it as a folder"),
        "folder then file of the same name": (_zip([("a/x.png/0.png", png), ("a/x.png", png)]), "uses it as a folder"),
        "duplicate names": (_zip([("a/0.png", png), ("a/0.png", png)]), "two entries named 'a/0.png'"),
        "path traversal": (_zip([("a/0.png", png), ("../evil.png", png)]), "'../evil.png'"),
        "absolute path": (_zip([("/etc/evil.png", png)]), "'/etc/evil.png'"),
        "backslash traversal": (_zip([("a\\..\\..\\evil.png", png)]), "paths must stay inside the archive"),
        "declared size over the limit": (_declare_size(good, "a/0.png", 0xFFFF_FFF0), "MAX_ZIP_UNPACKED_BYTES"),
    }


@pytest.mark.parametrize("case", list(_bad_zips()))
def test_every_zip_fault_is_one_clear_error_naming_the_upload(case, tmpdir_count):
    raw, fragment = _bad_zips()[case]
    _refused(lambda: load_zip_upload(raw, name=NAME), NAME, fragment)
    assert tmpdir_count() == 0


def test_zip_with_too_many_entries_is_refused_before_listing(monkeypatch):
    monkeypatch.setattr(data_mod, "MAX_ZIP_ENTRIES", 10)
    raw = _zip([(f"a/{i}.txt", b"") for i in range(11)])
    parsed = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: parsed.append(1))
    _refused(lambda: load_zip_upload(raw, name=NAME), NAME, "11 entries", "limit of 10", "MAX_ZIP_ENTRIES")
    assert parsed == []  # refused from the end record, before zipfile parsed the listing
