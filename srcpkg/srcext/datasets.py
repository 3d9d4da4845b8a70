"""Datasets for SRC networks (the spike encoding is in :mod:`srcext.encoding`).

* MNIST and Fashion-MNIST from the standard IDX files (``.gz`` or not) in a data directory
  (``DIR/mnist/...``, ``DIR/fashion-mnist/...`` or the files directly in ``DIR``), Debian's
  ``dataset-fashion-mnist`` folder, or a download from the standard mirrors, verified by MD5.
* :func:`nmnist_dataset`: N-MNIST through tonic (optional extra), events binned into frames.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# MD5 of the uncompressed files: stable whatever gzip produced the archive.
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
SYSTEM_DIRS = {"fashion-mnist": ["/usr/share/datasets/fashion-mnist"]}
DATASETS = tuple(MD5)


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are missing and could not be downloaded."""


def read_idx(path: str) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file (too short)")
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) if shape else 0
    if len(data) - offset != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data for shape {shape}, found {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _is_gzip(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _md5_uncompressed(path: str) -> str:
    opener = gzip.open if _is_gzip(path) else open
    h = hashlib.md5()
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _candidates(dataset: str, data_dir: Optional[str]):
    dirs = []
    if data_dir:
        dirs += [os.path.join(data_dir, dataset), data_dir]
    dirs += SYSTEM_DIRS.get(dataset, [])
    return dirs


def find_file(dataset: str, name: str, data_dir: Optional[str]) -> Optional[str]:
    for d in _candidates(dataset, data_dir):
        for candidate in (os.path.join(d, name), os.path.join(d, name + ".gz")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _default_fetch(url: str, dest: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as response, open(dest, "wb") as f:
        f.write(response.read())


def download(dataset: str, name: str, data_dir: str, fetch: Callable[[str, str], None] = _default_fetch) -> str:
    """Fetch ``name``.gz from the dataset's mirrors into DATA_DIR/dataset and verify its MD5.

    A file whose checksum does not match is deleted and the next mirror tried; when none
    works, :class:`DatasetNotFound` says which files to put where.
    """
    folder = os.path.join(data_dir, dataset)
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, name + ".gz")
    errors = []
    for mirror in MIRRORS[dataset]:
        tmp = dest + ".part"
        try:
            fetch(mirror + name + ".gz", tmp)
            digest = _md5_uncompressed(tmp)
            if digest != MD5[dataset][name]:
                raise ValueError(f"checksum mismatch (md5 {digest}, expected {MD5[dataset][name]})")
            os.replace(tmp, dest)
            return dest
        except Exception as exc:  # network error, bad gzip, checksum mismatch
            errors.append(f"{mirror}: {exc}")
            if os.path.exists(tmp):
                os.remove(tmp)
    raise DatasetNotFound(
        f"could not download {name}.gz for {dataset} ({'; '.join(errors)}). Put the IDX file "
        f"{name}[.gz] into {folder}/ (or pass --data-dir pointing at a folder that has "
        f"{dataset}/{name}[.gz])"
    )


def load_idx_dataset(
    dataset: str,
    split: str = "train",
    data_dir: Optional[str] = None,
    download_missing: bool = True,
    fetch: Callable[[str, str], None] = _default_fetch,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of MNIST or Fashion-MNIST."""
    if dataset not in MD5:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    arrays = []
    for name in SPLIT_FILES[split]:
        path = find_file(dataset, name, data_dir)
        if path is None:
            if not download_missing or data_dir is None:
                where = ", ".join(_candidates(dataset, data_dir)) or "(no --data-dir given)"
                raise DatasetNotFound(f"{dataset}: {name}[.gz] not found in {where}")
            path = download(dataset, name, data_dir, fetch)
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{dataset} {split}: images {images.shape} and labels {labels.shape} do not form a dataset")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


# ---- N-MNIST (tonic) ---------------------------------------------------------------------

NMNIST_SENSOR = (34, 34, 2)


def nmnist_dataset(
    root: str,
    train: bool = True,
    n_time_bins: Optional[int] = 100,
    time_window_us: Optional[float] = None,
    first_saccade_only: bool = False,
    download: bool = False,
):
    """N-MNIST via tonic, each recording binned into frames (T, 2, 34, 34).

    Exactly one of ``n_time_bins`` (a fixed number of frames) or ``time_window_us`` (frames
    of fixed duration, so the count varies; use :func:`collate_frames`) applies.
    ``first_saccade_only`` keeps the first of the three saccades (the first ~100 ms).
    """
    try:
        import tonic
        import tonic.transforms as tt
    except ImportError as exc:  # an optional extra
        raise ImportError("N-MNIST needs tonic: pip install 'srcext[nmnist]' (or tonic)") from exc
    if (n_time_bins is None) == (time_window_us is None):
        raise ValueError("give exactly one of n_time_bins or time_window_us")
    transforms = []
    if first_saccade_only:
        transforms.append(tt.CropTime(max=100_000))
    if n_time_bins is not None:
        transforms.append(tt.ToFrame(sensor_size=NMNIST_SENSOR, n_time_bins=n_time_bins))
    else:
        transforms.append(tt.ToFrame(sensor_size=NMNIST_SENSOR, time_window=time_window_us))
    return tonic.datasets.NMNIST(
        save_to=root, train=train, first_saccade_only=first_saccade_only, transform=tt.Compose(transforms)
    )


def collate_frames(batch: Sequence[Tuple[np.ndarray, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """DataLoader collate for frame tensors: pads to the longest recording with empty frames
    and returns time-major input (T, B, 2*34*34) and labels (B,)."""
    frames = [torch.as_tensor(np.asarray(f), dtype=torch.float32) for f, _ in batch]
    T = max(f.shape[0] for f in frames)
    B = len(frames)
    features = int(np.prod(frames[0].shape[1:]))
    out = torch.zeros(T, B, features)
    for b, f in enumerate(frames):
        out[: f.shape[0], b] = f.reshape(f.shape[0], -1)
    labels = torch.as_tensor([int(label) for _, label in batch], dtype=torch.int64)
    return out, labels
