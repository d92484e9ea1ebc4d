"""Tests for cnnlab.data: IDX parsing, MNIST/Fashion-MNIST, digits, image folders,
CIFAR-10 batches, the DataLoader and the batch transforms."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.error
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from cnnlab import data as D
from cnnlab.data import mnist as mnist_mod
from cnnlab.data import transforms as T

REPO = Path(__file__).resolve().parents[1]
REAL_FETCH = mnist_mod.fetch_url  # kept before any test replaces it


def shared_data_dir():
    env = os.environ.get("CNNLAB_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for c in candidates:
        if (c / "mnist" / "train-images-idx3-ubyte.gz").is_file():
            return c
    return None


DATA = shared_data_dir()
needs_real_data = pytest.mark.skipif(DATA is None, reason="MNIST files not found (set CNNLAB_DATA_DIR)")


# ---------------------------------------------------------------------------
# Import weight
# ---------------------------------------------------------------------------

def test_import_loads_only_numpy():
    code = ("import sys, cnnlab.data; "
            "print(','.join(m for m in ('PIL', 'sklearn', 'tqdm', 'scipy') if m in sys.modules))")
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == ""


# ---------------------------------------------------------------------------
# IDX format
# ---------------------------------------------------------------------------

def idx_bytes(array, type_code=0x08):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[type_code]
    header = bytes([0, 0, type_code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(dtype).tobytes()


def test_parse_idx_images_and_labels():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 4, 5)).astype(np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    got = D.parse_idx(idx_bytes(images), expected_magic=0x00000803)
    assert got.dtype == np.uint8 and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, images)
    got = D.parse_idx(idx_bytes(labels), expected_magic=0x00000801)
    np.testing.assert_array_equal(got, labels)


@pytest.mark.parametrize("code,dtype", [(0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
                                        (0x0D, np.float32), (0x0E, np.float64)])
def test_parse_idx_other_types_big_endian(code, dtype):
    values = np.array([[-3, 2], [1000 if dtype != np.int8 else 100, -7]], dtype=dtype)
    got = D.parse_idx(idx_bytes(values, code))
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, values)


def test_read_idx_plain_and_gzip(tmp_path):
    images = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    (tmp_path / "a-idx3-ubyte").write_bytes(idx_bytes(images))
    (tmp_path / "a-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a-idx3-ubyte", 0x803), images)
    np.testing.assert_array_equal(D.read_idx(tmp_path / "a-idx3-ubyte.gz", 0x803), images)


def test_idx_bad_magic():
    labels = idx_bytes(np.zeros(4, np.uint8))
    with pytest.raises(D.IDXFormatError, match="bad IDX magic number: expected 0x00000803, got 0x00000801"):
        D.parse_idx(labels, expected_magic=0x00000803)
    with pytest.raises(D.IDXFormatError, match="first two bytes must be zero"):
        D.parse_idx(b"\x01\x00\x08\x01" + (4).to_bytes(4, "big") + bytes(4))
    with pytest.raises(D.IDXFormatError, match="unknown type code 0x07"):
        D.parse_idx(b"\x00\x00\x07\x01" + (4).to_bytes(4, "big") + bytes(4))
    with pytest.raises(D.IDXFormatError, match="gzip file that was not decompressed"):
        D.parse_idx(gzip.compress(labels), expected_magic=0x801)


def test_idx_truncated_and_trailing(tmp_path):
    good = idx_bytes(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(D.IDXFormatError, match=r"truncated IDX file: dimensions \(2, 3, 3\) of uint8 need "
                                                r"34 bytes, the file has 30"):
        D.parse_idx(good[:-4])
    with pytest.raises(D.IDXFormatError, match="header of a 3-dimensional file needs 16"):
        D.parse_idx(good[:10])
    with pytest.raises(D.IDXFormatError, match="expected at least a 4-byte magic"):
        D.parse_idx(b"\x00\x00")
    with pytest.raises(D.IDXFormatError, match="2 unexpected bytes after the data"):
        D.parse_idx(good + b"\x00\x00")
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(good)[:-10])
    with pytest.raises(D.IDXFormatError, match=f"{path}: truncated or corrupt gzip file"):
        D.read_idx(path)


def test_read_mnist_count_mismatch(tmp_path):
    (tmp_path / "img").write_bytes(idx_bytes(np.zeros((3, 2, 2), np.uint8)))
    (tmp_path / "lab").write_bytes(idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(D.IDXFormatError, match="holds 3 images but .* holds 2 labels"):
        D.read_mnist(tmp_path / "img", tmp_path / "lab")


# ---------------------------------------------------------------------------
# MNIST file lookup, checksums, download (synthetic files; the network is never used)
# ---------------------------------------------------------------------------

NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """Tiny IDX files standing in for MNIST, with their SHA-256 patched into the table."""
    rng = np.random.default_rng(1)
    server = tmp_path / "server"
    server.mkdir()
    sizes = {"train": 6, "t10k": 4}
    arrays = {}
    table = {}
    for prefix, n in sizes.items():
        images = rng.integers(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        arrays[prefix] = (images, labels)
        for kind, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
            raw = idx_bytes(array)
            blob = gzip.compress(raw, mtime=0)
            name = f"{prefix}-{kind}.gz"
            (server / name).write_bytes(blob)
            table[name] = hashlib.sha256(blob).hexdigest()
            table[name[:-3]] = hashlib.sha256(raw).hexdigest()
    monkeypatch.setitem(mnist_mod.SHA256, "mnist", table)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_CACHE", str(cache))
    fetched = []

    def fake_fetch(url, out, progress=True, timeout=30.0):
        fetched.append(url)
        out.write((server / url.rsplit("/", 1)[-1]).read_bytes())

    monkeypatch.setattr(mnist_mod, "fetch_url", fake_fetch)
    return {"server": server, "arrays": arrays, "cache": cache / "mnist", "fetched": fetched}


def test_load_mnist_from_flat_and_subfolder(tmp_path, fake_mnist):
    flat = tmp_path / "flat"
    sub = tmp_path / "nested" / "mnist"
    for folder in (flat, sub):
        folder.mkdir(parents=True)
        for name in NAMES:
            (folder / name).write_bytes((fake_mnist["server"] / name).read_bytes())
    images, labels = fake_mnist["arrays"]["train"]
    for data_dir in (flat, tmp_path / "nested"):
        ds = D.load_mnist(data_dir, split="train", download=False)
        assert ds.images.shape == (6, 1, 28, 28) and ds.images.dtype == np.float32
        assert ds.labels.dtype == np.int64
        np.testing.assert_array_equal(ds.images[:, 0], images.astype(np.float32) / 255)
        np.testing.assert_array_equal(ds.labels, labels)
        assert ds.classes == [str(d) for d in range(10)] and ds.name == "mnist-train"
    test = D.load_mnist(flat, split="test", download=False)
    assert test.images.shape == (4, 1, 28, 28)
    assert fake_mnist["fetched"] == []


def test_load_mnist_accepts_decompressed_files(tmp_path, fake_mnist):
    for name in NAMES[2:]:
        (tmp_path / name[:-3]).write_bytes(gzip.decompress((fake_mnist["server"] / name).read_bytes()))
    ds = D.load_mnist(tmp_path, split="test", download=False)
    np.testing.assert_array_equal(ds.labels, fake_mnist["arrays"]["t10k"][1])


def test_corrupt_file_on_disk_is_rejected(tmp_path, fake_mnist):
    for name in NAMES[:2]:
        (tmp_path / name).write_bytes((fake_mnist["server"] / name).read_bytes())
    blob = bytearray((tmp_path / NAMES[1]).read_bytes())
    blob[-9] ^= 0xFF
    (tmp_path / NAMES[1]).write_bytes(bytes(blob))
    with pytest.raises(D.ChecksumError, match=r"train-labels-idx1-ubyte.gz: SHA-256 mismatch: expected [0-9a-f]{64}, got"):
        D.load_mnist(tmp_path, split="train", download=False)


def test_download_into_cache_then_reuse(fake_mnist):
    ds = D.load_mnist(split="test", progress=False)
    assert len(ds) == 4
    assert fake_mnist["fetched"] == ["https://ossci-datasets.s3.amazonaws.com/mnist/" + n for n in NAMES[2:]]
    assert sorted(os.listdir(fake_mnist["cache"])) == sorted(NAMES[2:])  # no temporary files left
    D.load_mnist(split="test", progress=False)
    assert len(fake_mnist["fetched"]) == 2  # the second load used the cache


def test_fashion_mnist_download_uses_its_mirror(tmp_path, fake_mnist, monkeypatch):
    monkeypatch.setitem(mnist_mod.SHA256, "fashion-mnist", mnist_mod.SHA256["mnist"])
    ds = D.load_mnist(kind="fashion-mnist", split="test", progress=False)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot" and len(ds.classes) == 10
    assert all(u.startswith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
               for u in fake_mnist["fetched"])


def test_corrupt_download_is_rejected(fake_mnist, monkeypatch):
    def corrupt_fetch(url, out, progress=True, timeout=30.0):
        blob = bytearray((fake_mnist["server"] / url.rsplit("/", 1)[-1]).read_bytes())
        blob[20] ^= 0x01
        out.write(bytes(blob))

    monkeypatch.setattr(mnist_mod, "fetch_url", corrupt_fetch)
    with pytest.raises(D.ChecksumError, match="download of https://ossci-datasets.*rejected: SHA-256 mismatch"):
        D.load_mnist(split="train", progress=False)
    assert os.listdir(fake_mnist["cache"]) == []  # neither the file nor a temporary copy was kept


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    def broken_fetch(url, out, progress=True, timeout=30.0):
        out.write(b"partial")
        raise ConnectionResetError("connection reset")

    monkeypatch.setattr(mnist_mod, "fetch_url", broken_fetch)
    with pytest.raises(ConnectionResetError):
        mnist_mod.download_file("http://x/f.gz", tmp_path / "f.gz", sha256="0" * 64)
    assert os.listdir(tmp_path) == []


def test_offline_error_names_files_and_folder(tmp_path, fake_mnist, monkeypatch):
    def offline(url, out, progress=True, timeout=30.0):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(mnist_mod, "fetch_url", offline)
    with pytest.raises(D.DatasetNotFoundError) as info:
        D.load_mnist(tmp_path / "mine", split="train", progress=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    for name in NAMES:
        assert name in message
    assert str(tmp_path / "mine") in message and "--data-dir" in message and "no network" in message
    with pytest.raises(D.DatasetNotFoundError, match=f"download=False.*{fake_mnist['cache']}"):
        D.load_mnist(split="test", download=False)


@pytest.fixture
def local_http(fake_mnist):
    """A file server on the loopback interface serving the fake MNIST files (bounded, test-only)."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(fake_mnist["server"]))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_real_fetch_over_loopback(local_http, fake_mnist, monkeypatch, tmp_path):
    monkeypatch.setattr(mnist_mod, "fetch_url", REAL_FETCH)
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(var, "*")  # never route the loopback requests through a proxy
    monkeypatch.setitem(mnist_mod.MIRRORS, "mnist", [local_http + "missing/", local_http])
    ds = D.load_mnist(split="train", progress=True)  # the first mirror answers 404, the second works
    np.testing.assert_array_equal(ds.labels, fake_mnist["arrays"]["train"][1])
    assert sorted(os.listdir(fake_mnist["cache"])) == sorted(NAMES[:2])
    buffer = io.BytesIO()
    mnist_mod.fetch_url(local_http + NAMES[3], buffer, progress=False)
    assert buffer.getvalue() == (fake_mnist["server"] / NAMES[3]).read_bytes()
    monkeypatch.setitem(mnist_mod.MIRRORS, "mnist", [local_http + "missing/"])
    with pytest.raises(D.DatasetNotFoundError, match="404"):
        D.load_mnist(split="test", progress=False)


def test_get_dataset_recognises_an_idx_folder(tmp_path, fake_mnist):
    folder = tmp_path / "digits_idx"
    folder.mkdir()
    for name in NAMES:
        (folder / name).write_bytes((fake_mnist["server"] / name).read_bytes())
    train, test = D.get_dataset(str(folder))
    assert train.name == "mnist-train" and len(train) == 6 and len(test) == 4
    assert test.mean == train.mean and train.mean is not None


def test_bad_kind_and_split():
    with pytest.raises(ValueError, match="kind must be 'mnist' or 'fashion-mnist', got 'emnist'"):
        D.load_mnist(kind="emnist")
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        D.load_mnist(split="val")


def test_published_checksum_table():
    assert mnist_mod.SHA256["mnist"]["train-images-idx3-ubyte.gz"].startswith("440fcabf")
    assert mnist_mod.SHA256["fashion-mnist"]["t10k-labels-idx1-ubyte.gz"].startswith("67da17c7")
    for kind in ("mnist", "fashion-mnist"):
        assert all(len(v) == 64 for v in mnist_mod.SHA256[kind].values())
        assert set(NAMES) <= set(mnist_mod.SHA256[kind])


# ---------------------------------------------------------------------------
# The real MNIST and Fashion-MNIST files
# ---------------------------------------------------------------------------

@needs_real_data
def test_real_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))  # never touch the user's cache
    train, test = D.get_dataset("mnist", data_dir=DATA, download=False)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == np.float32
    assert train.labels.shape == (60000,) and train.labels.dtype == np.int64
    assert test.images.shape == (10000, 1, 28, 28)
    assert train.class_counts()[0] == 5923
    np.testing.assert_array_equal(test.class_counts(), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    assert 0.0 <= train.images.min() and train.images.max() == 1.0
    assert train.mean[0] == pytest.approx(33.318 / 255, abs=1e-4)
    assert train.std[0] == pytest.approx(78.567 / 255, abs=1e-4)
    assert test.mean == train.mean and test.std == train.std
    meta = train.metadata()
    assert meta["input_shape"] == [1, 28, 28]
    json.dumps(meta)


@needs_real_data
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path))
    test = D.load_mnist(DATA / "fashion-mnist", kind="fashion-mnist", split="test", download=False)
    assert test.images.shape == (10000, 1, 28, 28) and test.labels.dtype == np.int64
    np.testing.assert_array_equal(test.class_counts(), [1000] * 10)
    assert test.classes == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                            "Sneaker", "Bag", "Ankle boot"]


# ---------------------------------------------------------------------------
# Digits, stratified split, ArrayDataset
# ---------------------------------------------------------------------------

def test_digits():
    pytest.importorskip("sklearn")
    full = D.load_digits()
    assert full.images.shape == (1797, 1, 8, 8) and full.images.dtype == np.float32
    assert full.labels.dtype == np.int64 and full.classes == [str(d) for d in range(10)]
    assert full.images.min() == 0.0 and full.images.max() == 1.0
    train, test = D.load_digits_split()
    assert (len(train), len(test)) == (1438, 359)
    train2, test2 = D.get_dataset("digits")
    np.testing.assert_array_equal(train.labels, train2.labels)
    np.testing.assert_array_equal(test.images, test2.images)
    counts = full.class_counts()
    assert np.all(np.abs(test.class_counts() - 0.2 * counts) <= 0.5 + 1e-9)
    assert test.mean == train.mean and train.mean is not None
    np.testing.assert_array_equal(D.load_digits("test").labels, test.labels)


def test_stratified_split_properties():
    labels = np.repeat(np.arange(4), [10, 5, 2, 1])
    train, test = D.stratified_split(labels, 0.2, seed=3)
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    np.testing.assert_array_equal(np.bincount(labels[test], minlength=4), [2, 1, 1, 0])
    again = D.stratified_split(labels, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], test)
    other = D.stratified_split(np.repeat(np.arange(2), 50), 0.2, seed=4)[1]
    assert not np.array_equal(other, D.stratified_split(np.repeat(np.arange(2), 50), 0.2, seed=5)[1])
    assert D.stratified_split(labels, 0.0)[1].size == 0
    with pytest.raises(ValueError, match=r"test_fraction must be in \[0, 1\), got 1.0"):
        D.stratified_split(labels, 1.0)


def test_array_dataset_validation():
    images = np.zeros((3, 1, 2, 2), np.float32)
    with pytest.raises(TypeError, match="images must be float32 in \\[0, 1\\], got dtype uint8"):
        D.ArrayDataset(images.astype(np.uint8), np.zeros(3, np.int64), ["a", "b"])
    with pytest.raises(ValueError, match=r"images must be a 4-D \(N, C, H, W\) array, got shape \(3, 2, 2\)"):
        D.ArrayDataset(images[:, 0], np.zeros(3, np.int64), ["a", "b"])
    with pytest.raises(ValueError, match=r"shape \(3,\), got shape \(2,\)"):
        D.ArrayDataset(images, np.zeros(2, np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="labels must lie in 0..1 for 2 classes"):
        D.ArrayDataset(images, np.array([0, 1, 2]), ["a", "b"])
    with pytest.raises(ValueError, match=r"mean must have one value per channel \(1\), got 3"):
        D.ArrayDataset(images, np.zeros(3, np.int64), ["a"], mean=(0.1, 0.2, 0.3), std=1.0)
    ds = D.ArrayDataset(images, np.array([0, 1, 1], np.int32), ["a", "b"])
    assert ds.labels.dtype == np.int64 and len(ds) == 3 and ds.input_shape == (1, 2, 2)
    x, y = ds[1:]
    assert x.shape == (2, 1, 2, 2) and list(y) == [1, 1]


def test_compute_mean_std_matches_numpy():
    x = np.random.default_rng(0).random((50, 3, 4, 5)).astype(np.float32)
    mean, std = D.compute_mean_std(x, chunk=7)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(std, x.astype(np.float64).std(axis=(0, 2, 3)), rtol=1e-10)


# ---------------------------------------------------------------------------
# Image folders
# ---------------------------------------------------------------------------

def write_image(path, array, fmt=None):
    from PIL import Image
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path, format=fmt)


@pytest.fixture
def gray_folder(tmp_path):
    pytest.importorskip("PIL")
    rng = np.random.default_rng(2)
    root = tmp_path / "shapes"
    pixels = {}
    for cls in ("circle", "square", "triangle"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            ext = ["png", "bmp", "png", "png"][i]
            size = (10, 12) if i < 3 else (6, 6)
            array = rng.integers(0, 256, size).astype(np.uint8)
            write_image(root / cls / f"{i}.{ext}", array)
            pixels[(cls, i)] = array
    (root / ".hidden").mkdir()
    (root / "circle" / "notes.txt").write_text("not an image")
    return root, pixels


def test_image_folder_gray_auto(gray_folder):
    root, pixels = gray_folder
    train, val = D.load_image_folder(root, val_fraction=0.25, seed=0)
    assert train.classes == ["circle", "square", "triangle"]
    assert train.images.shape == (9, 1, 10, 12) and val.images.shape == (3, 1, 10, 12)
    np.testing.assert_array_equal(val.class_counts(), [1, 1, 1])
    assert train.labels.dtype == np.int64 and train.images.dtype == np.float32
    assert val.mean == train.mean and train.mean is not None
    # an image kept at its own size is read exactly: uint8 / 255
    train_all, _ = D.load_image_folder(root, val_fraction=0.0)
    np.testing.assert_array_equal(train_all.images[0, 0], pixels[("circle", 0)].astype(np.float32) / 255)
    np.testing.assert_array_equal(train_all.images[1, 0], pixels[("circle", 1)].astype(np.float32) / 255)
    # same seed, same split; explicit size and channels
    again, _ = D.load_image_folder(root, val_fraction=0.25, seed=0)
    np.testing.assert_array_equal(again.images, train.images)
    small, _ = D.load_image_folder(root, size=(8, 8), channels=3)
    assert small.images.shape[1:] == (3, 8, 8)
    np.testing.assert_array_equal(small.images[:, 0], small.images[:, 2])
    square, _ = D.get_dataset(str(root), size=5)
    assert square.input_shape == (1, 5, 5)


def test_image_folder_rgb_and_jpeg(tmp_path):
    pytest.importorskip("PIL")
    root = tmp_path / "colours"
    for cls, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            write_image(root / cls / f"{i}.png", np.broadcast_to(np.array(colour, np.uint8), (7, 9, 3)))
        write_image(root / cls / "x.jpg", np.broadcast_to(np.array(colour, np.uint8), (14, 18, 3)), "JPEG")
        write_image(root / cls / "g.bmp", np.full((7, 9), 128, np.uint8))
    train, _ = D.load_image_folder(root, val_fraction=0.0)
    assert train.classes == ["blue", "red"]
    assert train.images.shape == (10, 3, 7, 9)
    red = train.images[train.labels == 1]
    pngs = red[:3]  # files are read in sorted name order: 0.png 1.png 2.png g.bmp x.jpg
    np.testing.assert_array_equal(pngs[:, 0], 1.0)
    np.testing.assert_array_equal(pngs[:, 1:], 0.0)
    gray = red[3]
    np.testing.assert_array_equal(gray, np.full((3, 7, 9), 128 / 255, np.float32))
    jpeg = red[4]  # resized from 14x18, lossy: close to pure red
    assert np.abs(jpeg[0] - 1).max() < 0.05 and np.abs(jpeg[1:]).max() < 0.05
    one, _ = D.load_image_folder(root, channels=1)
    assert one.images.shape[1] == 1


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"image folder {missing} does not exist"):
        D.load_image_folder(missing)
    flat = tmp_path / "flat"
    flat.mkdir()
    write_image(flat / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="has no class subfolders.*1 image files directly"):
        D.load_image_folder(flat)
    with pytest.raises(NotADirectoryError, match="a.png is a file"):
        D.load_image_folder(flat / "a.png")
    single = tmp_path / "single"
    (single / "only").mkdir(parents=True)
    write_image(single / "only" / "a.png", np.zeros((4, 4)))
    with pytest.raises(ValueError, match="expected at least 2 classes"):
        D.load_image_folder(single)
    (single / "empty").mkdir()
    with pytest.raises(ValueError, match=f"class folder {single / 'empty'} holds no images"):
        D.load_image_folder(single)
    (single / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match=f"cannot read image {single / 'empty' / 'broken.png'}"):
        D.load_image_folder(single)
    with pytest.raises(ValueError, match="channels must be 1, 3 or None"):
        D.load_image_folder(single, channels=2)
    with pytest.raises(ValueError, match="unknown data set 'nosuchset'"):
        D.get_dataset("nosuchset")


# ---------------------------------------------------------------------------
# CIFAR-10 python batches (synthetic)
# ---------------------------------------------------------------------------

def write_cifar(folder, n=3, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batches[name] = (data, labels)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"x.png"] * n}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072}, f, protocol=2)
    return batches


def test_cifar10_folder(tmp_path):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    with pytest.warns(UserWarning, match="checksums differ from the published CIFAR-10 files"):
        train = D.load_cifar10(tmp_path, "train")
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == np.float32
    assert train.labels.dtype == np.int64 and train.classes[3] == "c3"
    data, labels = batches["data_batch_2"]
    np.testing.assert_array_equal(train.labels[3:6], labels)
    first = data[0]
    np.testing.assert_array_equal(train.images[3, 0], first[:1024].reshape(32, 32) / np.float32(255))
    np.testing.assert_array_equal(train.images[3, 2, 1, :], first[2048 + 32:2048 + 64] / np.float32(255))
    with pytest.warns(UserWarning):
        tr, te = D.get_dataset("cifar10", data_dir=tmp_path)
    assert len(te) == 3 and te.mean == tr.mean and len(tr.mean) == 3


def test_cifar10_tar_archive(tmp_path):
    batches = write_cifar(tmp_path / "src" / "cifar-10-batches-py")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.warns(UserWarning):
        test = D.load_cifar10(archive, "test")
    np.testing.assert_array_equal(test.labels, batches["test_batch"][1])
    with pytest.warns(UserWarning):
        tr, te = D.get_dataset(str(archive))
    assert tr.name == "cifar10-train" and len(tr) == 15


@pytest.mark.filterwarnings("ignore:.*checksums differ from the published")
def test_cifar10_errors(tmp_path):
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "data_batch_4").unlink()
    with pytest.raises(D.DatasetNotFoundError, match="train split incomplete .* missing data_batch_4"):
        D.load_cifar10(tmp_path / "c", "train")
    with pytest.raises(D.DatasetNotFoundError, match="CIFAR-10 not found at .*data_batch_1"):
        D.load_cifar10(tmp_path / "empty_dir_that_is_missing")
    with pytest.raises(ValueError, match="pass the folder holding its python batch files"):
        D.get_dataset("cifar10")
    # a pickle that asks for any other global is refused, not executed
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump(OrderedDict(data=1), f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load global collections.OrderedDict"):
        D.load_cifar10(tmp_path / "c", "test")
    with open(tmp_path / "c" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f, protocol=2)
    with pytest.raises(ValueError, match=r"b'data' must be a uint8 array of shape \(N, 3072\), got uint8 \(2, 100\)"):
        D.load_cifar10(tmp_path / "c", "test")


# ---------------------------------------------------------------------------
# DataLoader
# ---------------------------------------------------------------------------

def small_dataset(n=10, shape=(1, 4, 4)):
    images = np.random.default_rng(5).random((n,) + shape).astype(np.float32)
    return D.ArrayDataset(images, np.arange(n) % 3, ["a", "b", "c"], name="tiny")


def test_loader_batches_in_order():
    ds = small_dataset()
    loader = D.DataLoader(ds, batch_size=4)
    assert len(loader) == 3 and len(D.DataLoader(ds, batch_size=4, drop_last=True)) == 2
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(4, 1, 4, 4), (4, 1, 4, 4), (2, 1, 4, 4)]
    assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in batches)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), ds.images)
    assert len(list(D.DataLoader(ds, batch_size=4, drop_last=True))) == 2
    batches[0][0][:] = -1  # batches are copies
    assert ds.images.min() >= 0
    tuple_loader = D.DataLoader((ds.images, ds.labels.astype(np.int32)), batch_size=10)
    assert next(iter(tuple_loader))[1].dtype == np.int64


def test_loader_shuffle_is_seeded():
    ds = small_dataset(20)

    def epoch(loader):
        return np.concatenate([y for _, y in loader]), np.concatenate([x for x, _ in loader][:1])

    a = D.DataLoader(ds, batch_size=6, shuffle=True, rng=7)
    b = D.DataLoader(ds, batch_size=6, shuffle=True, rng=np.random.default_rng(7))
    first_a = [x for x, _ in a]
    first_b = [x for x, _ in b]
    for xa, xb in zip(first_a, first_b):
        np.testing.assert_array_equal(xa, xb)
    order = np.concatenate([x[:, 0, 0, 0] for x in first_a])
    np.testing.assert_array_equal(np.sort(order), np.sort(ds.images[:, 0, 0, 0]))  # a permutation
    second = np.concatenate([x[:, 0, 0, 0] for x, _ in a])
    assert not np.array_equal(order, second)  # a new order every epoch
    c = np.concatenate([x[:, 0, 0, 0] for x, _ in D.DataLoader(ds, batch_size=6, shuffle=True, rng=8)])
    assert not np.array_equal(order, c)


def test_loader_resume_from_state():
    ds = small_dataset(20, (1, 6, 6))
    transform = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(), T.RandomRotation(10)])
    a = D.DataLoader(ds, batch_size=8, shuffle=True, transform=transform, rng=11)
    list(a)
    state = json.loads(json.dumps(a.state_dict()))  # survives a JSON round trip
    expected = list(a)
    b = D.DataLoader(ds, batch_size=8, shuffle=True, transform=transform, rng=999)
    b.load_state_dict(state)
    for (xa, ya), (xb, yb) in zip(expected, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    b.rng.bit_generator.state = state["rng_state"]  # the raw generator state works too
    np.testing.assert_array_equal(next(iter(b))[0], expected[0][0])
    with pytest.raises(ValueError, match="expected a dict with key 'rng_state'"):
        b.load_state_dict({})


def test_loader_errors():
    ds = small_dataset()
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        D.DataLoader(ds, batch_size=0)
    with pytest.raises(TypeError, match="dataset must be an ArrayDataset or an \\(images, labels\\) pair"):
        D.DataLoader(ds.images)
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\), got \(9,\)"):
        D.DataLoader((ds.images, ds.labels[:9]))
    with pytest.raises(TypeError, match=r"images must be floats in \[0, 1\] \(float32\), got dtype uint8"):
        D.DataLoader((ds.images.astype(np.uint8), ds.labels))


# ---------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------

def batch(n=6, c=2, h=7, w=9, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w)).astype(np.float32)


def test_normalize():
    x = batch(c=3)
    t = T.Normalize((0.1, 0.2, 0.3), (0.5, 0.25, 2.0))
    y = t(x)
    for ch, (m, s) in enumerate(zip(t.mean, t.std)):
        np.testing.assert_allclose(y[:, ch], (x[:, ch] - m) / s, rtol=1e-6)
    assert y.dtype == np.float32
    np.testing.assert_allclose(t.inverse(y), x, atol=1e-6)
    np.testing.assert_allclose(T.Normalize(0.5, 0.5)(x), (x - 0.5) / 0.5, rtol=1e-6)
    with pytest.raises(ValueError, match=r"Normalize has 3 channel statistics, the batch has 2 channels \(shape \(6, 2, 7, 9\)\)"):
        t(batch(c=2))
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize(0.0, 0.0)
    z = x.copy()
    assert t(z, None) is not z and T.Normalize(0.1, 0.5, inplace=True)(z) is z
    ds = small_dataset()
    assert ds.normalize_transform().mean == ds.mean


def test_horizontal_flip_exact():
    x = batch()
    t = T.RandomHorizontalFlip(0.5)
    mask = t.sample_params(x.shape, np.random.default_rng(3))
    assert mask.any() and not mask.all()
    y = t(x, np.random.default_rng(3))
    for i in range(len(x)):
        np.testing.assert_array_equal(y[i], x[i, :, :, ::-1] if mask[i] else x[i])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1.0)(x, 0), x[..., ::-1])
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0.0)(x, 0), x)
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(x, 0), x[:, :, ::-1])
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got 1.5"):
        T.RandomHorizontalFlip(1.5)


def naive_pad(image, left, top, right, bottom, fill, mode):
    c, h, w = image.shape
    out = np.full((c, h + top + bottom, w + left + right), fill, dtype=image.dtype)
    for ch in range(c):
        for y in range(-top, h + bottom):
            for x in range(-left, w + right):
                if mode == "constant":
                    if 0 <= y < h and 0 <= x < w:
                        out[ch, y + top, x + left] = image[ch, y, x]
                    continue
                yy, xx = y, x
                if mode == "edge":
                    yy, xx = min(max(y, 0), h - 1), min(max(x, 0), w - 1)
                elif mode == "reflect":
                    yy = -y if y < 0 else (2 * (h - 1) - y if y >= h else y)
                    xx = -x if x < 0 else (2 * (w - 1) - x if x >= w else x)
                out[ch, y + top, x + left] = image[ch, yy, xx]
    return out


@pytest.mark.parametrize("padding,mode", [(2, "constant"), ((1, 3), "constant"), ((0, 1, 2, 3), "edge"),
                                          (2, "reflect"), (None, "constant")])
def test_random_crop_against_naive_loop(padding, mode):
    x = batch(n=8)
    t = T.RandomCrop((5, 6), padding=padding, fill=0.25, padding_mode=mode)
    top, left = t.sample_params(x.shape, np.random.default_rng(4))
    y = t(x, np.random.default_rng(4))
    assert y.shape == (8, 2, 5, 6) and y.dtype == np.float32
    pads = T._padding4(padding)
    for i in range(len(x)):
        padded = naive_pad(x[i], *pads, fill=0.25, mode=mode)
        np.testing.assert_array_equal(y[i], padded[:, top[i]:top[i] + 5, left[i]:left[i] + 6])
    np.testing.assert_array_equal(y, t(x, np.random.default_rng(4)))
    assert not np.array_equal(y, t(x, np.random.default_rng(5)))


def test_random_crop_sizes():
    x = batch(h=4, w=4)
    assert T.RandomCrop(6, pad_if_needed=True)(x, 0).shape == (6, 2, 6, 6)
    assert T.RandomCrop(4, padding=4)(x, 0).shape == (6, 2, 4, 4)
    with pytest.raises(ValueError, match=r"RandomCrop of size \(6, 6\) does not fit images of shape \(6, 2, 4, 4\)"):
        T.RandomCrop(6)(x, 0)
    with pytest.raises(ValueError, match=r"expects a batch of shape \(B, C, H, W\), got shape \(2, 4, 4\)"):
        T.RandomCrop(2)(x[0], 0)
    with pytest.raises(TypeError, match="expects a float batch .* got dtype uint8"):
        T.RandomCrop(2)(x.astype(np.uint8), 0)


def test_random_shift_against_naive_loop():
    x = batch(n=10)
    t = T.RandomShift((2, 3), fill=0.5)
    dy, dx = t.sample_params(x.shape, np.random.default_rng(6))
    assert np.abs(dy).max() <= 2 and np.abs(dx).max() <= 3
    y = t(x, np.random.default_rng(6))
    _, c, h, w = x.shape
    for i in range(len(x)):
        expected = np.full((c, h, w), 0.5, np.float32)
        for yy in range(h):
            for xx in range(w):
                sy, sx = yy - dy[i], xx - dx[i]
                if 0 <= sy < h and 0 <= sx < w:
                    expected[:, yy, xx] = x[i, :, sy, sx]
        np.testing.assert_array_equal(y[i], expected)


def naive_rotate(image, angle_deg, fill=0.0, nearest=False):
    c, h, w = image.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    a = math.radians(angle_deg)
    out = np.zeros_like(image, dtype=np.float64)
    for y in range(h):
        for x in range(w):
            # the point that a counter-clockwise (as displayed) rotation carries onto (y, x)
            sx = math.cos(a) * (x - cx) - math.sin(a) * (y - cy) + cx
            sy = math.sin(a) * (x - cx) + math.cos(a) * (y - cy) + cy
            for ch in range(c):
                if nearest:
                    iy, ix = int(np.rint(sy)), int(np.rint(sx))
                    out[ch, y, x] = image[ch, iy, ix] if (0 <= iy < h and 0 <= ix < w) else fill
                    continue
                x0, y0 = math.floor(sx), math.floor(sy)
                total = 0.0
                for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                    for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                        inside = 0 <= yy < h and 0 <= xx < w
                        total += wy * wx * (image[ch, yy, xx] if inside else fill)
                out[ch, y, x] = total
    return out


def test_rotation_against_naive_loop():
    x = batch(n=4, c=2, h=6, w=7)
    t = T.RandomRotation(30, fill=0.2)
    angles = t.sample_params(x.shape, np.random.default_rng(8))
    assert np.all(np.abs(angles) <= 30)
    y = t(x, np.random.default_rng(8))
    assert y.shape == x.shape and y.dtype == np.float32
    for i in range(len(x)):
        np.testing.assert_allclose(y[i], naive_rotate(x[i], angles[i], fill=0.2), atol=1e-5)
    yn = T.RandomRotation(30, interpolation="nearest")(x, np.random.default_rng(8))
    for i in range(len(x)):
        np.testing.assert_allclose(yn[i], naive_rotate(x[i], angles[i], nearest=True), atol=0)


def test_rotation_special_angles():
    x = batch(c=1, h=5, w=5)
    np.testing.assert_array_equal(T.rotate(x, 0.0), x)
    np.testing.assert_allclose(T.rotate(x, 90.0), np.rot90(x, 1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(T.rotate(x, -90.0), np.rot90(x, -1, axes=(2, 3)), atol=1e-6)
    np.testing.assert_allclose(T.rotate(x, 180.0), x[:, :, ::-1, ::-1], atol=1e-6)
    with pytest.raises(ValueError, match="interpolation must be 'bilinear' or 'nearest', got 'cubic'"):
        T.RandomRotation(5, interpolation="cubic")


def test_rotation_matches_torch_grid_sample():
    torch = pytest.importorskip("torch")
    x = batch(n=5, c=3, h=8, w=8)
    angles = np.array([-20.0, -3.5, 0.0, 7.0, 25.0])
    ours = T.rotate(x, angles)
    a = np.deg2rad(angles)
    theta = np.zeros((5, 2, 3))
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(a), -np.sin(a)
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(a), np.cos(a)
    grid = torch.nn.functional.affine_grid(torch.tensor(theta), (5, 3, 8, 8), align_corners=False)
    ref = torch.nn.functional.grid_sample(torch.tensor(x, dtype=torch.float64), grid, mode="bilinear",
                                          padding_mode="zeros", align_corners=False)
    np.testing.assert_allclose(ours, ref.numpy(), atol=1e-5)


def test_transforms_deterministic_and_pure():
    x = batch(n=16)
    keep = x.copy()
    pipeline = T.Compose([T.RandomCrop((7, 9), padding=2), T.RandomHorizontalFlip(), T.RandomShift(1),
                          T.RandomRotation((-10, 10)), T.Normalize((0.5, 0.4), (0.2, 0.3))])
    a = pipeline(x, 123)
    b = pipeline(x, np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    assert a.shape == x.shape and a.dtype == np.float32
    assert not np.array_equal(a, pipeline(x, 124))
    np.testing.assert_array_equal(x, keep)  # the input is not modified
    assert "RandomCrop" in repr(pipeline)
    with pytest.raises(TypeError, match="Compose expects callables"):
        T.Compose([1])
