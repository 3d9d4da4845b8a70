"""Collect every examples/results/**/metrics.json into one table, and regenerate the tables of
docs/results.md from the committed JSON.

    python examples/summarize_results.py                 # markdown table on stdout
    python examples/summarize_results.py --json examples/results/summary.json
    python examples/summarize_results.py --update docs/results.md   # rewrite its tables
    python examples/summarize_results.py --check docs/results.md    # exit 1 if any is stale

One row per run: dataset, network, epochs, test accuracy at the last epoch (the number we
report; never the best test epoch), the validation accuracy it was chosen on when a
validation split was used, wall time, firing rate per layer and parameter count. A run
started with ``--init-from`` shows its epochs as "earlier + its own"; a run folder with an
``evaluate_encodings.json`` (written by ``examples/evaluate.py --json``) also shows the test
accuracy with the logits of several rate codings averaged.

In a document, a table stands between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->``;
NAME is one of TABLES: the reproductions (``runs``), the accuracies with several codings
averaged (``codings``), the depth series (``depth``), all from examples/results, and the CPU
speed tables (``speed_recurrence``, ``speed_kernels`` from benchmarks/results/speed_cpu.json,
``speed_peers`` from speed_cpu_peers.json) and the H200's (``speed_h200_recurrence``,
``speed_h200_kernels``, ``speed_h200_layers`` from h200.json), as ``benchmarks/speed.py
--markdown`` prints them.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import sys

from common import INPUT_SIZES, write_json

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def source_metrics(init_from):
    """The metrics.json of the run whose checkpoint an --init-from run started from (or None)."""
    if not init_from:
        return None
    for base in ("", REPO):
        source = _json(os.path.join(base, os.path.dirname(init_from), "metrics.json"))
        if source is not None:
            return source
    return None


def earlier_epochs(init_from, metrics):
    """Epochs the starting checkpoint of an --init-from run had been trained for (or None)."""
    if not init_from:
        return None
    if metrics.get("init_from_epochs") is not None:
        return metrics["init_from_epochs"]
    return (source_metrics(init_from) or {}).get("epochs")


def load_runs(root: str = RESULTS):
    runs = []
    for path in sorted(glob.glob(os.path.join(root, "**", "metrics.json"), recursive=True)):
        with open(path) as f:
            m = json.load(f)
        if "epochs" not in m:  # not a train.py run (e.g. packed_sequence.py's)
            continue
        cfg = m.get("config", {})
        val = [v for v in m.get("val_accuracy_per_epoch", []) if v is not None]
        codings = (_json(os.path.join(os.path.dirname(path), "evaluate_encodings.json")) or {}).get(
            "accuracy_by_encodings", {}
        )
        runs.append(
            {
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
                "augment_flip": cfg.get("augment_flip", False),
                "weight_decay": cfg.get("weight_decay", 0.0),
                "dropout": cfg.get("dropout", 0.0),
                "trainable_readout": cfg.get("trainable_readout", False),
                "lr": cfg.get("lr"),
                "hidden_init": cfg.get("hidden_init") or "uniform",
                "learn_dynamics": cfg.get("learn_dynamics") or "none",
                "input_projection": cfg.get("input_projection") or "auto",
                "neurons_per_class": cfg.get("neurons_per_class", 10),
                "init_from": cfg.get("init_from"),
                "schedule_changes": m.get("schedule_changes") or [],
                "earlier_epochs": earlier_epochs(cfg.get("init_from"), m),
                "earlier_wall_time_s": (source_metrics(cfg.get("init_from")) or {}).get("wall_time_s"),
                "accuracy_by_encodings": {int(k): v for k, v in codings.items()},
            }
        )
    return runs


def network(run) -> str:
    hidden = f"{run['hidden_layers']} x {run['hidden_size']}" if run["hidden_layers"] else "none"
    return f"hidden {hidden}"


def markdown(runs) -> str:
    lines = [
        "| run | dataset | network | epochs | test accuracy | val accuracy | wall time | "
        "firing rate per layer | parameters | codings averaged |",
        "|---" * 10 + "|",
    ]
    for r in runs:
        rates = ", ".join(f"{100 * v:.1f}" for v in r["firing_rate"]) + " %"
        wall = "" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.0f} min"
        epochs = r["epochs"] if r["earlier_epochs"] is None else f"{r['earlier_epochs']} + {r['epochs']}"
        codings = ", ".join(f"{_pct(v)} ({k})" for k, v in sorted(r["accuracy_by_encodings"].items()) if k > 1)
        lines.append(
            f"| {r['run']} | {r['dataset']} | {network(r)} | {epochs} | "
            f"{_pct(r['test_accuracy'])} | {_pct(r['val_accuracy'])} | {wall} | {rates} | "
            f"{r['parameters']:,} | {codings} |"
        )
    return "\n".join(lines)


# ---- the tables of docs/results.md ---------------------------------------------------------

DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "nmnist": "N-MNIST"}


def _pct(v) -> str:
    return "" if v is None else f"{100 * v:.2f} %"


def _minutes(run) -> str:
    own = f"{run['wall_time_s'] / 60:.0f} min"
    if run["earlier_epochs"] is None:
        return own
    earlier = run["earlier_wall_time_s"]
    return f"{'?' if earlier is None else f'{earlier / 60:.0f}'} + {own}"


def _lr(lr: float) -> str:
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _epochs(run) -> str:
    return str(run["epochs"]) if run["earlier_epochs"] is None else f"{run['earlier_epochs']} + {run['epochs']}"


def _training(run) -> str:
    """How a run was trained, from its options: learning rate and schedule, precision,
    threads, and the options that differ from train.py's defaults."""
    schedule = f"lr {_lr(run['lr'])} {run['lr_schedule']}"
    changes = run.get("schedule_changes", [])  # train.py --resume with another --epochs, in order
    if changes:
        steps = ", ".join(f"{c['epochs']} from epoch {c['after_epoch'] + 1}" for c in changes)
        schedule += f" (planned for {changes[0]['epochs_before']} epochs, {steps})"
    parts = [
        schedule,
        "float32" if run["amp"] in (None, "none") else f"`--amp {run['amp']}`",
    ]
    if run["threads"] and run["threads"] > 1:
        parts.append(f"{run['threads']} threads")
    if run["augment_shift"]:
        parts.append(f"`--augment-shift {run['augment_shift']}`")
    if run["augment_flip"]:
        parts.append("`--augment-flip`")
    if run["weight_decay"]:
        parts.append(f"`--weight-decay {run['weight_decay']:g}`")
    if run["dropout"]:
        parts.append(f"`--dropout {run['dropout']:g}`")
    if run["trainable_readout"]:
        parts.append("`--trainable-readout`")
    if run["hidden_init"] != "uniform":
        parts.append(f"`--hidden-init {run['hidden_init']}`")
    if run["init_from"]:
        parts.append(f"`--init-from` {os.path.basename(os.path.dirname(run['init_from']))}")
    if run["learn_dynamics"] != "none":
        parts.append(f"`--learn-dynamics {run['learn_dynamics']}`")
    if run["input_projection"] != "auto":
        parts.append(f"`--input-projection {run['input_projection']}`")
    return ", ".join(parts)


def _network(run) -> str:
    sizes = (
        [INPUT_SIZES.get(run["dataset"], "?")]
        + [f"SRC {run['hidden_size']}"] * run["hidden_layers"]
        + [f"SRC {10 * run['neurons_per_class']}"]
    )
    return " -> ".join(str(s) for s in sizes)


def runs_table(runs) -> str:
    lines = [
        "| run | dataset | network | training | epochs | test accuracy | val accuracy | wall time "
        "| firing rate per layer | parameters |",
        "|---" * 10 + "|",
    ]
    for r in runs:
        rates = ", ".join(f"{100 * v:.1f}" for v in r["firing_rate"]) + " %"
        lines.append(
            f"| {r['run']} | {DATASET_NAMES.get(r['dataset'], r['dataset'])} | {_network(r)} | "
            f"{_training(r)} | {_epochs(r)} | **{_pct(r['test_accuracy'])}** | "
            f"{_pct(r['val_accuracy'])} | {_minutes(r)} | {rates} | {r['parameters']:,} |"
        )
    return "\n".join(lines)


def codings_table(runs) -> str:
    ks = sorted({k for r in runs for k in r["accuracy_by_encodings"]})
    lines = [
        "| run | epochs | " + " | ".join(f"{k} coding{'s' if k > 1 else ''}" for k in ks) + " |",
        "|---" * (len(ks) + 2) + "|",
    ]
    for r in runs:
        cells = [_pct(r["accuracy_by_encodings"].get(k)) for k in ks]
        lines.append(f"| {r['run']} | {_epochs(r)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def depth_table(runs) -> str:
    lines = [
        "| run | hidden layers | training | epochs | test accuracy | val accuracy | wall time "
        "| firing rate (hidden mean, output) | parameters |",
        "|---" * 9 + "|",
    ]
    for r in sorted(runs, key=lambda r: (r["hidden_layers"], r["earlier_epochs"] is not None)):
        hidden = r["firing_rate"][:-1]
        rates = (f"{100 * sum(hidden) / len(hidden):.1f} %, " if hidden else "") + f"{100 * r['firing_rate'][-1]:.1f} %"
        lines.append(
            f"| {r['run']} | {r['hidden_layers']} | {_training(r)} | {_epochs(r)} | "
            f"**{_pct(r['test_accuracy'])}** | {_pct(r['val_accuracy'])} | {_minutes(r)} | {rates} | "
            f"{r['parameters']:,} |"
        )
    return "\n".join(lines)


def speed_tables(path: str):
    """The tables ``benchmarks/speed.py --markdown`` prints for a result file."""
    benchmarks = os.path.join(REPO, "benchmarks")
    if benchmarks not in sys.path:  # speed.py imports its sibling machine.py, as when run
        sys.path.insert(0, benchmarks)
    spec = importlib.util.spec_from_file_location("speed", os.path.join(benchmarks, "speed.py"))
    speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(speed)
    with open(path) as f:
        return speed.markdown(json.load(f)).strip().split("\n\n")


def tables(root: str = RESULTS, bench: str = os.path.join(REPO, "benchmarks", "results")) -> dict:
    """{NAME: markdown table} for every table of docs/results.md."""
    runs = load_runs(root)
    depth = [r for r in runs if r["run"].startswith("depth" + os.sep)]
    out = {
        "runs": runs_table([r for r in runs if r not in depth]),
        "codings": codings_table([r for r in runs if r["accuracy_by_encodings"]]),
        "depth": depth_table(depth),
    }
    default, peers, h200 = (
        speed_tables(os.path.join(bench, "speed_cpu.json")),
        speed_tables(os.path.join(bench, "speed_cpu_peers.json")),
        speed_tables(os.path.join(bench, "h200.json")),
    )
    out.update(speed_recurrence=default[0], speed_kernels=default[1], speed_peers=peers[2])
    out.update(speed_h200_recurrence=h200[0], speed_h200_kernels=h200[1], speed_h200_layers=h200[2])
    return out


BLOCK = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(\n<!-- /results:\2 -->)", re.S)


def update(text: str, generated: dict) -> str:
    """`text` with every marked table replaced by its generated form."""

    def replace(m):
        if m.group(2) not in generated:
            raise KeyError(f"unknown table {m.group(2)!r}; known: {', '.join(sorted(generated))}")
        return m.group(1) + generated[m.group(2)] + m.group(4)

    return BLOCK.sub(replace, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=RESULTS, help="folder searched for metrics.json files")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    ap.add_argument("--update", metavar="DOC", help="rewrite the marked tables of DOC (docs/results.md)")
    ap.add_argument("--check", metavar="DOC", help="exit 1 if a marked table of DOC is not current")
    args = ap.parse_args(argv)
    if args.update or args.check:
        path = args.update or args.check
        with open(path) as f:
            text = f.read()
        new = update(text, tables(args.root))
        if args.check:
            if new != text:
                print(f"{path}: tables out of date; run examples/summarize_results.py --update {path}", file=sys.stderr)
                return 1
            return 0
        with open(path, "w") as f:
            f.write(new)
        return 0
    runs = load_runs(args.root)
    if not runs:
        print(f"no metrics.json under {args.root}", file=sys.stderr)
        return 1
    print(markdown(runs))
    if args.json:
        write_json(args.json, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
