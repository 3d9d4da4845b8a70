"""Spike encoding of static images for SRC networks, and their augmentation.

* :class:`RateEncoder`: the paper's rate coding (Bernoulli spikes with probability
  gain * intensity), drawn per batch on the target device from a seedable generator.
* :func:`random_shift`: random whole-pixel translations of a batch (training augmentation).
* :func:`random_flip`: random left-right mirroring of a batch (training augmentation).
"""

from __future__ import annotations

from typing import Optional

import torch


class RateEncoder:
    """The paper's rate coding of static images.

    At each of ``input_steps`` steps every pixel of intensity p in [0, 1] spikes with
    probability ``gain * p``; ``silent_steps`` empty steps come first (the network settles to
    rest). Spikes are drawn per batch on the images' device, from ``generator`` if given.
    Output: (silent_steps + input_steps, B, features), time-major.
    """

    def __init__(self, gain: float = 0.25, silent_steps: int = 20, input_steps: int = 200):
        if not 0.0 < gain <= 1.0:
            raise ValueError(f"gain must be in (0, 1], got {gain}")
        if silent_steps < 0 or input_steps <= 0:
            raise ValueError("silent_steps must be >= 0 and input_steps > 0")
        self.gain, self.silent_steps, self.input_steps = gain, silent_steps, input_steps

    @property
    def steps(self) -> int:
        return self.silent_steps + self.input_steps

    def __call__(
        self, images: torch.Tensor, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """Spikes (steps, B, features) in ``dtype`` (0 or 1, exact in any float dtype: pass
        the autocast dtype, e.g. bfloat16, to skip a cast before the first GEMM)."""
        intensity = images.reshape(images.shape[0], -1)
        if intensity.dtype == torch.uint8:
            intensity = intensity.float() / 255.0
        probability = (self.gain * intensity.float()).reshape(-1)
        B, F = intensity.shape
        spikes = torch.zeros((self.steps, B * F), dtype=dtype, device=probability.device)
        # Draw only for the pixels that can spike: most pixels of MNIST-like images are 0,
        # and the draws dominated the cost of a training step when made for every pixel.
        active = probability.nonzero().squeeze(1)
        draws = torch.rand(
            (self.input_steps, active.numel()), generator=generator, device=probability.device, dtype=torch.float32
        )
        fired = (draws < probability[active]).to(dtype)
        spikes[self.silent_steps :].index_copy_(1, active, fired)
        return spikes.view(self.steps, B, F)

    def events(
        self, images: torch.Tensor, generator: Optional[torch.Generator] = None, dtype: torch.dtype = torch.float32
    ):
        """The same spikes as calling the encoder (same draws from ``generator``), as the
        event list :class:`srcext.SRC` consumes (:class:`srcext.events.Events`), without the
        dense (steps, B, features) tensor. See :func:`rate_code_events`."""
        return rate_code_events(self, images, generator, dtype)


# ---- rate code as events (srcext.events) --------------------------------------------------


def rate_code_events(
    encoder: RateEncoder,
    images: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    dtype: torch.dtype = torch.float32,
):
    """:meth:`RateEncoder.events`: the encoder's spikes as events, row t * B + b, column f."""
    from .events import Events

    intensity = images.reshape(images.shape[0], -1)
    if intensity.dtype == torch.uint8:
        intensity = intensity.float() / 255.0
    probability = (encoder.gain * intensity.float()).reshape(-1)
    B, F = intensity.shape
    device = probability.device
    # The draws of RateEncoder.__call__, in its order: one per step and pixel that can spike.
    active = probability.nonzero().squeeze(1)
    draws = torch.rand((encoder.input_steps, active.numel()), generator=generator, device=device, dtype=torch.float32)
    step, which = (draws < probability[active]).nonzero(as_tuple=True)  # by step, then pixel
    pixel = active[which]  # b * F + f, ascending within a step: the CSR's order
    rows = (step + encoder.silent_steps) * B + pixel // F
    row_ptr = torch.zeros(encoder.steps * B + 1, dtype=torch.int64, device=device)
    row_ptr[1:] = torch.bincount(rows, minlength=encoder.steps * B).cumsum(0)
    return Events(row_ptr, pixel % F, torch.ones(pixel.numel(), dtype=dtype, device=device), encoder.steps, B, F)


def random_shift(images: torch.Tensor, max_shift: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Translate each image of a batch (B, H, W) by its own random whole-pixel offset in
    [-max_shift, max_shift] along each axis, filling with zeros (training augmentation for
    MNIST-like images; apply before the rate encoder). Offsets come from ``generator``,
    which must live on the images' device. Any dtype; the result is a new tensor."""
    if images.dim() != 3:
        raise ValueError(f"random_shift expects images (B, H, W), got shape {tuple(images.shape)}")
    if max_shift < 0:
        raise ValueError(f"max_shift must be >= 0, got {max_shift}")
    if max_shift == 0:
        return images.clone()
    B, H, W = images.shape
    s = int(max_shift)
    padded = torch.nn.functional.pad(images, (s, s, s, s))
    offsets = torch.randint(0, 2 * s + 1, (2, B), generator=generator, device=images.device)
    rows = offsets[0, :, None] + torch.arange(H, device=images.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(W, device=images.device)  # (B, W)
    batch = torch.arange(B, device=images.device)[:, None, None]
    return padded[batch, rows[:, :, None], cols[:, None, :]]


def random_flip(images: torch.Tensor, generator: Optional[torch.Generator] = None, p: float = 0.5) -> torch.Tensor:
    """Mirror each image of a batch (B, H, W) left to right with probability ``p``, one draw
    per image (training augmentation for images whose class does not depend on their
    handedness, such as Fashion-MNIST's garments and shoes; not for digits). Draws come from
    ``generator``, which must live on the images' device. Any dtype; the result is a new tensor."""
    if images.dim() != 3:
        raise ValueError(f"random_flip expects images (B, H, W), got shape {tuple(images.shape)}")
    if not 0 <= p <= 1:  # also refuses NaN
        raise ValueError(f"p must be in [0, 1], got {p}")
    mirrored = torch.rand(images.shape[0], generator=generator, device=images.device) < p
    return torch.where(mirrored[:, None, None], images.flip(-1), images)
