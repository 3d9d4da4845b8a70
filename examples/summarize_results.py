"""Collect every examples/results/**/metrics.json into one table.

    python examples/summarize_results.py                 # markdown table on stdout
    python examples/summarize_results.py --json examples/results/summary.json

One row per run: dataset, network, epochs, test accuracy at the last epoch (the number we
report; never the best test epoch), the validation accuracy it was chosen on when a
validation split was used, wall time, firing rate per layer and parameter count. A run
started with ``--init-from`` shows its epochs as "earlier + its own"; a run folder with an
``evaluate_encodings.json`` (written by ``examples/evaluate.py --json``) also shows the test
accuracy with the logits of several rate codings averaged.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def earlier_epochs(init_from, metrics):
    """Epochs the starting checkpoint of an --init-from run had been trained for (or None)."""
    if not init_from:
        return None
    if metrics.get("init_from_epochs") is not None:
        return metrics["init_from_epochs"]
    for base in ("", REPO):
        source = _json(os.path.join(base, os.path.dirname(init_from), "metrics.json"))
        if source is not None:
            return source.get("epochs")
    return None


def load_runs(root: str = RESULTS):
    runs = []
    for path in sorted(glob.glob(os.path.join(root, "**", "metrics.json"), recursive=True)):
        with open(path) as f:
            m = json.load(f)
        cfg = m.get("config", {})
        val = [v for v in m.get("val_accuracy_per_epoch", []) if v is not None]
        codings = (_json(os.path.join(os.path.dirname(path), "evaluate_encodings.json")) or {}).get(
            "accuracy_by_encodings", {})
        runs.append({
            "run": os.path.relpath(os.path.dirname(path), root),
            "dataset": cfg.get("dataset"),
            "hidden_layers": cfg.get("hidden_layers"),
            "hidden_size": cfg.get("hidden_size"),
            "epochs": m.get("epochs"),
            "test_accuracy": m.get("test_accuracy"),
            "val_accuracy": val[-1] if val else None,
            "wall_time_s": m.get("wall_time_s"),
            "firing_rate": m.get("firing_rate", []),
            "parameters": m.get("parameters"),
            "amp": cfg.get("amp", "none"),
            "lr_schedule": cfg.get("lr_schedule", "constant"),
            "threads": cfg.get("threads"),
            "augment_shift": cfg.get("augment_shift", 0),
            "earlier_epochs": earlier_epochs(cfg.get("init_from"), m),
            "accuracy_by_encodings": {int(k): v for k, v in codings.items()},
        })
    return runs


def network(run) -> str:
    hidden = f"{run['hidden_layers']} x {run['hidden_size']}" if run["hidden_layers"] else "none"
    return f"hidden {hidden}"


def markdown(runs) -> str:
    lines = ["| run | dataset | network | epochs | test accuracy | val accuracy | wall time | "
             "firing rate per layer | parameters | codings averaged |", "|---" * 10 + "|"]
    for r in runs:
        pct = lambda v: "" if v is None else f"{100 * v:.2f} %"
        rates = ", ".join(f"{100 * v:.1f}" for v in r["firing_rate"]) + " %"
        wall = "" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.0f} min"
        epochs = r["epochs"] if r["earlier_epochs"] is None else f"{r['earlier_epochs']} + {r['epochs']}"
        codings = ", ".join(f"{pct(v)} ({k})" for k, v in sorted(r["accuracy_by_encodings"].items()) if k > 1)
        lines.append(f"| {r['run']} | {r['dataset']} | {network(r)} | {epochs} | "
                     f"{pct(r['test_accuracy'])} | {pct(r['val_accuracy'])} | {wall} | {rates} | "
                     f"{r['parameters']:,} | {codings} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=RESULTS, help="folder searched for metrics.json files")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    runs = load_runs(args.root)
    if not runs:
        print(f"no metrics.json under {args.root}", file=sys.stderr)
        return 1
    print(markdown(runs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
