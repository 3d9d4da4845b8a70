"""What the example scripts share: the training datasets (static images rate coded on the
device, N-MNIST frames), loading a train.py checkpoint back into a model and its encoder, and
paths written without the machine's absolute folders.

The scripts import it as ``common`` (Python puts a script's own folder on the path).
"""

from __future__ import annotations

import json
import os

import torch

from srcext.data import (
    DatasetNotFound,
    RateEncoder,
    collate_frames,
    load_idx_dataset,
    nmnist_dataset,
    random_flip,
    random_shift,
)
from srcext.constants import CELL_CONSTANTS
from srcext.models import SRCClassifier


# the fixed shuffle of N-MNIST's recordings (see NMNISTFrames): a constant, so that every run
# holds out the same validation recordings whatever its --seed
NMNIST_ORDER_SEED = 0


class UsageError(Exception):
    """A bad option, missing data or an unreadable checkpoint: reported as one line."""


# ---- datasets -----------------------------------------------------------------------------


def split_part(n: int, split: str, val_size: int) -> slice:
    """Which of a split's n items it keeps: "val" the last `val_size` of the training set,
    "train" the rest (all of it without a validation split), "test" all."""
    if split == "test" or not val_size:
        return slice(None)
    if val_size >= n:
        raise UsageError(f"--val-size {val_size} leaves no training data")
    return slice(n - val_size, None) if split == "val" else slice(None, n - val_size)


class StaticImages:
    """MNIST / Fashion-MNIST held as uint8 tensors; batches are rate coded on the device.
    split "val" is the last `val_size` images of the training set, "train" the rest; training
    images are shifted at random by up to `shift` pixels, and mirrored left to right with
    probability 1/2 if `flip`."""

    def __init__(
        self, dataset, data_dir, split, encoder, limit=None, val_size=0, shift=0, flip=False, dtype=torch.float32
    ):
        try:
            images, labels = load_idx_dataset(dataset, "test" if split == "test" else "train", data_dir)
        except DatasetNotFound as exc:
            raise UsageError(str(exc)) from None
        part = split_part(len(labels), split, val_size)
        images, labels = images[part], labels[part]
        if limit:
            images, labels = images[:limit], labels[:limit]
        self.images, self.labels = images, labels
        self.encoder = encoder
        self.input_size = images[0].numel()
        self.dtype = dtype
        self.shift = shift if split == "train" else 0
        self.flip = flip and split == "train"

    def __len__(self):
        return len(self.labels)

    def batches(self, indices, batch_size, device, generator):
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            images = self.images[idx].to(device)
            if self.flip:
                images = random_flip(images, generator)
            if self.shift:
                images = random_shift(images, self.shift, generator)
            yield (self.encoder(images, generator=generator, dtype=self.dtype), self.labels[idx].to(device))


class NMNISTFrames:
    """N-MNIST recordings binned into `time_bins` frames (through tonic), as 0/1 spikes.

    tonic lists the recordings digit by digit, so a split's first N would all be zeros. Each
    split is therefore read in one fixed shuffled order (`NMNIST_ORDER_SEED`, the same in
    every run and independent of --seed): split "val" is the last `val_size` recordings of
    the shuffled training set, "train" the rest, and `limit` keeps the first N of a split,
    a mix of every digit."""

    input_size = 2 * 34 * 34

    def __init__(self, data_dir, split, time_bins, limit=None, dtype=torch.float32, val_size=0):
        try:
            self.dataset = nmnist_dataset(data_dir, train=split != "test", n_time_bins=time_bins)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:  # tonic raises when files are missing and download is off
            raise UsageError(
                f"N-MNIST not found under {data_dir}: {exc}. Download it with "
                "tonic on a machine with internet (tonic.datasets.NMNIST(save_to=DIR))."
            ) from None
        n = len(self.dataset)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(NMNIST_ORDER_SEED))
        order = order[split_part(n, split, val_size)]
        self.recordings = order[:limit] if limit else order
        self.dtype = dtype

    @property
    def labels(self) -> torch.Tensor:
        """The digit of each recording of this split, in its order (read from tonic's file
        list, without loading the events)."""
        return torch.as_tensor(self.dataset.targets, dtype=torch.int64)[self.recordings]

    def __len__(self):
        return len(self.recordings)

    def batches(self, indices, batch_size, device, generator):
        for start in range(0, len(indices), batch_size):
            chosen = self.recordings[indices[start : start + batch_size]]
            x, y = collate_frames([self.dataset[int(i)] for i in chosen])
            yield (x > 0).to(device=device, dtype=self.dtype), y.to(device)


# ---- checkpoints --------------------------------------------------------------------------

# train.py's options that are SRCClassifier arguments under the same name: how checkpoints
# written before they stored the model's own config (``model_config``) are read.
LEGACY_MODEL_OPTIONS = (
    "hidden_layers",
    "hidden_size",
    "neurons_per_class",
    "readout_decay",
    "trainable_readout",
    "weight_scale",
    "hidden_init",
    "backend",
    "detach_recurrent",
    "straight_through",
)


INPUT_SIZES = {"mnist": 28 * 28, "fashion-mnist": 28 * 28, "nmnist": NMNISTFrames.input_size}


def learned_dynamics(choice: str) -> dict:
    """train.py's --learn-dynamics as SRC arguments: "none", or every cell constant learned
    "per-layer" or "per-neuron"."""
    if choice == "none":
        return {}
    return {"learn": CELL_CONSTANTS, "per_neuron": choice == "per-neuron"}


def model_config(checkpoint: dict) -> dict:
    """The SRCClassifier config of a train.py checkpoint: its own ``model_config``, or one
    rebuilt from the training options of an older checkpoint."""
    if "model_config" in checkpoint:
        return checkpoint["model_config"]
    options = checkpoint["config"]
    config = {k: options[k] for k in LEGACY_MODEL_OPTIONS if k in options}
    return {"input_size": INPUT_SIZES[options["dataset"]], **config}


def encoder_of(options: dict) -> RateEncoder:
    """The rate encoder a run trained with (train.py's --gain, --silent-steps, --steps)."""
    return RateEncoder(options["gain"], options["silent_steps"], options["steps"])


def load_checkpoint(path: str):
    """(checkpoint, model with its weights, encoder or None for N-MNIST) from a checkpoint.pt
    of train.py, on the CPU; UsageError where it cannot be read."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        options = ckpt["config"]
        model = SRCClassifier.from_config(model_config(ckpt))
        model.load_state_dict(ckpt["model"])
        encoder = encoder_of(options) if options.get("dataset") != "nmnist" else None
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise UsageError(f"cannot read a train.py checkpoint from {path}: {exc}") from None
    return ckpt, model, encoder


# ---- paths --------------------------------------------------------------------------------


def portable_path(path):
    """`path` relative to the working directory, so that a metrics.json or checkpoint holds
    no absolute folder of the machine that wrote it (None and relative paths unchanged)."""
    if not path or not os.path.isabs(path):
        return path
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive (Windows): no relative form
        return path


def write_json(path: str, data) -> None:
    """`data` as indented JSON at `path` (the scripts' --json and metrics files)."""
    with open(path, "w") as f:
        json.dump(data, f, indent=2)


def portable_options(options: dict, keys=("data_dir", "out", "init_from")) -> dict:
    """A copy of a script's options with its paths made relative (portable_path)."""
    return {k: portable_path(v) if k in keys else v for k, v in options.items()}
