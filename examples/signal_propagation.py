"""How much of the image reaches each layer of an SRC classifier?

For a batch of images, each encoded twice (two independent rate codings), we count the
spikes of every neuron over the sequence. Per layer we report:

* the firing rate (fraction of neuron-steps with a spike);
* ``image variance``: the variance across images of a neuron's spike count, with the
  encoding noise removed (the signal the next layer can use);
* ``noise variance``: the variance of the same neuron's count between the two encodings of
  the same image (what rate coding and spiking add).

``image variance`` near 0 at some depth means that the layers above see noise only: the
signal has to be built up by training before the deep layers can learn anything.

    python examples/signal_propagation.py --hidden-layers 10 --hidden-size 128
    python examples/signal_propagation.py --hidden-layers 10 --hidden-init identity
    python examples/signal_propagation.py --checkpoint runs/deep/checkpoint.pt
"""

from __future__ import annotations

import argparse
import sys

import torch

from common import UsageError, load_checkpoint, write_json
from srcext.data import RateEncoder, load_idx_dataset
from srcext.models import SRCClassifier


def count_statistics(model, images, encoder, generator):
    """Per layer: (firing rate, image variance, noise variance) of the spike counts."""
    model.eval()
    with torch.no_grad():
        _, first = model(encoder(images, generator=generator), return_spikes=True)
        _, second = model(encoder(images, generator=generator), return_spikes=True)
    rows = []
    for a, b in zip(first, second):
        ca, cb = (a > 0).double().sum(0), (b > 0).double().sum(0)  # (B, H) counts
        noise = ((ca - cb) ** 2 / 2).mean()  # per-encoding noise
        # var over images of the 2-encoding mean holds signal + noise / 2
        image = ((ca + cb) / 2).var(0).mean() - noise / 2
        rate = ((a > 0).double().mean() + (b > 0).double().mean()) / 2
        rows.append(
            {"firing_rate": rate.item(), "image_variance": max(image.item(), 0.0), "noise_variance": noise.item()}
        )
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--data-dir", default="data")
    ap.add_argument("--checkpoint", help="a checkpoint.pt written by examples/train.py (else: a new model)")
    ap.add_argument("--hidden-layers", type=int, default=10)
    ap.add_argument("--hidden-size", type=int, default=128)
    ap.add_argument("--weight-scale", type=float, default=4.0)
    ap.add_argument("--hidden-init", default="uniform", choices=["uniform", "identity"])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args(argv)
    torch.manual_seed(args.seed)
    images, _ = load_idx_dataset(args.dataset, "test", args.data_dir)
    images = images[: args.images]
    if args.checkpoint:
        try:
            _, model, encoder = load_checkpoint(args.checkpoint)
        except UsageError as exc:
            print(f"signal_propagation.py: error: {exc}", file=sys.stderr)
            return 2
    else:
        model = SRCClassifier(
            images[0].numel(),
            hidden_layers=args.hidden_layers,
            hidden_size=args.hidden_size,
            weight_scale=args.weight_scale,
            hidden_init=args.hidden_init,
        )
        encoder = RateEncoder()
    rows = count_statistics(model, images, encoder, torch.Generator().manual_seed(args.seed))
    print("    layer  firing rate  image variance  noise variance")
    for k, r in enumerate(rows):
        name = "output" if k == len(rows) - 1 else f"hidden {k + 1}"
        print(f"{name:>9}  {100 * r['firing_rate']:9.2f} %  {r['image_variance']:14.2f}  {r['noise_variance']:14.2f}")
    if args.json:
        write_json(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
