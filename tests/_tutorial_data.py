"""Tiny MNIST-shaped and CIFAR-10-shaped files for the tutorial tests (learnable class patterns plus noise)."""
import pickle
from pathlib import Path

import numpy as np


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: magic (0, 0, 8, ndim), the sizes, the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def digit_like(n: int, seed: int):
    """``n`` 28x28 uint8 images whose class (0-9) is a bright 7x7 square at a class-specific place."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    rows, cols = (labels // 4) * 9 + 1, (labels % 4) * 7
    for dr in range(7):          # a loop over the taps of the square, not over images
        for dc in range(7):
            images[np.arange(n), rows + dr, cols + dc] = 250
    return images, labels.astype(np.uint8)


def make_mnist(root, folder: str = "MNIST", n_train: int = 200, n_test: int = 100, seed: int = 0):
    """Write the four IDX files in torchvision's layout ``root/<folder>/raw/``; returns the arrays."""
    raw = Path(root) / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        images, labels = digit_like(n, seed + (split == "test"))
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        out[split] = (images, labels)
    return out


def make_cifar(root, per_batch: int = 40, seed: int = 0):
    """Write CIFAR-10's python batches in ``root/cifar-10-batches-py/``: class = dominant colour + a bar."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (10, 3))
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        images = rng.integers(0, 50, (per_batch, 3, 32, 32)) + palette[labels][:, :, None, None] // 2
        images[np.arange(per_batch), :, labels * 3, :] = 255
        data = np.clip(images, 0, 255).astype(np.uint8).reshape(per_batch, 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": [int(v) for v in labels]}, f,
                        protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        pickle.dump({b"label_names": [n.encode() for n in names]}, f, protocol=2)
    return folder
