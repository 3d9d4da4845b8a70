"""The paper's classification network built from SRC layers.

input spikes -> N hidden SRC layers -> an output SRC layer with ``neurons_per_class`` neurons
per class -> a fixed readout (+1 from a class's own neurons, -0.1 from every other neuron) ->
a leaky integrator R[t] = a_ro R[t-1] + readout . s_out[t] -> logits R[T-1].
"""

from __future__ import annotations

import numbers
import warnings
from typing import List

import torch
from torch import nn

from .layer import SRC


def fixed_readout(num_classes: int, neurons_per_class: int, own: float = 1.0, other: float = -0.1) -> torch.Tensor:
    """(num_classes, num_classes * neurons_per_class): +own from a class's neurons, other elsewhere."""
    m = torch.full((num_classes, num_classes * neurons_per_class), other)
    for c in range(num_classes):
        m[c, c * neurons_per_class : (c + 1) * neurons_per_class] = own
    return m


def drop_neurons(spikes: torch.Tensor, p: float) -> torch.Tensor:
    """Time-major spikes (T, B, N) with each (sample, neuron) silenced for every step with
    probability p and the rest scaled by 1 / (1 - p): dropout with one mask across time."""
    keep = spikes.new_empty((1,) + spikes.shape[1:]).bernoulli_(1.0 - p)
    return spikes * keep.div_(1.0 - p)


class SRCClassifier(nn.Module):
    """The paper's classifier. ``forward(x)`` takes time-major spikes (T, B, input_size) and
    returns logits (B, num_classes): the leaky integrator of the readout at the last step.

    Args:
        input_size: features per step (784 for MNIST, 2*34*34 for N-MNIST).
        num_classes: classes.
        hidden_layers: SRC layers between the input and the output layer (0 or more).
        hidden_size: neurons per hidden layer.
        neurons_per_class: output neurons per class.
        readout_decay: a_ro of the leaky integrator (close to 1).
        trainable_readout: learn the readout matrix (initialised to the fixed one).
        dropout: in training, each neuron whose spikes pass from one SRC layer to the next
            (hidden to hidden, last hidden to output) is silenced with this probability for
            the whole sequence of a sample, and the spikes of the rest scaled by
            1 / (1 - dropout); the input and the recorded spikes are left as they are. One
            mask per sample and neuron, shared by every step (as SpikingJelly's multi-step
            ``Dropout``), unlike ``SRC(dropout=)`` and ``nn.GRU(dropout=)``, which draw one
            per step: the next layer integrates spikes over many steps, so independent
            per-step masks average out and barely regularise (on Fashion-MNIST, 1 x 1024,
            p = 0.2 per step left the training accuracy as high as without dropout).
        weight_scale: initial weight scale of every layer (4: each layer fires at a few
            percent of steps on rate-coded images at initialisation, the paper's regime).
        hidden_init: "uniform" (every layer as :class:`srcext.SRC` initialises it) or
            "identity": each hidden-to-hidden layer starts as ``identity_gain`` times the
            identity plus the uniform initialisation scaled by ``identity_noise``, so that
            neuron k relays the spikes of neuron k of the layer below. With the uniform
            initialisation the image information in the spike counts falls about 5x per
            layer (examples/signal_propagation.py) and is gone after 4-5 hidden layers,
            which stalls the training of deep networks; the identity start keeps it.
        **src_kwargs: passed to every :class:`srcext.SRC` layer (backend, constants, flags;
            ``learn=(...)`` and ``per_neuron=True`` learn the named cell constants).
            The paper's setting is the default here: ``initial_state="zeros"`` (the spec's
            zero start) and ``bias_straight_through=False`` (the spec's clamp of the bias),
            so that the reproductions keep their results.
    """

    def __init__(
        self,
        input_size: int,
        num_classes: int = 10,
        hidden_layers: int = 1,
        hidden_size: int = 256,
        neurons_per_class: int = 10,
        readout_decay: float = 0.99,
        trainable_readout: bool = False,
        dropout: float = 0.0,
        weight_scale: float = 4.0,
        hidden_init: str = "uniform",
        identity_gain: float = 3.0,
        identity_noise: float = 0.25,
        **src_kwargs,
    ):
        super().__init__()
        src_kwargs.setdefault("initial_state", "zeros")
        src_kwargs.setdefault("bias_straight_through", False)
        self._config = dict(
            input_size=input_size,
            num_classes=num_classes,
            hidden_layers=hidden_layers,
            hidden_size=hidden_size,
            neurons_per_class=neurons_per_class,
            readout_decay=readout_decay,
            trainable_readout=trainable_readout,
            dropout=dropout,
            weight_scale=weight_scale,
            hidden_init=hidden_init,
            identity_gain=identity_gain,
            identity_noise=identity_noise,
            **src_kwargs,
        )
        for name, value in (
            ("input_size", input_size),
            ("num_classes", num_classes),
            ("hidden_size", hidden_size),
            ("neurons_per_class", neurons_per_class),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"SRCClassifier: {name} must be a positive int, got {value!r}")
        if not isinstance(hidden_layers, int) or hidden_layers < 0:
            raise ValueError(f"SRCClassifier: hidden_layers must be >= 0, got {hidden_layers!r}")
        if not 0.0 < readout_decay <= 1.0:
            raise ValueError(f"SRCClassifier: readout_decay must be in (0, 1], got {readout_decay}")
        if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) or not 0.0 <= dropout < 1.0:
            # 1 would silence every layer above the first
            raise ValueError(f"SRCClassifier: dropout must be a number in [0, 1), got {dropout!r}")
        if dropout > 0 and hidden_layers == 0:
            warnings.warn(
                f"SRCClassifier: dropout acts between layers, so dropout={dropout} does nothing "
                "with hidden_layers=0 (one layer)",
                stacklevel=2,
            )
        if hidden_init not in ("uniform", "identity"):
            raise ValueError(f"SRCClassifier: hidden_init must be 'uniform' or 'identity', got {hidden_init!r}")
        self.num_classes = num_classes
        self.readout_decay = readout_decay
        self.dropout = float(dropout)
        sizes = [input_size] + [hidden_size] * hidden_layers + [num_classes * neurons_per_class]
        # One SRC module per layer, so that each layer's spikes can be observed.
        self.layers = nn.ModuleList(
            SRC(a, b, weight_scale=weight_scale, **src_kwargs) for a, b in zip(sizes[:-1], sizes[1:])
        )
        if hidden_init == "identity":
            with torch.no_grad():
                for layer in self.layers[1:hidden_layers]:  # hidden -> hidden, square
                    weight = layer.weight_l0
                    weight.mul_(identity_noise).add_(
                        identity_gain * torch.eye(hidden_size, dtype=weight.dtype, device=weight.device)
                    )
        readout = fixed_readout(num_classes, neurons_per_class)
        if trainable_readout:
            self.readout = nn.Parameter(readout)
        else:
            self.register_buffer("readout", readout)

    def config(self) -> dict:
        """The constructor arguments of this model, ``from_config``'s input: stored with the
        weights (examples/train.py's checkpoints), it rebuilds the same architecture."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict) -> SRCClassifier:
        """The classifier a ``config()`` describes (keys not given take the defaults)."""
        return cls(**config)

    def forward(self, x: torch.Tensor, return_spikes: bool = False):
        spikes: List[torch.Tensor] = []
        for k, layer in enumerate(self.layers):
            if k and self.dropout and self.training:
                x = drop_neurons(x, self.dropout)
            x, _ = layer(x)
            spikes.append(x)
        T = x.shape[0]
        # R[T-1] = sum_t a^(T-1-t) readout . s[t]: the integrator in closed form, one GEMM.
        # In float32 at least, also under autocast: in bfloat16, a = 0.99 would round to
        # 0.988 and step counts above 256 would not be exact.
        acc = torch.promote_types(x.dtype, torch.float32)
        with torch.autocast(x.device.type, enabled=False):
            steps = torch.arange(T - 1, -1, -1, device=x.device, dtype=acc)
            weights = torch.pow(torch.as_tensor(self.readout_decay, dtype=acc, device=x.device), steps)
            integrated = torch.einsum("t,tbn->bn", weights, x.to(acc))
            logits = integrated @ self.readout.to(acc).t()
        if return_spikes:
            return logits, spikes
        return logits

    @staticmethod
    def firing_rates(spikes: List[torch.Tensor]) -> List[float]:
        """Per layer, the fraction of neuron-steps with h > 0 (a spike)."""
        return [float((s > 0).float().mean()) for s in spikes]
