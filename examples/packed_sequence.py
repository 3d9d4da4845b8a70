"""A sequence classifier on variable-length batches: SRC on a PackedSequence, as one would
use torch.nn.GRU.

Each MNIST image is read as a sequence of its rows (28 steps of 28 pixel intensities), cut
at a random length per image (``--min-length`` to 28 rows), so every batch mixes lengths.
The batch is packed (``pack_padded_sequence(..., enforce_sorted=False)``) and goes through
``SRC`` (fused kernels: past its length a sample's state is frozen and its output is 0),
then each neuron's spike counts in 4 windows of 7 rows (0 past the sample's length) go to a
linear readout (an SRC layer has no hidden-to-hidden matrix, so where in the image the
neurons fired is worth keeping). Before training, ``srcext.calibrate_`` scales the SRC
weights so that the layer fires at 5 % of its neuron-steps on one batch.

    python examples/packed_sequence.py --data-dir DATA --epochs 2
    python examples/packed_sequence.py --data-dir DATA --limit-train 256 --limit-test 128 \
        --hidden-size 32 --epochs 1        # a smoke test: a few seconds

``DATA`` holds ``mnist/`` with the four IDX files (see srcext.data).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import List, Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import srcext
from common import portable_options
from srcext.data import load_idx_dataset

WINDOWS = 4  # the readout sees each neuron's spike count in 4 windows of 7 rows


class RowClassifier(nn.Module):
    def __init__(self, hidden_size: int, num_layers: int, bidirectional: bool, backend: str):
        super().__init__()
        self.rnn = srcext.SRC(
            28, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional, backend=backend
        )
        self.readout = nn.Linear(WINDOWS * hidden_size * self.rnn.num_directions, 10)

    def forward(self, packed):
        out, _ = self.rnn(packed)  # PackedSequence in, PackedSequence out
        # Zero-padded past each sample's length, so the windows a sample did not reach count 0.
        spikes, _ = pad_packed_sequence(out, batch_first=True, total_length=28)
        counts = spikes.reshape(spikes.shape[0], WINDOWS, 28 // WINDOWS, -1).sum(2)
        return self.readout(counts.flatten(1))  # (B, WINDOWS * D * H) -> logits


def random_lengths(n: int, min_length: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(min_length, 29, (n,), generator=generator)


def pack(images: torch.Tensor, lengths: torch.Tensor):
    """(B, 28, 28) uint8 images cut at ``lengths`` rows, as a PackedSequence (batch_first)."""
    rows = images.float() / 255.0
    return pack_padded_sequence(rows, lengths, batch_first=True, enforce_sorted=False)


def evaluate(model, data, lengths, batch_size: int) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data[0]), batch_size):
            x = data[0][start : start + batch_size]
            y = data[1][start : start + batch_size]
            logits = model(pack(x, lengths[start : start + batch_size]))
            correct += int((logits.argmax(1) == y).sum())
    return correct / len(data[0])


def main(argv: Optional[List[str]] = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", default=os.environ.get("SRCEXT_DATA", "data"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--num-layers", type=int, default=1)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--min-length", type=int, default=14, help="shortest sequence, in rows")
    ap.add_argument("--target-rate", type=float, default=0.05, help="calibrate_'s firing rate")
    ap.add_argument("--limit-train", type=int, default=0, help="use the first N images (0: all)")
    ap.add_argument("--limit-test", type=int, default=0)
    ap.add_argument("--backend", default="fused", choices=["fused", "reference", "auto"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write metrics.json here")
    args = ap.parse_args(argv)
    if not 1 <= args.min_length <= 28:
        ap.error("--min-length must be in [1, 28]")

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    train = load_idx_dataset("mnist", "train", args.data_dir)
    test = load_idx_dataset("mnist", "test", args.data_dir)
    if args.limit_train:
        train = tuple(t[: args.limit_train] for t in train)
    if args.limit_test:
        test = tuple(t[: args.limit_test] for t in test)
    test_lengths = random_lengths(len(test[0]), args.min_length, g)

    model = RowClassifier(args.hidden_size, args.num_layers, args.bidirectional, args.backend)
    sample = train[0][:256]
    report = srcext.calibrate_(
        model, pack(sample, random_lengths(len(sample), args.min_length, g)), target_rate=args.target_rate
    )
    print(
        "calibrated:",
        {k: f"scale {v['scale']:.2f}, rate {v['rate_before']:.4f} -> {v['rate']:.4f}" for k, v in report.items()},
    )
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = []
    start_time = time.time()
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(train[0]), generator=g)
        total, count = 0.0, 0
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            packed = pack(train[0][idx], random_lengths(len(idx), args.min_length, g))
            loss = nn.functional.cross_entropy(model(packed), train[1][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        accuracy = evaluate(model, test, test_lengths, 256)
        rates = srcext.firing_rates(model, pack(test[0][:256], test_lengths[:256]))
        history.append(
            {"epoch": epoch + 1, "train_loss": total / count, "test_accuracy": accuracy, "firing_rates": dict(rates)}
        )
        print(
            f"epoch {epoch + 1}: train loss {total / count:.4f}, test accuracy "
            f"{100 * accuracy:.2f} %, firing rates {dict(rates)}"
        )
    metrics = {
        "config": portable_options(vars(args)),
        "calibration": report,
        "history": history,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "wall_time_s": time.time() - start_time,
    }
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    return metrics


if __name__ == "__main__":
    main()
