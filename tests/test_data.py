"""Tests of geometry.data: the embedded digits, synthetic MNIST / CIFAR-10 / image folders built in
tmp_path, error messages, and (marked ``shared_data``) the real offline MNIST and CIFAR-10."""

from __future__ import annotations

import csv
import gzip
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from geometry.cache import cache_dir
from geometry.data import (
    CIFAR10_CLASSES,
    DATA_ENV,
    DATASETS,
    Dataset,
    data_root,
    load_dataset,
    load_npz,
    shared_data_root,
)
from geometry.errors import AtlasError, DatasetNotFoundError, InvalidInputError, UnknownNameError

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def _files_under(path: Path) -> set[Path]:
    return {p for p in path.rglob("*")}


def _check_pixel_dataset(ds: Dataset, *, n: int, shape: tuple[int, int, int], num_classes: int) -> None:
    assert isinstance(ds, Dataset)
    assert len(ds) == n
    assert ds.images.shape == (n, *shape)
    assert ds.input_shape == shape
    assert ds.images.dtype == torch.float32
    assert ds.labels.shape == (n,)
    assert ds.labels.dtype == torch.int64
    assert ds.images.is_contiguous()
    if n:
        assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
        assert int(ds.labels.min()) >= 0 and int(ds.labels.max()) < num_classes
    assert len(ds.class_names) == num_classes
    assert ds.source


# --------------------------------------------------------------------------------------- digits
def test_digits_shapes_range_labels_and_split_sizes():
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    _check_pixel_dataset(train, n=1397, shape=(1, 8, 8), num_classes=10)
    _check_pixel_dataset(test, n=400, shape=(1, 8, 8), num_classes=10)
    assert train.class_names == tuple(str(i) for i in range(10))
    assert (train.name, train.split, test.split) == ("digits", "train", "test")
    # values are the original 0..16 levels divided by 16, and both ends are reached
    levels = torch.cat([train.images.flatten(), test.images.flatten()]) * 16
    assert torch.equal(levels, levels.round())
    assert float(levels.min()) == 0.0 and float(levels.max()) == 16.0
    # every class appears in both splits
    assert train.labels.bincount(minlength=10).min() > 0
    assert test.labels.bincount(minlength=10).min() > 0


def test_digits_split_is_a_partition_of_load_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    ours = torch.cat([load_dataset("digits", split=s).images for s in ("train", "test")]).flatten(1) * 16
    labels = torch.cat([load_dataset("digits", split=s).labels for s in ("train", "test")])
    ref = np.concatenate([bunch.data, bunch.target[:, None]], axis=1)
    got = np.concatenate([ours.numpy(), labels.numpy()[:, None]], axis=1)
    assert sorted(map(tuple, ref.tolist())) == sorted(map(tuple, got.tolist()))


def test_digits_is_deterministic_and_limit_takes_the_first_images():
    a, b = load_dataset("digits", split="test"), load_dataset("digits", split="test")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.data_ptr() != b.images.data_ptr()  # no shared mutable tensors between calls
    small = load_dataset("Digits", split="test", limit=10)  # case-insensitive name
    assert len(small) == 10
    assert torch.equal(small.images, a.images[:10]) and torch.equal(small.labels, a.labels[:10])
    assert len(load_dataset("digits", split="test", limit=10_000)) == 400


def test_dataset_repr_is_short():
    text = repr(load_dataset("digits", split="test"))
    assert "n=400" in text and "(1, 8, 8)" in text and len(text) < 400


# ---------------------------------------------------------------------------------------- errors
def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        load_dataset("imagenet")
    msg = str(info.value)
    assert "imagenet" in msg and "valid names" in msg
    for name in DATASETS:
        assert name in msg
    assert isinstance(info.value, AtlasError) and isinstance(info.value, KeyError)


@pytest.mark.parametrize("split", ["val", "validation", "", None, 1])
def test_bad_split_says_what_is_valid(split):
    with pytest.raises(InvalidInputError, match=r"split must be one of 'train', 'test'"):
        load_dataset("digits", split=split)


@pytest.mark.parametrize("limit", [0, -3, 1.5, True, "10"])
def test_bad_limit(limit):
    with pytest.raises(InvalidInputError, match="limit must be a positive integer"):
        load_dataset("digits", limit=limit)


def test_numpy_integer_limit_is_accepted():
    assert len(load_dataset("digits", split="test", limit=np.int64(7))) == 7


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_missing_root_says_where_it_looked_and_how_to_provide_it(tmp_path, name):
    before = _files_under(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(name, root=tmp_path, split="test")
    msg = str(info.value)
    assert "not found" in msg and "Looked in" in msg
    assert str(tmp_path) in msg
    assert DATA_ENV in msg
    assert "internet" in msg  # says torchvision downloads it on a connected machine
    if name == "mnist":
        assert "MNIST/raw" in msg and "t10k-images-idx3-ubyte" in msg
    else:
        assert "cifar-10-batches-py" in msg and "cifar10/" in msg and "test.zip" in msg
    assert _files_under(tmp_path) == before  # an explicit root is never written to
    assert isinstance(info.value, FileNotFoundError)


def test_imagefolder_needs_an_existing_root(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="root="):
        load_dataset("imagefolder")
    with pytest.raises(DatasetNotFoundError, match="does-not-exist"):
        load_dataset("imagefolder", root=tmp_path / "does-not-exist")
    with pytest.raises(DatasetNotFoundError, match="no class sub-folders"):
        load_dataset("imagefolder", root=tmp_path)


# -------------------------------------------------------------------------------------- roots
def test_data_root_argument_then_env(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert data_root() is None
    assert data_root("") is None
    assert data_root(tmp_path) == tmp_path
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    assert data_root(tmp_path / "arg") == tmp_path / "arg"


def test_shared_data_root_prefers_env_and_never_falls_back_from_a_wrong_env(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert shared_data_root() == tmp_path
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing"))
    assert shared_data_root() is None


# ------------------------------------------------------------------------------ synthetic MNIST
def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(raw: Path, *, n_train=6, n_test=4, compress=True, seed=0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        for stem, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
            data = _idx_bytes(arr)
            if compress:
                (raw / f"{stem}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / stem).write_bytes(data)
        out[split] = (images, labels)
    return out


@pytest.mark.parametrize("layout", ["parent", "mnist_folder", "raw_folder", "uncompressed"])
def test_mnist_reads_idx_files_in_every_root_layout(tmp_path, layout):
    raw = tmp_path / "MNIST" / "raw"
    truth = _write_mnist(raw, compress=(layout != "uncompressed"))
    root = {"parent": tmp_path, "mnist_folder": tmp_path / "MNIST", "raw_folder": raw, "uncompressed": tmp_path}[layout]
    before = _files_under(tmp_path)
    for split in ("train", "test"):
        images, labels = truth[split]
        ds = load_dataset("mnist", root=root, split=split)
        _check_pixel_dataset(ds, n=len(labels), shape=(1, 28, 28), num_classes=10)
        assert torch.equal(ds.images, torch.from_numpy(images).float().div(255).unsqueeze(1))
        assert ds.labels.tolist() == labels.tolist()
        assert ds.class_names == tuple(str(i) for i in range(10))
    assert _files_under(tmp_path) == before  # read-only friendly: nothing extracted next to the files
    assert len(load_dataset("mnist", root=root, split="train", limit=2)) == 2


def test_mnist_env_root_is_used(monkeypatch, tmp_path):
    truth = _write_mnist(tmp_path / "MNIST" / "raw")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    ds = load_dataset("mnist", split="test")
    assert ds.labels.tolist() == truth["test"][1].tolist()
    assert str(tmp_path) in ds.source


def test_mnist_damaged_files_are_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw)
    data = gzip.decompress((raw / "t10k-images-idx3-ubyte.gz").read_bytes())
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(InvalidInputError, match=r"t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", root=tmp_path, split="test")
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x09\x03" + data[4:]))
    with pytest.raises(InvalidInputError, match="not an MNIST idx file"):
        load_dataset("mnist", root=tmp_path, split="test")
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(InvalidInputError, match="could not read MNIST file"):
        load_dataset("mnist", root=tmp_path, split="test")


# --------------------------------------------------------------------------- synthetic CIFAR-10
def _cifar_pixels(k: int, i: int) -> np.ndarray:
    return np.full((32, 32, 3), (10 * k + i, 3 * i, 200 - k), dtype=np.uint8)


def _write_cifar_export(folder: Path, split: str, *, per_class=2, as_zip=False, classes=CIFAR10_CLASSES) -> list[str]:
    """PNG (lossless) stand-in for the JPEG export: <split>/<class>/NNNN.png, or <split>.zip."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    zf = zipfile.ZipFile(folder / f"{split}.zip", "w", zipfile.ZIP_STORED) if as_zip else None
    for k, cls in enumerate(classes):
        for i in range(per_class):
            rel = f"{split}/{cls}/{i:04d}.png"
            buf = io.BytesIO()
            Image.fromarray(_cifar_pixels(k, i)).save(buf, format="PNG")
            if zf is not None:
                zf.writestr(rel, buf.getvalue())
            else:
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(buf.getvalue())
            paths.append(rel)
    if zf is not None:
        zf.close()
    return paths


@pytest.mark.parametrize("as_zip", [False, True])
def test_cifar_export_sorted_order_labels_and_root_forms(tmp_path, as_zip):
    folder = tmp_path / "cifar10"
    _write_cifar_export(folder, "train", as_zip=as_zip)
    before = _files_under(tmp_path)
    for root in (tmp_path, folder):
        ds = load_dataset("cifar10", root=root, split="train")
        _check_pixel_dataset(ds, n=20, shape=(3, 32, 32), num_classes=10)
        assert ds.class_names == CIFAR10_CLASSES
        assert ds.labels.tolist() == [k for k in range(10) for _ in range(2)]
        expected = np.stack([_cifar_pixels(k, i) for k in range(10) for i in range(2)])
        assert torch.equal(ds.images, torch.from_numpy(expected).permute(0, 3, 1, 2).float().div(255))
        assert "sorted by class then file name" in ds.source
    assert _files_under(tmp_path) == before  # decoded in memory, cached elsewhere
    assert any(p.name.startswith("cifar10-jpeg-train-") for p in cache_dir("datasets").iterdir())


def test_cifar_export_follows_the_official_order_file(tmp_path):
    folder = tmp_path / "cifar10"
    paths = _write_cifar_export(folder, "test", as_zip=True)
    official = list(np.random.default_rng(1).permutation(len(paths)))
    with open(folder / "test_labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["index", "label", "class", "jpg_path"])
        for j, idx in enumerate(official):
            cls = paths[idx].split("/")[1]
            w.writerow([j, CIFAR10_CLASSES.index(cls), cls, paths[idx]])
    ds = load_dataset("cifar10", root=tmp_path, split="test")
    assert ds.labels.tolist() == [CIFAR10_CLASSES.index(paths[i].split("/")[1]) for i in official]
    first_k, first_i = CIFAR10_CLASSES.index(paths[official[0]].split("/")[1]), int(paths[official[0]][-8:-4])
    assert torch.equal(ds.images[0], torch.from_numpy(_cifar_pixels(first_k, first_i)).permute(2, 0, 1).float() / 255)
    assert "official order" in ds.source
    # warm (cached) load and limit agree with the cold one
    again = load_dataset("cifar10", root=tmp_path, split="test")
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)
    head = load_dataset("cifar10", root=tmp_path, split="test", limit=3)
    assert torch.equal(head.images, ds.images[:3]) and torch.equal(head.labels, ds.labels[:3])
    # an order file that does not match the files is ignored
    (folder / "test_labels.csv").write_text("index,label,class,jpg_path\n0,0,airplane,test/airplane/9999.png\n")
    assert "sorted by class" in load_dataset("cifar10", root=tmp_path, split="test").source


def test_cifar_limit_without_cache_decodes_only_the_head(tmp_path):
    _write_cifar_export(tmp_path / "cifar10", "test")
    head = load_dataset("cifar10", root=tmp_path, split="test", limit=3)
    assert len(head) == 3 and head.labels.tolist() == [0, 0, 1]


def test_cifar_export_with_other_classes_points_to_imagefolder(tmp_path):
    _write_cifar_export(tmp_path / "cifar10", "test", classes=("cat", "dog"))
    with pytest.raises(InvalidInputError, match="imagefolder"):
        load_dataset("cifar10", root=tmp_path, split="test")


def test_cifar_python_batches_through_torchvision(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    batches = {}
    for name in ["test_batch", *(f"data_batch_{i}" for i in range(1, 6))]:
        data = rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3).tolist()
        batches[name] = (data, labels)
        (folder / name).write_bytes(pickle.dumps({"data": data, "labels": labels}))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    # the synthetic files cannot match torchvision's md5 list
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *a, **k: True)
    for root in (tmp_path, folder):
        ds = load_dataset("cifar10", root=root, split="test")
        _check_pixel_dataset(ds, n=3, shape=(3, 32, 32), num_classes=10)
        data, labels = batches["test_batch"]
        assert torch.equal(ds.images, torch.from_numpy(data.reshape(3, 3, 32, 32)).float() / 255)
        assert ds.labels.tolist() == labels and "python batches" in ds.source
    train = load_dataset("cifar10", root=tmp_path, split="train", limit=4)
    assert train.labels.tolist() == (batches["data_batch_1"][1] + batches["data_batch_2"][1])[:4]


# ---------------------------------------------------------------------------------- imagefolder
def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_imagefolder_rgb_order_labels_and_values(tmp_path):
    rng = np.random.default_rng(0)
    pixels = {}
    for cls in ("zebra", "ant"):
        for fname in ("b.png", "a.png", "c.bmp"):
            arr = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)  # H=4, W=5
            _save(tmp_path / cls / fname, arr)
            pixels[f"{cls}/{fname}"] = arr
    (tmp_path / "empty").mkdir()  # classes without images still get an index
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    (tmp_path / "ant" / ".hidden.png").write_bytes(b"junk")
    ds = load_dataset("imagefolder", root=tmp_path)
    _check_pixel_dataset(ds, n=6, shape=(3, 4, 5), num_classes=3)
    assert ds.class_names == ("ant", "empty", "zebra")
    assert ds.labels.tolist() == [0, 0, 0, 2, 2, 2]
    order = ["ant/a.png", "ant/b.png", "ant/c.bmp", "zebra/a.png", "zebra/b.png", "zebra/c.bmp"]
    expected = np.stack([pixels[k] for k in order])
    assert torch.equal(ds.images, torch.from_numpy(expected).permute(0, 3, 1, 2).float() / 255)
    assert ds.name == "imagefolder" and "RGB" in ds.source
    assert torch.equal(load_dataset("imagefolder", root=tmp_path, limit=4).images, ds.images[:4])


def test_imagefolder_all_grayscale_gives_one_channel(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    _save(tmp_path / "x" / "0.png", a)
    _save(tmp_path / "y" / "0.png", 255 - a)
    ds = load_dataset("imagefolder", root=tmp_path)
    _check_pixel_dataset(ds, n=2, shape=(1, 3, 4), num_classes=2)
    assert torch.equal(ds.images[0, 0], torch.from_numpy(a).float() / 255)
    assert "grayscale" in ds.source


def test_imagefolder_mixed_grayscale_and_rgb_gives_rgb(tmp_path):
    gray = np.full((3, 3), 77, dtype=np.uint8)
    _save(tmp_path / "a" / "0.png", gray)
    _save(tmp_path / "b" / "0.png", np.zeros((3, 3, 3), dtype=np.uint8))
    ds = load_dataset("imagefolder", root=tmp_path)
    assert ds.input_shape == (3, 3, 3)
    assert torch.allclose(ds.images[0], torch.full((3, 3, 3), 77 / 255))


def test_imagefolder_size_mismatch_names_the_file(tmp_path):
    _save(tmp_path / "a" / "0.png", np.zeros((8, 8, 3), dtype=np.uint8))
    _save(tmp_path / "b" / "1.png", np.zeros((8, 9, 3), dtype=np.uint8))
    with pytest.raises(InvalidInputError) as info:
        load_dataset("imagefolder", root=tmp_path)
    msg = str(info.value)
    assert "same size" in msg and str(tmp_path / "b" / "1.png") in msg and "9×8" in msg


def test_imagefolder_unreadable_image_names_the_file(tmp_path):
    _save(tmp_path / "a" / "0.png", np.zeros((2, 2, 3), dtype=np.uint8))
    (tmp_path / "a" / "1.png").write_bytes(b"this is not a png")
    with pytest.raises(InvalidInputError, match=r"could not read image .*1\.png"):
        load_dataset("imagefolder", root=tmp_path)


def test_imagefolder_split_subfolders_share_class_indices(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            _save(tmp_path / split / cls / "0.png", np.zeros((2, 2), dtype=np.uint8))
    (tmp_path / "test" / "c").mkdir()
    _save(tmp_path / "train" / "c" / "0.png", np.zeros((2, 2), dtype=np.uint8))
    train = load_dataset("imagefolder", root=tmp_path, split="train")
    test = load_dataset("imagefolder", root=tmp_path, split="test")
    assert train.class_names == test.class_names == ("a", "b", "c")
    assert len(train) == 3 and len(test) == 2
    only_train = tmp_path / "only_train"
    _save(only_train / "train" / "a" / "0.png", np.zeros((2, 2), dtype=np.uint8))
    with pytest.raises(DatasetNotFoundError, match="no test/"):
        load_dataset("imagefolder", root=only_train, split="test")


def test_imagefolder_cache_notices_changed_files(tmp_path):
    path = tmp_path / "a" / "0.png"
    _save(path, np.zeros((2, 2), dtype=np.uint8))
    assert float(load_dataset("imagefolder", root=tmp_path).images.max()) == 0.0
    _save(path, np.full((2, 2), 255, dtype=np.uint8))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert float(load_dataset("imagefolder", root=tmp_path).images.min()) == 1.0


# ------------------------------------------------------------------------------------------- npz
@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw"])
def test_load_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(5, 3, 6, 7), dtype=np.uint8)  # N, C, H, W
    images = {"nhw": base[:, 0], "nhwc": base.transpose(0, 2, 3, 1), "nchw": base}[layout]
    labels = np.array([0, 2, 1, 2, 0])
    path = tmp_path / "d.npz"
    np.savez(path, images=images, labels=labels, class_names=np.array(["x", "y", "z"]))
    ds = load_npz(path)
    expected = base[:, :1] if layout == "nhw" else base
    assert torch.equal(ds.images, torch.from_numpy(expected).float() / 255)
    assert ds.labels.tolist() == labels.tolist() and ds.class_names == ("x", "y", "z")
    buf = io.BytesIO(path.read_bytes())  # an uploaded file object works too
    assert torch.equal(load_npz(buf, limit=2).images, ds.images[:2])


def test_load_npz_float_images_and_errors(tmp_path):
    good = tmp_path / "f.npz"
    np.savez(good, images=np.full((2, 4, 4), 0.5, dtype=np.float64), labels=np.array([1, 0]))
    ds = load_npz(good)
    assert ds.images.dtype == torch.float32 and ds.class_names == ("0", "1")
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.full((2, 4, 4), 3.0), labels=np.array([1, 0]))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        load_npz(bad)
    np.savez(bad, images=np.full((2, 4, 4), np.nan), labels=np.array([1, 0]))
    with pytest.raises(InvalidInputError, match="NaN"):
        load_npz(bad)
    np.savez(bad, pixels=np.zeros((2, 4, 4)))
    with pytest.raises(InvalidInputError, match="'images' and 'labels'"):
        load_npz(bad)
    with pytest.raises(DatasetNotFoundError):
        load_npz(tmp_path / "missing.npz")


# ----------------------------------------------------------------------- real offline data
@pytest.mark.shared_data
def test_real_mnist_test_split(shared_data):
    ds = load_dataset("mnist", root=shared_data, split="test")
    _check_pixel_dataset(ds, n=10_000, shape=(1, 28, 28), num_classes=10)
    assert ds.labels.bincount(minlength=10).tolist() == MNIST_TEST_COUNTS
    assert float(ds.images.max()) == 1.0


@pytest.mark.shared_data
def test_real_mnist_train_split(shared_data):
    ds = load_dataset("mnist", root=shared_data, split="train")
    _check_pixel_dataset(ds, n=60_000, shape=(1, 28, 28), num_classes=10)
    assert ds.labels.bincount(minlength=10).tolist() == MNIST_TRAIN_COUNTS


@pytest.mark.shared_data
def test_real_cifar10_test_split(shared_data):
    ds = load_dataset("cifar10", root=shared_data, split="test")
    _check_pixel_dataset(ds, n=10_000, shape=(3, 32, 32), num_classes=10)
    assert ds.class_names == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    assert ds.labels.bincount(minlength=10).tolist() == [1000] * 10
    assert ds.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # the official test order


@pytest.mark.shared_data
@pytest.mark.slow
def test_real_cifar10_train_split(shared_data):
    ds = load_dataset("cifar10", root=shared_data, split="train")
    _check_pixel_dataset(ds, n=50_000, shape=(3, 32, 32), num_classes=10)
    assert ds.class_names == CIFAR10_CLASSES
    assert ds.labels.bincount(minlength=10).tolist() == [5000] * 10
    assert ds.labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the official training order
