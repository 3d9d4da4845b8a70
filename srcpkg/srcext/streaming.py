"""Model-wide helpers for the stateful form of the SRC layers (``stateful=True``), as
snnTorch's ``utils.reset`` and SpikingJelly's ``functional.reset_net`` / ``detach_net`` are
for theirs (those two SpikingJelly functions also work on SRC layers: they call the layers'
``reset()`` / ``detach()``)."""

from __future__ import annotations

from torch import nn

from .layer_base import _SRCBase


def reset_states(model: nn.Module) -> None:
    """Forget the carried state of every SRC layer in ``model`` (call it between
    independent sequences)."""
    for module in model.modules():
        if isinstance(module, _SRCBase):
            module.reset_state()


def detach_states(model: nn.Module) -> None:
    """Cut the carried state of every SRC layer in ``model`` from the autograd graph
    (truncated backpropagation through time: call it after each optimizer step)."""
    for module in model.modules():
        if isinstance(module, _SRCBase):
            module.detach_state()
