"""SRC's and SRCCell's constructors pass their shared arguments on to the base class by name
(srcext.layer._base_arguments): each one arrives, with the defaults of SRCConstants."""

import dataclasses
import inspect

import pytest

from srcext import SRC, SRCCell
from srcext.constants import DEFAULTS, SRCConstants

# A valid value away from the default for each constant.
CONSTANTS = dict(
    alpha=0.7,
    rho=2.5,
    r=1.5,
    r_s=-6.0,
    z=0.2,
    z_hyp=0.8,
    z_dep=0.1,
    gate_slope=8.0,
    gate_threshold=0.4,
    bias_max=-3.0,
)
# The other shared settings away from their defaults, and the attribute each lands in.
SETTINGS = dict(
    backend=("reference", "backend"),
    detach_recurrent=(False, "detach_recurrent"),
    straight_through=(False, "straight_through"),
    bias_straight_through=(False, "bias_straight_through"),
    initial_state=("zeros", "initial_state_kind"),
    stateful=(True, "stateful"),
    return_state=(False, "return_state"),
    bias_init=(-5.0, "bias_init"),
    weight_scale=(0.5, "weight_scale"),
    learn=(("rho", "z"), "learn"),
    per_neuron=(True, "per_neuron"),
    bias=(False, "_bias_trainable"),
)


def test_the_values_cover_every_constant():
    assert set(CONSTANTS) == {f.name for f in dataclasses.fields(SRCConstants)}
    assert all(CONSTANTS[name] != getattr(DEFAULTS, name) for name in CONSTANTS)


@pytest.mark.parametrize("cls", [SRC, SRCCell])
def test_signature_defaults_are_the_constants_defaults(cls):
    parameters = inspect.signature(cls.__init__).parameters
    for name in CONSTANTS:
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert parameters[name].default == getattr(DEFAULTS, name), name
    assert cls(3, 4).constants == SRCConstants()


@pytest.mark.parametrize("cls", [SRC, SRCCell])
def test_every_shared_argument_arrives(cls):
    m = cls(3, 5, **CONSTANTS, **{name: value for name, (value, _) in SETTINGS.items()})
    assert m.constants == SRCConstants(**CONSTANTS)
    assert (m.input_size, m.hidden_size) == (3, 5)
    for name, (value, attribute) in SETTINGS.items():
        assert getattr(m, attribute) == value, name


@pytest.mark.parametrize("cls", [SRC, SRCCell])
def test_a_bad_constant_is_named_by_the_class(cls):
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: z_hyp must be in \[0, 1\]"):
        cls(3, 4, z_hyp=2.0)
