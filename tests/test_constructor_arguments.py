"""SRC's and SRCCell's constructors take their shared settings from one specification
(srcext.layer_base.LayerOptions and the fields of SRCConstants): each one arrives, with its
default, and the signatures list them all."""

import dataclasses
import inspect

import pytest
import torch

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
    bias=(False, "trainable_bias"),
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


@pytest.mark.parametrize("cls", [SRC, SRCCell])
def test_signature_lists_every_shared_setting_with_its_default(cls):
    from srcext.layer_base import LayerOptions

    parameters = inspect.signature(cls).parameters
    for field in dataclasses.fields(LayerOptions):
        assert parameters[field.name].kind is inspect.Parameter.KEYWORD_ONLY, field.name
        assert parameters[field.name].default == field.default, field.name
    assert list(parameters)[-2:] == ["device", "dtype"]
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


@pytest.mark.parametrize("cls", [SRC, SRCCell])
def test_an_unknown_keyword_is_named_with_the_closest_one(cls):
    with pytest.raises(
        TypeError, match=rf"^{cls.__name__}\(\) got an unexpected keyword argument 'alpah' \(did you mean 'alpha'\?\)"
    ):
        cls(3, 4, alpah=0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'frobnicate'$"):
        cls(3, 4, frobnicate=1)


def test_a_misspelt_own_keyword_is_named_too():
    """The constructor's own parameters are candidates too, not only the shared settings."""
    with pytest.raises(TypeError, match=r"'dropuot' \(did you mean 'dropout'\?\)"):
        SRC(3, 4, 2, dropuot=0.1)
    with pytest.raises(TypeError, match=r"'batch_frist' \(did you mean 'batch_first'\?\)"):
        SRC(3, 4, batch_frist=True)


def test_the_bias_setting_has_one_name():
    """trainable_bias on both; SRC.bias is torch.nn.GRU's name for it, SRCCell.bias the tensor."""
    m, c = SRC(3, 4, bias=False), SRCCell(3, 4, bias=False)
    assert m.trainable_bias is False and m.bias is False and c.trainable_bias is False
    assert isinstance(c.bias, torch.Tensor) and "bias" in dict(c.named_buffers())


def test_the_import_paths_of_before_the_split_still_work():
    """Names that moved (srcext.ops -> srcext.ops.recurrence / .events, srcext.events ->
    srcext.projection, srcext.layer -> layer_base / functional / cell) are importable from
    their old modules."""
    import srcext.events as events
    import srcext.ops as ops
    import srcext.projection as projection
    from srcext.layer import (  # noqa: F401
        BACKENDS,
        DATA_INIT_MAX_EVALUATIONS,
        DATA_INIT_MAX_SCALE,
        DATA_INIT_TOLERANCE,
        DEFAULT_INIT_RATE,
        OUTPUTS,
        SPIKE_DTYPES,
        src_layer,
        use_fused,
        validate_backend,
    )
    from srcext.layer import SRCCell as Cell
    from srcext.reference import check_lengths  # noqa: F401
    from srcext.sequences import check_lengths as layer_check  # noqa: F401
    from srcext.ops import (  # noqa: F401
        CHECKPOINT_INTERVAL,
        constant_args,
        num_checkpoints,
        register_event_formulas,
        register_op_fakes,
        run_forward_op,
        src_recurrence_fused,
    )

    assert Cell is SRCCell
    for name in ("input_projection", "crossover", "CROSSOVER", "SMALL_INPUT", "validate_projection"):
        assert getattr(events, name) is getattr(projection, name), name
    assert events.register_event_formulas is ops.events.register_event_formulas
    with pytest.raises(AttributeError):
        events.__getattr__("no_such_name")
