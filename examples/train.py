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
import json
import math
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F

import srcext
from srcext.data import (DATASETS, DatasetNotFound, RateEncoder, collate_frames,
                         load_idx_dataset, nmnist_dataset, random_shift)
from srcext.models import SRCClassifier


class UsageError(Exception):
    """A bad option or missing data: reported as one line, exit status 2."""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=list(DATASETS) + ["nmnist"])
    ap.add_argument("--data-dir", default="data", help="folder with mnist/, fashion-mnist/ (IDX) or N-MNIST")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                    help="cosine: decay the learning rate to 0 over --epochs")
    ap.add_argument("--weight-decay", type=float, default=0.0,
                    help="decoupled weight decay (AdamW); 0 = plain Adam")
    ap.add_argument("--augment-shift", type=int, default=0,
                    help="training images: random translation by up to N pixels (static images only)")
    ap.add_argument("--val-size", type=int, default=0,
                    help="hold out the last N training samples to report validation accuracy "
                         "(tune on this, not on the test set)")
    ap.add_argument("--hidden-layers", type=int, default=1)
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--neurons-per-class", type=int, default=10)
    ap.add_argument("--trainable-readout", action="store_true",
                    help="learn the readout matrix (starts as the paper's fixed +1 / -0.1 one)")
    ap.add_argument("--readout-decay", type=float, default=0.99)
    ap.add_argument("--weight-scale", type=float, default=4.0, help="initial weight scale (see srcext.SRC)")
    ap.add_argument("--hidden-init", default="uniform", choices=["uniform", "identity"],
                    help="identity: hidden-to-hidden layers start as 3 x identity + 0.25 x the uniform "
                         "init, which keeps the image information through deep stacks")
    ap.add_argument("--steps", type=int, default=200, help="input steps (static images) or time bins (N-MNIST)")
    ap.add_argument("--silent-steps", type=int, default=20, help="empty steps before the input (static images)")
    ap.add_argument("--gain", type=float, default=0.25, help="spike probability per unit intensity")
    ap.add_argument("--limit-train", type=int, default=None, help="use only the first N training samples")
    ap.add_argument("--limit-test", type=int, default=None, help="use only the first N test samples")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--backend", default="auto", choices=["auto", "fused", "reference"])
    ap.add_argument("--input-projection", default="auto", choices=["auto", "dense", "sparse"],
                    help="each SRC layer's input projection: the dense GEMM, event-driven, or "
                         "auto (event-driven below the measured density crossover)")
    ap.add_argument("--detach-recurrent", action=argparse.BooleanOptionalAction, default=True,
                    help="the paper's gradient setting (default); --no-detach-recurrent: exact BPTT")
    ap.add_argument("--straight-through", action=argparse.BooleanOptionalAction, default=True,
                    help="surrogate ReLU: d spike / d h = 1 (default); --no-straight-through: "
                         "the true ReLU derivative")
    ap.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"],
                    help="mixed precision: GEMMs in bf16/fp16 (torch.autocast), the recurrence "
                         "storing in that dtype with float32 math, float32 master weights; fp16 "
                         "(CUDA only) uses a GradScaler. bf16 is ~2.5x faster on CPUs with AMX")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads per process")
    ap.add_argument("--out", default="runs/train")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    ap.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                    help="start from the weights of a checkpoint.pt (same architecture) with a fresh "
                         "optimizer, schedule and history: fine-tuning or training on")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden_size", "steps", "neurons_per_class"):
        if getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("limit_train", "limit_test"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.val_size < 0:
        raise UsageError(f"--val-size must be >= 0, got {args.val_size}")
    if args.augment_shift < 0:
        raise UsageError(f"--augment-shift must be >= 0, got {args.augment_shift}")
    if args.augment_shift and args.dataset == "nmnist":
        raise UsageError("--augment-shift applies to static images (mnist, fashion-mnist), not nmnist")
    if args.init_from and args.resume:
        raise UsageError("--init-from and --resume exclude each other (--resume continues OUT's own run)")
    if args.init_from and not os.path.isfile(args.init_from):
        raise UsageError(f"--init-from: no checkpoint at {args.init_from}")
    if args.weight_decay < 0:
        raise UsageError(f"--weight-decay must be >= 0, got {args.weight_decay}")
    if args.hidden_layers < 0:
        raise UsageError(f"--hidden-layers must be >= 0, got {args.hidden_layers}")
    if args.silent_steps < 0:
        raise UsageError(f"--silent-steps must be >= 0, got {args.silent_steps}")
    if not args.weight_scale > 0:
        raise UsageError(f"--weight-scale must be positive, got {args.weight_scale}")
    if args.amp == "fp16" and not str(args.device).startswith("cuda"):
        raise UsageError("--amp fp16 needs --device cuda (use --amp bf16 on CPU)")
    if not args.lr > 0:
        raise UsageError(f"--lr must be positive, got {args.lr}")
    if not 0 < args.gain <= 1:
        raise UsageError(f"--gain must be in (0, 1], got {args.gain}")
    return args


# ---- data ---------------------------------------------------------------------------------

class StaticImages:
    """MNIST / Fashion-MNIST held as uint8 tensors; batches are rate coded on the device.
    split "val" is the last --val-size images of the training set, "train" the rest."""

    def __init__(self, args, split, limit):
        try:
            images, labels = load_idx_dataset(args.dataset, "test" if split == "test" else "train",
                                              args.data_dir)
        except DatasetNotFound as exc:
            raise UsageError(str(exc)) from None
        if split != "test" and args.val_size:
            if args.val_size >= len(labels):
                raise UsageError(f"--val-size {args.val_size} leaves no training data")
            cut = len(labels) - args.val_size
            images, labels = (images[cut:], labels[cut:]) if split == "val" else (images[:cut], labels[:cut])
        if limit:
            images, labels = images[:limit], labels[:limit]
        self.images, self.labels = images, labels
        self.encoder = RateEncoder(args.gain, args.silent_steps, args.steps)
        self.input_size = images[0].numel()
        self.dtype = amp_dtype(args) or torch.float32
        self.shift = args.augment_shift if split == "train" else 0

    def __len__(self):
        return len(self.labels)

    def batches(self, indices, batch_size, device, generator):
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            images = self.images[idx].to(device)
            if self.shift:
                images = random_shift(images, self.shift, generator)
            yield (self.encoder(images, generator=generator, dtype=self.dtype),
                   self.labels[idx].to(device))


class NMNISTFrames:
    def __init__(self, args, split, limit):
        try:
            self.dataset = nmnist_dataset(args.data_dir, train=split == "train", n_time_bins=args.steps)
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        except Exception as exc:  # tonic raises when files are missing and download is off
            raise UsageError(f"N-MNIST not found under {args.data_dir}: {exc}. Download it with "
                             "tonic on a machine with internet (tonic.datasets.NMNIST(save_to=DIR)).") from None
        self.n = len(self.dataset) if not limit else min(limit, len(self.dataset))
        self.input_size = 2 * 34 * 34
        self.dtype = amp_dtype(args) or torch.float32

    def __len__(self):
        return self.n

    def batches(self, indices, batch_size, device, generator):
        for start in range(0, len(indices), batch_size):
            x, y = collate_frames([self.dataset[int(i)] for i in indices[start:start + batch_size]])
            yield (x > 0).to(device=device, dtype=self.dtype), y.to(device)


def make_data(args, split, limit):
    if args.dataset == "nmnist":
        if split == "val":
            raise UsageError("--val-size is not supported for nmnist")
        return NMNISTFrames(args, split, limit)
    return StaticImages(args, split, limit)


# ---- training -----------------------------------------------------------------------------

def amp_dtype(args):
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]


def autocast(args, device):
    """The --amp context for forward passes (a no-op with --amp none)."""
    dtype = amp_dtype(args)
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def progress(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True)


def evaluate(model, data, args, device, rank, world):
    model.eval()
    indices = torch.arange(len(data))[rank::world]
    gen = torch.Generator(device=device).manual_seed(10_000 + args.seed)
    correct = torch.zeros((), dtype=torch.float64, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad(), autocast(args, device):
        for x, y in data.batches(indices, args.batch_size, device, gen):
            correct += (model(x).argmax(1) == y).sum()
            total += len(y)
    if world > 1:
        dist.all_reduce(correct)
        dist.all_reduce(total)
    return (correct / total.clamp_min(1)).item()


def plot(out, history, model, test_data, device, args):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    a.plot(epochs, [h["train_loss"] for h in history], marker="o")
    a.set_xlabel("epoch"), a.set_ylabel("train loss")
    b.plot(epochs, [100 * h["test_accuracy"] for h in history], marker="o", color="C1")
    b.set_xlabel("epoch"), b.set_ylabel("test accuracy (%)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=100)
    plt.close(fig)

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
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    torch.manual_seed(args.seed)

    train_data = make_data(args, "train", args.limit_train)
    test_data = make_data(args, "test", args.limit_test)
    val_data = make_data(args, "val", None) if args.val_size else None
    model = SRCClassifier.from_config(train_data.input_size, vars(args)).to(device)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = (torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
                 if args.weight_decay else torch.optim.Adam(model.parameters(), lr=args.lr))
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
                 if args.lr_schedule == "cosine" else None)

    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.pt")
    history, start_epoch, elapsed = [], 0, 0.0
    init_from_epochs = None
    if args.resume:
        if not os.path.exists(ckpt_path):
            raise UsageError(f"--resume: no checkpoint at {ckpt_path}")
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scaler") is not None:
            scaler.load_state_dict(ckpt["scaler"])
        if scheduler is not None and ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        history, start_epoch, elapsed = ckpt["history"], ckpt["epoch"], ckpt["wall_time_s"]
        init_from_epochs = ckpt.get("init_from_epochs")
    elif args.init_from:
        source = torch.load(args.init_from, map_location=device, weights_only=False)
        init_from_epochs = source.get("epoch")
        try:
            model.load_state_dict(source["model"])
        except (KeyError, RuntimeError) as exc:
            raise UsageError(f"--init-from {args.init_from} does not fit this model "
                             f"(same --hidden-layers, --hidden-size, dataset?): {exc}") from None
    is_main = rank == 0
    if is_main:
        print(f"srcext {srcext.__version__}: {args.dataset}, {len(train_data)} train / {len(test_data)} test, "
              f"{args.hidden_layers} hidden x {args.hidden_size}, {n_params} parameters, device {device}, "
              f"{world} process(es)", flush=True)

    for epoch in range(start_epoch, args.epochs):
        t0 = time.time()
        model.train()
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(train_data), generator=gen)[rank::world]
        enc_gen = torch.Generator(device=device).manual_seed(args.seed * 1000 + epoch + 7 * rank)
        total_loss, correct, seen = 0.0, 0, 0
        n_batches = math.ceil(len(order) / args.batch_size)
        bar = progress(train_data.batches(order, args.batch_size, device, enc_gen), n_batches,
                       f"epoch {epoch + 1}/{args.epochs}", is_main and not args.no_progress)
        for x, y in bar:
            with autocast(args, device):
                logits = ddp_model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total_loss += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(y)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{100 * correct / seen:.2f}%")
        stats = torch.tensor([total_loss, correct, seen], dtype=torch.float64, device=device)
        if world > 1:
            dist.all_reduce(stats)
        if scheduler is not None:
            scheduler.step()
        test_acc = evaluate(model, test_data, args, device, rank, world)
        val_acc = evaluate(model, val_data, args, device, rank, world) if val_data else None
        elapsed += time.time() - t0
        history.append({"epoch": epoch + 1, "train_loss": stats[0].item() / stats[2].item(),
                        "train_accuracy": stats[1].item() / stats[2].item(), "test_accuracy": test_acc,
                        "val_accuracy": val_acc, "epoch_time_s": time.time() - t0})
        if is_main:
            h = history[-1]
            val = "" if val_acc is None else f"val acc {100 * val_acc:.2f}%, "
            print(f"epoch {h['epoch']}/{args.epochs}: train loss {h['train_loss']:.4f}, train acc "
                  f"{100 * h['train_accuracy']:.2f}%, {val}test acc {100 * test_acc:.2f}%, "
                  f"{h['epoch_time_s']:.0f} s", flush=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": None if scheduler is None else scheduler.state_dict(),
                        "scaler": scaler.state_dict(),
                        "history": history, "epoch": epoch + 1, "wall_time_s": elapsed,
                        "init_from_epochs": init_from_epochs,
                        "config": vars(args)}, ckpt_path)

    if is_main:
        rates = firing_rates(model, test_data, args, device)
        metrics = {
            "test_accuracy": history[-1]["test_accuracy"] if history else None,
            "train_loss": [h["train_loss"] for h in history],
            "test_accuracy_per_epoch": [h["test_accuracy"] for h in history],
            "val_accuracy_per_epoch": [h.get("val_accuracy") for h in history],
            "epochs": len(history), "wall_time_s": elapsed, "firing_rate": rates,
            "parameters": n_params, "processes": world, "history": history,
            "init_from_epochs": init_from_epochs,
            "config": vars(args), "torch": torch.__version__, "srcext": srcext.__version__,
        }
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=2)
        plot(args.out, history, model, test_data, device, args)
        print(f"test accuracy {100 * metrics['test_accuracy']:.2f}%; wrote {args.out}/metrics.json, "
              "curves.png, raster.png", flush=True)
    if world > 1:
        dist.destroy_process_group()


def firing_rates(model, data, args, device, samples=256):
    model.eval()
    gen = torch.Generator(device=device).manual_seed(1)
    totals, count = None, 0
    with torch.no_grad(), autocast(args, device):
        for x, _ in data.batches(torch.arange(min(samples, len(data))), args.batch_size, device, gen):
            _, spikes = model(x, return_spikes=True)
            rates = torch.tensor(SRCClassifier.firing_rates(spikes)) * x.shape[1]
            totals = rates if totals is None else totals + rates
            count += x.shape[1]
    return [] if totals is None else (totals / count).tolist()


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
