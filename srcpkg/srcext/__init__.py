"""srcext: the Spiking Recurrent Cell (De Geeter, Ernst, Drion 2024) for PyTorch.

``from srcext import SRC`` gives a drop-in recurrent layer (like torch.nn.GRU) that emits
spikes, with fused CPU/CUDA kernels and a pure-PyTorch reference (``srcext.reference``).
"""
import torch

from ._extension import extension_loaded, fused_available
from .events import Events
from .calibration import FiringRates, calibrate_, firing_rates, record_firing_rates
from .layer import SRC, SRCCell, src_layer
from .reference import SRCConstants
from .state import SRCState
from .streaming import detach_states, reset_states

from . import events, ops, reference  # noqa: E402  (registers fake and autograd of the ops)
from . import models  # noqa: E402

# torch.save(model) pickles these classes; allow them in torch.load's default
# weights_only=True unpickler (the torch.nn container srcext.models uses included).
SAFE_GLOBALS = [SRC, SRCCell, SRCConstants, SRCState, models.SRCClassifier, torch.nn.ModuleList]
torch.serialization.add_safe_globals(SAFE_GLOBALS)

__version__ = "0.1.0"
__all__ = ["SRC", "SRCCell", "SRCConstants", "SRCState", "src_layer", "calibrate_",
           "firing_rates", "record_firing_rates", "FiringRates", "reset_states",
           "detach_states", "fused_available", "extension_loaded", "reference", "ops",
           "SAFE_GLOBALS", "__version__", "events", "Events"]
