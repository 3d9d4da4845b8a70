"""Small synthetic datasets written in the on-disk formats srcext reads: IDX files (MNIST,
Fashion-MNIST) and N-MNIST recordings as tonic's loader expects them."""

import gzip
import os
import struct

import numpy as np


def write_idx(path, array, compress):
    array = np.asarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.tobytes()
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def write_dataset(root, dataset="mnist", n_train=40, n_test=20, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, dataset)
    os.makedirs(folder, exist_ok=True)
    ext = ".gz" if compress else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        for k, label in enumerate(labels):  # a class-dependent bright stripe: learnable
            images[k, 2 + 2 * label : 5 + 2 * label, 4:24] = 255
            images[k] += rng.integers(0, 30, (28, 28), dtype=np.uint8)
        write_idx(os.path.join(folder, f"{split}-images-idx3-ubyte{ext}"), images, compress)
        write_idx(os.path.join(folder, f"{split}-labels-idx1-ubyte{ext}"), labels, compress)
    return root


def write_nmnist_bin(path, events):
    """N-MNIST's 40-bit event records: x, y, polarity bit 7 + timestamp (23 bits)."""
    raw = bytearray()
    for x, y, t, p in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    with open(path, "wb") as f:
        f.write(raw)


def write_synthetic_nmnist(root, per_class=1000, train=True, seed=0):
    """A tree tonic.datasets.NMNIST accepts offline: the archive's name present and at least
    10,000 recordings under NMNIST/Train (or Test)/<digit>/."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "NMNIST")
    folder = os.path.join(base, "Train" if train else "Test")
    os.makedirs(base, exist_ok=True)
    open(os.path.join(base, "train.zip" if train else "test.zip"), "wb").close()
    for digit in range(10):
        d = os.path.join(folder, str(digit))
        os.makedirs(d, exist_ok=True)
        for k in range(per_class):
            n = 6
            events = [
                (int(rng.integers(0, 34)), int(3 * digit + rng.integers(0, 3)), int(t), int(rng.integers(0, 2)))
                for t in np.sort(rng.integers(0, 300_000, n))
            ]
            write_nmnist_bin(os.path.join(d, f"{k:05d}.bin"), events)
