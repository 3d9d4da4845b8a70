"""Datasets and spike encoding for SRC networks: one import for both.

The datasets (IDX files, MD5-checked downloads, N-MNIST through tonic) live in
:mod:`srcext.datasets`, the rate encoder and the augmentation in :mod:`srcext.encoding`.
"""

from .datasets import (
    DATASETS,
    MD5,
    MIRRORS,
    NMNIST_SENSOR,
    SPLIT_FILES,
    SYSTEM_DIRS,
    DatasetNotFound,
    collate_frames,
    download,
    find_file,
    load_idx_dataset,
    nmnist_dataset,
    read_idx,
)
from .encoding import RateEncoder, random_flip, random_shift, rate_code_events

__all__ = [
    "DATASETS",
    "MD5",
    "MIRRORS",
    "NMNIST_SENSOR",
    "SPLIT_FILES",
    "SYSTEM_DIRS",
    "DatasetNotFound",
    "RateEncoder",
    "collate_frames",
    "download",
    "find_file",
    "load_idx_dataset",
    "nmnist_dataset",
    "random_flip",
    "random_shift",
    "rate_code_events",
    "read_idx",
]
