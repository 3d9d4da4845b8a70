"""Compare two train.py runs that differ only in --learn-dynamics (fixed against learned cell
constants): accuracies side by side, and the distributions of the learned constants.

    python examples/compare_dynamics.py FIXED_RUN LEARNED_RUN --out examples/results/DIR

Each RUN is a train.py output folder (its checkpoint.pt and metrics.json). Writes, under OUT:
metrics.json (both runs' validation and test accuracy, per-epoch validation curves, epochs,
wall time, the options that differ), learned_constants.json (per layer and constant of the
learned run: initial value, mean, standard deviation, quantiles, range) and
learned_constants.png (a histogram per constant and layer, the initial value marked).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from common import UsageError, load_checkpoint, portable_options, write_json
from srcext.constants import CELL_CONSTANTS

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def read_run(folder: str) -> tuple:
    """(metrics, model) of a finished train.py run."""
    try:
        with open(os.path.join(folder, "metrics.json")) as f:
            metrics = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{folder}: no readable metrics.json ({exc})") from None
    _, model, _ = load_checkpoint(os.path.join(folder, "checkpoint.pt"))
    return metrics, model


def run_summary(metrics: dict) -> dict:
    history = metrics["history"]
    val = [h.get("val_accuracy") for h in history]
    return {
        "test_accuracy": metrics["test_accuracy"],
        "val_accuracy": val[-1],
        "best_val_accuracy": max((v for v in val if v is not None), default=None),
        "val_accuracy_per_epoch": val,
        "train_accuracy": history[-1]["train_accuracy"],
        "epochs": metrics["epochs"],
        "wall_time_s": metrics["wall_time_s"],
        "firing_rate": metrics["firing_rate"],
        "learn_dynamics": metrics["config"].get("learn_dynamics", "none"),
    }


def layer_names(model) -> list:
    n = len(model.layers)
    return [f"hidden {i + 1} ({layer.hidden_size})" for i, layer in enumerate(model.layers[:-1])] + [
        f"output ({model.layers[n - 1].hidden_size})"
    ]


def constant_distributions(learned, fixed) -> dict:
    """constant -> layer -> statistics of the learned values, with the fixed run's value."""
    out = {}
    names = layer_names(learned)
    for k, name in enumerate(CELL_CONSTANTS):
        out[name] = {}
        for layer_name, layer, reference in zip(names, learned.layers, fixed.layers):
            values = layer.cell_constants().detach().double()[k].flatten()
            initial = float(reference.cell_constants().double()[k].flatten()[0])
            q = torch.quantile(values, torch.tensor(QUANTILES, dtype=values.dtype)).tolist()
            out[name][layer_name] = {
                "initial": initial,
                "mean": values.mean().item(),
                "std": values.std(unbiased=False).item(),
                "min": values.min().item(),
                "max": values.max().item(),
                "quantiles": dict(zip((f"q{int(100 * p):02d}" for p in QUANTILES), q)),
                "moved": bool((values != initial).any()),
            }
    return out


def plot(path: str, learned, fixed) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = layer_names(learned)
    fig, axes = plt.subplots(len(names), len(CELL_CONSTANTS), figsize=(2.2 * len(CELL_CONSTANTS), 2.2 * len(names)))
    axes = [axes] if len(names) == 1 else axes
    for row, (layer_name, layer, reference) in enumerate(zip(names, learned.layers, fixed.layers)):
        values = layer.cell_constants().detach().float()
        initial = reference.cell_constants().float()
        for k, name in enumerate(CELL_CONSTANTS):
            ax = axes[row][k]
            ax.hist(values[k].flatten().numpy(), bins=40, color="C0")
            ax.axvline(float(initial[k].flatten()[0]), color="C3", lw=1)
            ax.set_title(f"{name}\n{layer_name}", fontsize=8)
            ax.tick_params(labelsize=6)
    fig.suptitle("learned per-neuron constants (red: the fixed value they start from)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("fixed", help="train.py folder of the run with fixed constants")
    ap.add_argument("learned", help="train.py folder of the run with learned constants")
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default=None, help="a sentence on the budget and machine, kept in metrics.json")
    args = ap.parse_args(argv)
    try:
        fixed_metrics, fixed = read_run(args.fixed)
        learned_metrics, learned = read_run(args.learned)
    except UsageError as exc:
        print(f"compare_dynamics.py: error: {exc}", file=sys.stderr)
        return 2
    a, b = (portable_options(m["config"]) for m in (fixed_metrics, learned_metrics))
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in ("out", "resume", "init_from"))
    if differ != ["learn_dynamics"]:
        print(f"compare_dynamics.py: error: the runs differ in {differ}, not --learn-dynamics alone", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    shared = {k: v for k, v in a.items() if k not in ("out", "resume", "init_from", "learn_dynamics")}
    write_json(
        os.path.join(args.out, "metrics.json"),
        {
            "experiment": "learned cell constants against fixed ones: same model, seed, data, schedule and budget",
            "note": args.note,
            "runs": {"fixed": run_summary(fixed_metrics), "learned": run_summary(learned_metrics)},
            "config": shared,
            "torch": learned_metrics.get("torch"),
            "srcext": learned_metrics.get("srcext"),
        },
    )
    write_json(os.path.join(args.out, "learned_constants.json"), constant_distributions(learned, fixed))
    plot(os.path.join(args.out, "learned_constants.png"), learned, fixed)
    print(f"wrote {args.out}/metrics.json, learned_constants.json, learned_constants.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
