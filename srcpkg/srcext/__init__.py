"""srcext: the Spiking Recurrent Cell (De Geeter, Ernst, Drion 2024) for PyTorch.

``from srcext import SRC`` gives a drop-in recurrent layer (like torch.nn.GRU) that emits
spikes, with fused CPU/CUDA kernels and a pure-PyTorch reference (``srcext.reference``).
"""
from ._extension import extension_loaded, fused_available
from .layer import SRC, SRCCell, src_layer
from .reference import SRCConstants

from . import ops, reference  # noqa: E402  (registers fake and autograd of the ops)

__version__ = "0.1.0"
__all__ = ["SRC", "SRCCell", "SRCConstants", "src_layer", "fused_available",
           "extension_loaded", "reference", "ops", "__version__"]
