"""Train the paper's SRC classifier on MNIST, Fashion-MNIST or N-MNIST.

    python examples/train.py --dataset mnist --data-dir ../shared/datasets --epochs 10 --out runs/mnist
    torchrun --nproc_per_node 2 examples/train.py --dataset mnist ...   # data-parallel (gloo / nccl)

Writes OUT/metrics.json (test_accuracy, per-epoch train_loss and test_accuracy, firing rates,
configuration, wall time), OUT/curves.png, OUT/raster.png, and OUT/checkpoint.pt after every
epoch (``--resume`` continues from it). Loss: cross-entropy on the readout integrator at the
last step. Static images are rate coded (gain 0.25; 20 silent steps, then --steps input steps).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

import srcext
from common import NMNISTFrames, StaticImages, UsageError, encoder_of, learned_dynamics, portable_options, write_json
from srcext.data import DATASETS
from srcext.models import SRCClassifier


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=list(DATASETS) + ["nmnist"])
    ap.add_argument("--data-dir", default="data", help="folder with mnist/, fashion-mnist/ (IDX) or N-MNIST")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--lr-schedule",
        default="constant",
        choices=["constant", "cosine"],
        help="cosine: decay the learning rate to 0 over --epochs",
    )
    ap.add_argument("--weight-decay", type=float, default=0.0, help="decoupled weight decay (AdamW); 0 = plain Adam")
    ap.add_argument(
        "--augment-shift",
        type=int,
        default=0,
        help="training images: random translation by up to N pixels (static images only)",
    )
    ap.add_argument(
        "--augment-flip",
        action="store_true",
        help="training images: mirrored left to right with probability 1/2 (Fashion-MNIST; not for digits)",
    )
    ap.add_argument(
        "--val-size",
        type=int,
        default=0,
        help="hold out the last N training samples to report validation accuracy (tune on this, not on the test set)",
    )
    ap.add_argument("--hidden-layers", type=int, default=1)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--neurons-per-class", type=int, default=10)
    ap.add_argument(
        "--trainable-readout",
        action="store_true",
        help="learn the readout matrix (starts as the paper's fixed +1 / -0.1 one)",
    )
    ap.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        help="probability of silencing a neuron's spikes to the next layer for a whole training sample "
        "(one mask across time; see SRCClassifier)",
    )
    ap.add_argument("--readout-decay", type=float, default=0.99)
    ap.add_argument("--weight-scale", type=float, default=4.0, help="initial weight scale (see srcext.SRC)")
    ap.add_argument(
        "--hidden-init",
        default="uniform",
        choices=["uniform", "identity"],
        help="identity: hidden-to-hidden layers start as 3 x identity + 0.25 x the uniform "
        "init, which keeps the image information through deep stacks",
    )
    ap.add_argument("--steps", type=int, default=200, help="input steps (static images) or time bins (N-MNIST)")
    ap.add_argument("--silent-steps", type=int, default=20, help="empty steps before the input (static images)")
    ap.add_argument("--gain", type=float, default=0.25, help="spike probability per unit intensity")
    ap.add_argument(
        "--limit-train",
        type=int,
        default=None,
        help="use only the first N training samples (N-MNIST: of a fixed shuffle)",
    )
    ap.add_argument(
        "--limit-test",
        type=int,
        default=None,
        help="use only the first N test samples (N-MNIST: of a fixed shuffle)",
    )
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"])
    ap.add_argument(
        "--input-projection",
        default="auto",
        choices=["auto", "dense", "sparse"],
        help="each SRC layer's input projection: the dense GEMM, event-driven, or "
        "auto (event-driven below the measured density crossover)",
    )
    ap.add_argument(
        "--detach-recurrent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the paper's gradient setting (default); --no-detach-recurrent: exact BPTT",
    )
    ap.add_argument(
        "--straight-through",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="surrogate ReLU: d spike / d h = 1 (default); --no-straight-through: the true ReLU derivative",
    )
    ap.add_argument(
        "--amp",
        default="none",
        choices=["none", "bf16", "fp16"],
        help="mixed precision: GEMMs in bf16/fp16 (torch.autocast), the recurrence "
        "storing in that dtype with float32 math, float32 master weights; fp16 "
        "(CUDA only) uses a GradScaler. bf16 is ~2.5x faster on CPUs with AMX, and slower "
        "than float32 on CPUs without native bfloat16 (AVX2 only)",
    )
    ap.add_argument(
        "--learn-dynamics",
        default="none",
        choices=["none", "per-layer", "per-neuron"],
        help="learn every cell constant (alpha, rho, r, ...) per layer or per neuron",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    ap.add_argument("--out", default="runs/train")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument(
        "--init-from",
        default=None,
        metavar="CHECKPOINT",
        help="start from the weights of a checkpoint.pt (same architecture) with a fresh "
        "optimizer, schedule and history: fine-tuning or training on",
    )
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    check_args(args)
    return args


POSITIVE = (
    "epochs",
    "batch_size",
    "hidden_size",
    "steps",
    "neurons_per_class",
    "limit_train",
    "limit_test",
    "weight_scale",
    "lr",
)
NON_NEGATIVE = ("val_size", "augment_shift", "weight_decay", "hidden_layers", "silent_steps")


def check_args(args):
    """UsageError for option values (and combinations) that cannot run."""
    for name in POSITIVE:
        value = getattr(args, name)
        if value is not None and not value > 0:  # also refuses NaN
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {value}")
    for name in NON_NEGATIVE:
        value = getattr(args, name)
        if not value >= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    if not 0 < args.gain <= 1:
        raise UsageError(f"--gain must be in (0, 1], got {args.gain}")
    if not 0 <= args.dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), got {args.dropout}")
    for name in ("augment_shift", "augment_flip"):  # the augmentations of StaticImages
        if getattr(args, name) and args.dataset == "nmnist":
            raise UsageError(f"--{name.replace('_', '-')} applies to static images (mnist, fashion-mnist), not nmnist")
    if args.init_from and args.resume:
        raise UsageError("--init-from and --resume exclude each other (--resume continues OUT's own run)")
    if args.init_from and not os.path.isfile(args.init_from):
        raise UsageError(f"--init-from: no checkpoint at {args.init_from}")
    if args.amp == "fp16" and not str(args.device).startswith("cuda"):
        raise UsageError("--amp fp16 needs --device cuda (use --amp bf16 on CPU)")


def make_data(args, split, limit):
    dtype = amp_dtype(args) or torch.float32
    if args.dataset == "nmnist":
        return NMNISTFrames(args.data_dir, split, args.steps, limit, dtype, val_size=args.val_size)
    return StaticImages(
        args.dataset,
        args.data_dir,
        split,
        encoder_of(vars(args)),
        limit,
        val_size=args.val_size,
        shift=args.augment_shift,
        flip=args.augment_flip,
        dtype=dtype,
    )


def amp_dtype(args):
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]


def autocast(args, device):
    """The --amp context for forward passes (a no-op with --amp none)."""
    dtype = amp_dtype(args)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def native_cpu_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX). Without it (AVX2),
    oneDNN emulates bfloat16 GEMMs: slower than float32 (here 4 s against 1.3 s per dense
    MNIST 1 x 512 training step)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: True)() for name in probes)


def progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


# ---- one training run: setup, epochs, checkpoint and results --------------------------------


@dataclass
class Run:
    """What the epochs of a run share: the options, the process group, data, model, optimizer
    and the history so far (restored by --resume)."""

    args: argparse.Namespace
    device: torch.device
    rank: int
    world: int
    train_data: object
    test_data: object
    val_data: object
    model: SRCClassifier
    ddp_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    scheduler: object
    history: list = field(default_factory=list)
    start_epoch: int = 0
    elapsed: float = 0.0
    init_from_epochs: Optional[int] = None
    # --resume with another --epochs: [{"after_epoch", "epochs_before", "epochs"}], in order.
    schedule_changes: list = field(default_factory=list)

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def checkpoint_path(self):
        return os.path.join(self.args.out, "checkpoint.pt")

    @property
    def parameters(self):
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, or with weight_decay > 0 AdamW decaying the weight matrices only: a bias or a
    learned cell constant (stored raw, see srcext.SRC) has no neutral value at 0 to decay to;
    decaying a constant's raw value would drag the cell's dynamics towards arbitrary ones."""
    if not weight_decay:
        return torch.optim.Adam(model.parameters(), lr=lr)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=lr)


def setup(args) -> Run:
    """Device and process group, data, model and optimizer; the state of OUT's checkpoint
    with --resume, the weights of another with --init-from."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda but no CUDA device is available")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cpu" and args.amp == "bf16" and rank == 0 and not native_cpu_bfloat16():
        print(
            "train.py: note: this CPU has no native bfloat16 (AVX512-BF16 or AMX): --amp bf16 "
            "is emulated and slower than float32 here; --amp none trains faster",
            file=sys.stderr,
            flush=True,
        )
    if not args.val_size and rank == 0:
        # settings chosen on the test set overstate accuracy; say so where it happens
        print(
            "train.py: note: no validation split (--val-size 0), so the test set is scored after "
            "every epoch; hold out --val-size 5000 and choose settings on its accuracy",
            file=sys.stderr,
            flush=True,
        )
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(args.seed)

    train_data = make_data(args, "train", args.limit_train)
    model = SRCClassifier(
        train_data.input_size,
        hidden_layers=args.hidden_layers,
        hidden_size=args.hidden_size,
        neurons_per_class=args.neurons_per_class,
        readout_decay=args.readout_decay,
        trainable_readout=args.trainable_readout,
        dropout=args.dropout,
        weight_scale=args.weight_scale,
        hidden_init=args.hidden_init,
        backend=args.backend,
        detach_recurrent=args.detach_recurrent,
        straight_through=args.straight_through,
        input_projection=args.input_projection,
        **learned_dynamics(args.learn_dynamics),
    ).to(device)
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    run = Run(
        args,
        device,
        rank,
        world,
        train_data,
        test_data=make_data(args, "test", args.limit_test),
        val_data=make_data(args, "val", None) if args.val_size else None,
        model=model,
        ddp_model=torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model,
        optimizer=optimizer,
        scaler=torch.amp.GradScaler(device.type, enabled=args.amp == "fp16"),
        scheduler=(
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
            if args.lr_schedule == "cosine"
            else None
        ),
    )
    os.makedirs(args.out, exist_ok=True)
    if args.resume:
        if not os.path.exists(run.checkpoint_path):
            raise UsageError(f"--resume: no checkpoint at {run.checkpoint_path}")
        ckpt = torch.load(run.checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except ValueError as exc:  # another parameter grouping: --weight-decay differs
            raise UsageError(
                f"--resume: the optimizer state in {run.checkpoint_path} does not fit this run "
                f"(resume with the run's own --weight-decay; a train.py from before the weight "
                f"decay skipped biases and cell constants wrote other groups): {exc}"
            ) from None
        if ckpt.get("scaler") is not None:
            run.scaler.load_state_dict(ckpt["scaler"])
        if run.scheduler is not None and ckpt.get("scheduler") is not None:
            run.scheduler.load_state_dict(ckpt["scheduler"])
        run.history, run.start_epoch, run.elapsed = ckpt["history"], ckpt["epoch"], ckpt["wall_time_s"]
        run.init_from_epochs = ckpt.get("init_from_epochs")
        run.schedule_changes = list(ckpt.get("schedule_changes", []))
        change_schedule(run, ckpt.get("config", {}).get("epochs", args.epochs))
    elif args.init_from:
        source = torch.load(args.init_from, map_location=device, weights_only=False)
        run.init_from_epochs = source.get("epoch")
        try:
            model.load_state_dict(source["model"])
        except (KeyError, RuntimeError) as exc:
            raise UsageError(
                f"--init-from {args.init_from} does not fit this model "
                f"(same --hidden-layers, --hidden-size, dataset?): {exc}"
            ) from None
    return run


def change_schedule(run: Run, epochs_before: int) -> None:
    """--resume with another --epochs (to extend a run, or to end it sooner): from the next
    epoch on, the cosine schedule is the one a run planned for the new total would have (the
    learning rate set to it now, reaching 0 after the new last epoch), and the change is
    recorded in the checkpoint and metrics.json. Without this the restored scheduler would keep
    the old total: never annealed, or stuck at 0 / restarted past its end."""
    args = run.args
    if args.epochs == epochs_before:
        return
    if args.epochs <= run.start_epoch:
        raise UsageError(f"--resume --epochs {args.epochs}: the run has already trained {run.start_epoch} epochs")
    sched = run.scheduler
    if sched is not None:
        sched.T_max = args.epochs
        position = (1 + math.cos(math.pi * sched.last_epoch / sched.T_max)) / 2
        for group, base in zip(run.optimizer.param_groups, sched.base_lrs):
            group["lr"] = sched.eta_min + (base - sched.eta_min) * position
    run.schedule_changes.append({"after_epoch": run.start_epoch, "epochs_before": epochs_before, "epochs": args.epochs})


def train_epoch(run: Run, epoch: int) -> dict:
    """One pass over this process's share of the training data, then the validation
    accuracy: the epoch's entry of the history. With a validation split the test set is
    scored after the last epoch only (settings are chosen on validation, the test set is
    touched once); without one, after every epoch."""
    args, device, model = run.args, run.device, run.model
    t0 = time.time()
    model.train()
    gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
    order = torch.randperm(len(run.train_data), generator=gen)[run.rank :: run.world]
    enc_gen = torch.Generator(device=device).manual_seed(args.seed * 1000 + epoch + 7 * run.rank)
    total_loss, correct, seen = 0.0, 0, 0
    n_batches = math.ceil(len(order) / args.batch_size)
    bar = progress(
        run.train_data.batches(order, args.batch_size, device, enc_gen),
        n_batches,
        f"epoch {epoch + 1}/{args.epochs}",
        run.is_main and not args.no_progress,
    )
    for x, y in bar:
        with autocast(args, device):
            logits = run.ddp_model(x)
        loss = F.cross_entropy(logits.float(), y)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
    stats = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=device)
    if run.world > 1:
        dist.all_reduce(stats)
    if run.scheduler is not None:
        run.scheduler.step()
    last = epoch + 1 == args.epochs
    test_acc = evaluate(run, run.test_data) if last or not run.val_data else None
    val_acc = evaluate(run, run.val_data) if run.val_data else None
    run.elapsed += time.time() - t0
    return {
        "epoch": epoch + 1,
        "train_loss": stats[0].item() / stats[2].item(),
        "train_accuracy": stats[1].item() / stats[2].item(),
        "test_accuracy": test_acc,
        "val_accuracy": val_acc,
        "epoch_time_s": time.time() - t0,
    }


def evaluate(run: Run, data) -> float:
    """Accuracy on `data`, each process scoring its share."""
    run.model.eval()
    indices = torch.arange(len(data))[run.rank :: run.world]
    gen = torch.Generator(device=run.device).manual_seed(10_000 + run.args.seed)
    correct = torch.zeros((), dtype=torch.float64, device=run.device)
    total = torch.zeros((), dtype=torch.float64, device=run.device)
    with torch.no_grad(), autocast(run.args, run.device):
        for x, y in data.batches(indices, run.args.batch_size, run.device, gen):
            correct += (run.model(x).argmax(1) == y).sum()
            total += len(y)
    if run.world > 1:
        dist.all_reduce(correct)
        dist.all_reduce(total)
    return (correct / total.clamp_min(1)).item()


def save_checkpoint(run: Run) -> None:
    """OUT/checkpoint.pt: what --resume continues from, and what evaluate.py and
    signal_propagation.py load (the model's own config rebuilds it)."""
    torch.save(
        {
            "model": run.model.state_dict(),
            "model_config": run.model.config(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": None if run.scheduler is None else run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "history": run.history,
            "epoch": run.history[-1]["epoch"],
            "wall_time_s": run.elapsed,
            "init_from_epochs": run.init_from_epochs,
            "schedule_changes": run.schedule_changes,
            "config": portable_options(vars(run.args)),
        },
        run.checkpoint_path,
    )


def write_results(run: Run) -> None:
    """OUT/metrics.json, curves.png and raster.png."""
    args, history = run.args, run.history
    metrics = {
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "train_loss": [h["train_loss"] for h in history],
        "test_accuracy_per_epoch": [h["test_accuracy"] for h in history],
        "val_accuracy_per_epoch": [h.get("val_accuracy") for h in history],
        "epochs": len(history),
        "wall_time_s": run.elapsed,
        "firing_rate": firing_rates(run),
        "parameters": run.parameters,
        "processes": run.world,
        "history": history,
        "init_from_epochs": run.init_from_epochs,
        "schedule_changes": run.schedule_changes,
        "config": portable_options(vars(args)),
        "torch": torch.__version__,
        "srcext": srcext.__version__,
    }
    write_json(os.path.join(args.out, "metrics.json"), metrics)
    try:
        plot(args.out, history, run.model, run.test_data, run.device, args)
        plots = ", curves.png, raster.png"
    except ImportError:  # the checkpoint and metrics are written: the plots alone are lost
        plots = " (plots skipped: matplotlib is not installed; pip install matplotlib, or the [examples] extra)"
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f}%; wrote {args.out}/metrics.json{plots}", flush=True)


def firing_rates(run: Run, samples=256):
    """Per layer, the firing rate on the first `samples` test samples."""
    run.model.eval()
    gen = torch.Generator(device=run.device).manual_seed(1)
    totals, count = None, 0
    with torch.no_grad(), autocast(run.args, run.device):
        indices = torch.arange(min(samples, len(run.test_data)))
        for x, _ in run.test_data.batches(indices, run.args.batch_size, run.device, gen):
            _, spikes = run.model(x, return_spikes=True)
            rates = torch.tensor(SRCClassifier.firing_rates(spikes)) * x.shape[1]
            totals = rates if totals is None else totals + rates
            count += x.shape[1]
    return [] if totals is None else (totals / count).tolist()


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(out, history):
    """OUT/curves.png from a run's per-epoch history: the training loss, and the training,
    validation and test accuracies side by side (training above validation shows overfitting,
    both low and still rising shows underfitting). Returns the accuracies drawn."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch"), a.set_ylabel("train loss")
    drawn = []
    for key, color in (("train_accuracy", "C0"), ("val_accuracy", "C2"), ("test_accuracy", "C1")):
        points = [(h["epoch"], 100 * h[key]) for h in history if h.get(key) is not None]
        if points:
            label = key.split("_")[0]
            b.plot(*zip(*points), marker="o", color=color, label=label)
            drawn.append(label)
    b.set_xlabel("epoch"), b.set_ylabel("accuracy (%)"), b.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=100)
    plt.close(fig)
    return drawn


def plot(out, history, model, test_data, device, args):
    plot_curves(out, history)
    plt = pyplot()

    gen = torch.Generator(device=device).manual_seed(0)
    x, y = next(test_data.batches(torch.arange(1), 1, device, gen))
    with torch.no_grad(), autocast(args, device):
        _, spikes = model(x, return_spikes=True)
    layers = [x] + spikes
    fig, axes = plt.subplots(len(layers), 1, figsize=(8, 1.6 * len(layers)), sharex=True)
    for ax, s, name in zip(axes, layers, ["input"] + [f"layer {i + 1}" for i in range(len(spikes))]):
        t, n = torch.nonzero(s[:, 0] > 0, as_tuple=True)
        ax.scatter(t.cpu(), n.cpu(), s=0.5, c="k")
        ax.set_ylabel(name)
    axes[-1].set_xlabel(f"time step (test sample 0, label {int(y[0])})")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "raster.png"), dpi=100)
    plt.close(fig)


def run(args):
    run = setup(args)
    if run.is_main:
        print(
            f"srcext {srcext.__version__}: {args.dataset}, {len(run.train_data)} train / "
            f"{len(run.test_data)} test, {args.hidden_layers} hidden x {args.hidden_size}, "
            f"{run.parameters} parameters, device {run.device}, {run.world} process(es)",
            flush=True,
        )
    for epoch in range(run.start_epoch, args.epochs):
        h = train_epoch(run, epoch)
        run.history.append(h)
        if run.is_main:
            scores = "".join(
                f"{name} acc {100 * h[key]:.2f}%, "
                for name, key in (("val", "val_accuracy"), ("test", "test_accuracy"))
                if h[key] is not None
            )
            print(
                f"epoch {h['epoch']}/{args.epochs}: train loss {h['train_loss']:.4f}, train acc "
                f"{100 * h['train_accuracy']:.2f}%, {scores}{h['epoch_time_s']:.0f} s",
                flush=True,
            )
            save_checkpoint(run)
    if run.is_main:
        write_results(run)
    if run.world > 1:
        # Free the gloo group now, while the interpreter is whole: it sits in a reference
        # cycle, and freed at shutdown its worker threads abort the process (torch 2.14).
        del run
        dist.destroy_process_group()
        gc.collect()


def main(argv=None) -> int:
    try:
        run(parse_args(argv))
    except UsageError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
