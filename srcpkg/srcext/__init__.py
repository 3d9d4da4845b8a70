"""srcext: the Spiking Recurrent Cell (De Geeter, Ernst, Drion 2024) for PyTorch.

``from srcext import SRC`` gives a drop-in recurrent layer (like torch.nn.GRU) that emits
spikes, with fused CPU/CUDA kernels and a pure-PyTorch reference (``srcext.reference``).
"""

import torch

from ._extension import extension_loaded, fused_available
from ._version import __version__
from .events import Events
from .calibration import FiringRates, calibrate_, firing_rates, record_firing_rates
from .layer import SRC, SRCCell
from .constants import SRCConstants
from .state import SRCState
from .streaming import detach_states, reset_states

from . import constants, events, ops, projection, reference  # ops registers the fakes and autograd of the ops
from . import data, models  # so that `import srcext` is enough for srcext.data.RateEncoder (tonic stays lazy)

# torch.save(model) pickles these classes; allow them in torch.load's default
# weights_only=True unpickler (the torch.nn container srcext.models uses included).
SAFE_GLOBALS = [SRC, SRCCell, SRCConstants, SRCState, models.SRCClassifier, torch.nn.ModuleList]
# Modules pickled before SRCConstants moved to srcext.constants name it by its old place.
torch.serialization.add_safe_globals(SAFE_GLOBALS + [(SRCConstants, "srcext.reference.SRCConstants")])

__all__ = [
    "SRC",
    "SRCCell",
    "SRCConstants",
    "SRCState",
    "calibrate_",
    "firing_rates",
    "record_firing_rates",
    "FiringRates",
    "reset_states",
    "detach_states",
    "fused_available",
    "extension_loaded",
    "reference",
    "ops",
    "SAFE_GLOBALS",
    "__version__",
    "constants",
    "data",
    "events",
    "projection",
    "Events",
    "models",
]
