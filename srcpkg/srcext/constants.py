"""The cell constants: their names and order, their defaults, their valid ranges, and how a
learnable one is kept inside its range.

The fused ops take the nine constants of the cell as one tensor, per layer ``(K,)`` or per
neuron ``(K, H)``, in the precision of the math (float32; float64 for float64 inputs), its
rows in the order of :data:`CELL_CONSTANTS`. csrc/common/src_constants.h holds the same order for
the kernels (tests/test_dynamics.py checks that the two agree).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Tuple, Union

import torch

# The constants of the cell equations, in the order of the rows of the constants tensor.
CELL_CONSTANTS: Tuple[str, ...] = ("alpha", "rho", "r", "r_s", "z", "z_hyp", "z_dep", "gate_slope", "gate_threshold")
NUM_CELL_CONSTANTS = len(CELL_CONSTANTS)
CONSTANT_INDEX: Dict[str, int] = {name: j for j, name in enumerate(CELL_CONSTANTS)}


@dataclass(frozen=True)
class SRCConstants:
    """The constants of the cell; defaults are the paper's (spec table). ``bias_max`` is not
    a cell constant of the kernels: the layer applies it to the bias (min(b, bias_max))."""

    alpha: float = 0.9  # decay of the input integrator
    rho: float = 3.0  # bound of the input, |x| < rho
    r: float = 2.0  # fast positive feedback (bistability)
    r_s: float = -7.0  # slow negative feedback (refractoriness)
    z: float = 0.0  # update gate of h
    z_hyp: float = 0.9  # slow gate when h is low
    z_dep: float = 0.0  # slow gate when h is high
    gate_slope: float = 10.0  # steepness of the voltage-dependent slow gate
    gate_threshold: float = 0.5  # where the slow gate switches
    bias_max: float = -4.0  # the bias used is min(b, bias_max)

    def as_dict(self) -> dict:
        return asdict(self)

    def cell_values(self) -> Tuple[float, ...]:
        """The cell constants as floats, in the order of :data:`CELL_CONSTANTS`."""
        return tuple(float(getattr(self, name)) for name in CELL_CONSTANTS)


DEFAULTS = SRCConstants()
BIAS_INIT = -6.0


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The precision of the kernels' math (and of the constants tensor) for a storage dtype."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def constants_tensor(k: SRCConstants, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """The per-layer constants tensor (K,) of ``k`` (on the CPU unless ``device`` is given:
    the CUDA kernels then take the values as launch arguments, with no copy to the device)."""
    return torch.tensor(k.cell_values(), dtype=dtype, device=device)


# ---- valid ranges ---------------------------------------------------------------------------

# name -> (low, high, low inclusive, high inclusive, why); None: unbounded on that side.
RANGES: Dict[str, Tuple] = {
    "alpha": (0.0, 1.0, True, True, "integrator decay"),
    "rho": (0.0, None, False, False, "it bounds the input"),
    "z": (0.0, 1.0, True, False, "update gate of h"),
    "z_hyp": (0.0, 1.0, True, True, "a gate"),
    "z_dep": (0.0, 1.0, True, True, "a gate"),
}


def _range_text(low, high, low_in, high_in) -> str:
    if high is None:
        return f"{'>=' if low_in else '>'} {low:g}"
    return f"in {'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"


def validate_constants(k: SRCConstants, owner: str = "SRC") -> None:
    """Reject constants that break the model, at construction time."""
    for name, value in k.as_dict().items():
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be a real number, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{owner}: {name} must be finite, got {value}")
    for name, (low, high, low_in, high_in, why) in RANGES.items():
        value = getattr(k, name)
        ok = (value >= low if low_in else value > low) and (
            high is None or (value <= high if high_in else value < high)
        )
        if not ok:
            raise ValueError(f"{owner}: {name} must be {_range_text(low, high, low_in, high_in)} ({why}), got {value}")


# ---- learnable constants --------------------------------------------------------------------

# A learnable constant is stored unconstrained ("raw") and mapped into its range on use:
# name -> (raw -> value, value -> raw). Gates and the decay through a sigmoid (0, 1), rho
# through a softplus (0, inf); the others are unbounded.
_EPS = 1e-4  # a value on the closed end of a range starts this far inside it (sigmoid never
#              reaches 0 or 1)


def _logit(v: float) -> float:
    v = min(max(v, _EPS), 1.0 - _EPS)
    return math.log(v / (1.0 - v))


def _inverse_softplus(v: float) -> float:
    return v + math.log(-math.expm1(-v))  # log(exp(v) - 1), stable for large v


PARAMETRISATIONS: Dict[str, Tuple[Callable[[torch.Tensor], torch.Tensor], Callable[[float], float]]] = {
    "alpha": (torch.sigmoid, _logit),
    "rho": (torch.nn.functional.softplus, _inverse_softplus),
    "r": (lambda raw: raw, float),
    "r_s": (lambda raw: raw, float),
    "z": (torch.sigmoid, _logit),
    "z_hyp": (torch.sigmoid, _logit),
    "z_dep": (torch.sigmoid, _logit),
    "gate_slope": (lambda raw: raw, float),
    "gate_threshold": (lambda raw: raw, float),
}
assert tuple(PARAMETRISATIONS) == CELL_CONSTANTS


def raw_value(name: str, value: float) -> float:
    """The unconstrained value a learnable constant is stored as, for its value ``value``."""
    return PARAMETRISATIONS[name][1](float(value))


def constrained(name: str, raw: torch.Tensor) -> torch.Tensor:
    """The value of learnable constant ``name`` stored as ``raw`` (differentiable)."""
    return PARAMETRISATIONS[name][0](raw)


def check_learn(learn, owner: str = "SRC") -> Tuple[str, ...]:
    """``learn`` as a tuple of constant names in :data:`CELL_CONSTANTS` order."""
    if learn is None:
        return ()
    if isinstance(learn, str):
        learn = (learn,)
    try:
        names = tuple(learn)
    except TypeError:
        raise TypeError(f"{owner}: learn must be a sequence of constant names, got {learn!r}") from None
    for name in names:
        if name not in CONSTANT_INDEX:
            hint = " (bias_max is not learnable: it caps the bias)" if name == "bias_max" else ""
            raise ValueError(
                f"{owner}: learn names an unknown constant {name!r}{hint}; choose from {', '.join(CELL_CONSTANTS)}"
            )
    if len(set(names)) != len(names):
        raise ValueError(f"{owner}: learn names a constant twice: {names}")
    return tuple(n for n in CELL_CONSTANTS if n in names)


ConstantsLike = Union[SRCConstants, torch.Tensor]


def check_constants_tensor(k: torch.Tensor, hidden: int, owner: str = "srcext") -> None:
    """A constants tensor must be (K,) or (K, H) and floating point."""
    if not isinstance(k, torch.Tensor):
        raise TypeError(f"{owner}: the constants must be an SRCConstants or a tensor, got {type(k).__name__}")
    if not k.is_floating_point():
        raise TypeError(f"{owner}: the constants tensor must be floating point, got {k.dtype}")
    if tuple(k.shape) not in ((NUM_CELL_CONSTANTS,), (NUM_CELL_CONSTANTS, hidden)):
        raise ValueError(
            f"{owner}: the constants tensor must have shape (K,) = "
            f"({NUM_CELL_CONSTANTS},) (per layer) or (K, H) = "
            f"({NUM_CELL_CONSTANTS}, {hidden}) (per neuron), got {tuple(k.shape)}"
        )
