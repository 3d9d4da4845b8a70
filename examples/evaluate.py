"""Test accuracy of a trained classifier, with one or several rate codings per image.

A rate-coded image is a random spike train, so one forward pass scores one draw of it; that
is what the paper and ``train.py`` report. Averaging the logits of K independent codings of
each test image removes part of the encoding noise, at K times the inference cost. This
script reports the accuracy for each K asked for (the first K codings of the same draws, so
the numbers are comparable).

    python examples/evaluate.py --checkpoint runs/mnist/checkpoint.pt --data-dir DATA --encodings 1 5

How much one coding's score varies: ``--draws N --draws-json FILE`` also scores N further single
codings (seeds SEED+1 ... SEED+N) and writes them to FILE beside train.py's own test number (read
from the metrics.json next to the checkpoint) and this run's one-coding score, with their mean,
sample standard deviation, minimum and maximum.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

from common import UsageError, load_checkpoint, portable_path, write_json
from srcext.data import DatasetNotFound, load_idx_dataset


def accuracy_by_encodings(model, images, labels, encoder, encodings, batch_size, generator, dtype=None):
    """{K: accuracy} where the logits of the first K codings of each image are averaged."""
    model.eval()
    most = max(encodings)
    correct = {k: 0 for k in encodings}
    device = next(model.parameters()).device
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        for start in range(0, len(labels), batch_size):
            x = images[start : start + batch_size].to(device)
            y = labels[start : start + batch_size].to(device)
            total = None
            for k in range(1, most + 1):
                logits = model(encoder(x, generator=generator, dtype=dtype or torch.float32)).float()
                total = logits if total is None else total + logits
                if k in correct:
                    correct[k] += int((total.argmax(1) == y).sum())
    return {k: correct[k] / len(labels) for k in encodings}


def single_coding_draws(checkpoint: str, images: int, evaluated: dict, extra: list) -> dict:
    """The single_coding_draws.json record: train.py's test accuracy (when the run's metrics.json
    lies beside the checkpoint), `evaluated` = {"encodings": [...], "seed": s, "accuracy": a}
    (this run's first coding), and `extra` = [(seed, accuracy)] from one-coding evaluations."""
    draws = []
    metrics = os.path.join(os.path.dirname(checkpoint), "metrics.json")
    if os.path.exists(metrics):
        with open(metrics) as f:
            test = json.load(f).get("test_accuracy")
        if test is not None:
            draws.append(
                {"source": "train.py, after the last epoch (the run's test accuracy)", "seed": None, "accuracy": test}
            )
    encodings = " ".join(str(k) for k in evaluated["encodings"])
    draws.append(
        {
            "source": f"examples/evaluate.py --encodings {encodings}",
            "seed": evaluated["seed"],
            "accuracy": evaluated["accuracy"],
        }
    )
    draws += [{"source": "examples/evaluate.py --encodings 1", "seed": s, "accuracy": a} for s, a in extra]
    return {
        "what": "test accuracy with one rate coding per image, independent draws of the coding (same trained network)",
        "checkpoint": portable_path(checkpoint),
        "images": images,
        "draws": draws,
        **spread([d["accuracy"] for d in draws]),
    }


def spread(values: list) -> dict:
    """Mean and sample standard deviation (5 decimals), minimum and maximum of accuracies."""
    return {
        "mean": round(statistics.mean(values), 5),
        "stdev": round(statistics.stdev(values), 5) if len(values) > 1 else None,
        "min": min(values),
        "max": max(values),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="a checkpoint.pt written by examples/train.py")
    ap.add_argument("--data-dir", default=None, help="default: the one the run was trained with")
    ap.add_argument("--encodings", type=int, nargs="+", default=[1, 5], help="values of K")
    ap.add_argument("--limit-test", type=int, default=None, help="only the first N test images")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--amp", default=None, choices=["none", "bf16"], help="default: as trained")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", help="write the result to this file")
    ap.add_argument("--draws", type=int, default=0, help="score N further single codings (seeds SEED+1 ... SEED+N)")
    ap.add_argument("--draws-json", help="write every single-coding score and their spread to this file")
    args = ap.parse_args(argv)
    if any(k <= 0 for k in args.encodings) or args.batch_size <= 0:
        print("evaluate.py: error: --encodings and --batch-size must be positive", file=sys.stderr)
        return 2
    if args.draws < 0:
        print("evaluate.py: error: --draws must be >= 0", file=sys.stderr)
        return 2
    if args.draws_json and 1 not in args.encodings:
        print("evaluate.py: error: --draws-json needs 1 among --encodings (one coding per image)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        ckpt, model, encoder = load_checkpoint(args.checkpoint)
    except UsageError as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    cfg = ckpt["config"]
    if cfg.get("dataset") not in ("mnist", "fashion-mnist"):
        print(f"evaluate.py: error: static-image datasets only, the run used {cfg.get('dataset')!r}", file=sys.stderr)
        return 2
    try:
        images, labels = load_idx_dataset(cfg["dataset"], "test", args.data_dir or cfg["data_dir"])
    except DatasetNotFound as exc:
        print(f"evaluate.py: error: {exc}", file=sys.stderr)
        return 2
    if args.limit_test:
        images, labels = images[: args.limit_test], labels[: args.limit_test]
    amp = args.amp or cfg.get("amp", "none")
    dtype = torch.bfloat16 if amp == "bf16" else None
    encodings = sorted(set(args.encodings))

    def score(encodings, seed):
        g = torch.Generator().manual_seed(seed)
        return accuracy_by_encodings(model, images, labels, encoder, encodings, args.batch_size, g, dtype)

    t0 = time.time()
    result = score(encodings, args.seed)
    wall_time = time.time() - t0
    for k, acc in result.items():
        print(f"{cfg['dataset']} test, {len(labels)} images, logits of {k} coding(s) averaged: {100 * acc:.2f} %")
    extra = []
    for seed in range(args.seed + 1, args.seed + 1 + args.draws):
        extra.append((seed, score([1], seed)[1]))
        print(f"{cfg['dataset']} test, {len(labels)} images, one coding, seed {seed}: {100 * extra[-1][1]:.2f} %")
    if args.draws_json:
        evaluated = {"encodings": encodings, "seed": args.seed, "accuracy": result[1]}
        draws = single_coding_draws(args.checkpoint, len(labels), evaluated, extra)
        write_json(args.draws_json, draws)
        summary = f"mean {100 * draws['mean']:.2f} %, sd {100 * (draws['stdev'] or 0):.2f}"
        print(f"one coding per image, {len(draws['draws'])} draws: {summary}")
    if args.json:
        write_json(
            args.json,
            {
                "checkpoint": portable_path(args.checkpoint),
                "epoch": ckpt.get("epoch"),
                "images": len(labels),
                "amp": amp,
                "seed": args.seed,
                "wall_time_s": wall_time,
                "accuracy_by_encodings": {str(k): v for k, v in result.items()},
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
