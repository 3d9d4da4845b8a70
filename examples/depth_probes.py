"""Short probes of a deep classifier (10 hidden SRC layers x 128 on MNIST): the initialisation,
the spike surrogate and the learning rate compared on the training loss after 2 epochs on
5,000 training images (batch 64, cosine schedule, bf16), each run a train.py run.

    python examples/depth_probes.py --data-dir DATA --out runs/depth_probes \
        --json examples/results/depth_probes_10x128.json

Writes what examples/results/depth_probes_10x128.json holds under "runs". Its
"full_data_runs_stopped_early" entries are the first epochs of two full-data train.py runs
that were stopped (the first to switch to the identity start, the second to switch to
lr 3e-3), copied from their metrics; this script does not rerun them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import train
from common import write_json

# (setting, train.py options): the comparisons in the order of the committed results.
SETTINGS = [
    ("uniform init, straight-through, lr 1e-3", ["--hidden-init", "uniform", "--lr", "1e-3"]),
    ("uniform init, straight-through, lr 2e-4", ["--hidden-init", "uniform", "--lr", "2e-4"]),
    (
        "uniform init, true ReLU derivative, lr 1e-3",
        ["--hidden-init", "uniform", "--no-straight-through", "--lr", "1e-3"],
    ),
    ("identity init, straight-through, lr 1e-3", ["--hidden-init", "identity", "--lr", "1e-3"]),
    (
        "identity init, true ReLU derivative, lr 1e-3",
        ["--hidden-init", "identity", "--no-straight-through", "--lr", "1e-3"],
    ),
    ("identity init, straight-through, lr 3e-4", ["--hidden-init", "identity", "--lr", "3e-4"]),
    ("identity init, straight-through, lr 3e-3", ["--hidden-init", "identity", "--lr", "3e-3"]),
    ("identity init, straight-through, lr 1e-2", ["--hidden-init", "identity", "--lr", "1e-2"]),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--out", default="runs/depth_probes", help="one train.py run folder per setting")
    ap.add_argument("--json", help="write the summary here")
    ap.add_argument(
        "--settings", type=int, nargs="+", default=None, help="run only these settings (indices into the list above)"
    )
    ap.add_argument(
        "--train-options",
        nargs=argparse.REMAINDER,
        default=[],
        help="further train.py options, last (they override the probes' own: "
        "e.g. --hidden-size 8 --steps 10 for a smoke test)",
    )
    args = ap.parse_args(argv)
    common = [
        "--dataset",
        "mnist",
        "--data-dir",
        args.data_dir,
        "--hidden-layers",
        "10",
        "--hidden-size",
        "128",
        "--limit-train",
        "5000",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--lr-schedule",
        "cosine",
        "--amp",
        "bf16",
        "--no-progress",
    ]
    chosen = range(len(SETTINGS)) if args.settings is None else args.settings
    runs = []
    for index in chosen:
        setting, options = SETTINGS[index]
        out = os.path.join(args.out, f"probe{index}")
        status = train.main(common + options + ["--out", out] + args.train_options)
        if status != 0:
            return status
        with open(os.path.join(out, "metrics.json")) as f:
            last = json.load(f)["history"][-1]
        runs.append(
            {
                "setting": setting,
                f"train_loss_epoch{last['epoch']}": round(last["train_loss"], 4),
                f"train_accuracy_epoch{last['epoch']}": round(last["train_accuracy"], 4),
            }
        )
        print(
            f"{setting}: train loss {last['train_loss']:.4f}, train accuracy {100 * last['train_accuracy']:.2f} %",
            flush=True,
        )
    if args.json:
        write_json(
            args.json,
            {
                "what": "10 hidden SRC layers x 128 on MNIST, 5,000 training images, 2 epochs, "
                "batch 64, cosine, bf16; settings compared on the training loss",
                "runs": runs,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
