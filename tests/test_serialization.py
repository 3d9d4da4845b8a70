"""Saving and loading: state_dict across backends, torch.save of a whole model."""

import pytest
import torch

from srcext import SRC, SRCConstants

from helpers import requires_fused

pytestmark = requires_fused


def test_state_dict_roundtrip_and_backend_swap(tmp_path):
    torch.manual_seed(0)
    model = SRC(6, 8, 2, backend="fused", r=1.7, detach_recurrent=False)
    x = (torch.rand(9, 3, 6) < 0.5).float()
    expected, _ = model(x)

    other = SRC(6, 8, 2, backend="reference", r=1.7, detach_recurrent=False)
    other.load_state_dict(model.state_dict())
    assert torch.allclose(other(x)[0], expected, atol=1e-5)

    path = tmp_path / "model.pt"
    torch.save(model, path)
    loaded = torch.load(path, weights_only=False)
    assert loaded.constants == model.constants and loaded.backend == "fused"
    assert torch.equal(loaded(x)[0], expected)
    loaded.backend = "reference"  # a model saved with one backend runs on the other
    assert torch.allclose(loaded(x)[0], expected, atol=1e-5)


def test_constants_are_checked_whenever_they_change():
    m = SRC(3, 4)
    with pytest.raises(ValueError, match="rho must be > 0"):
        m.constants = SRCConstants(rho=-1.0)
    with pytest.raises(TypeError, match="SRCConstants"):
        m.constants = {"rho": 3.0}
    assert m.constants == SRCConstants()  # unchanged by the refused assignments
    m.constants = SRCConstants(rho=2.0)
    assert m.constants.rho == 2.0


def test_damaged_pickles_fail_at_load_with_a_clear_error():
    m = SRC(3, 4)
    state = dict(m.__getstate__())
    bad = object.__new__(SRCConstants)  # a corrupted pickle can hold any value
    for name, value in SRCConstants().as_dict().items():
        object.__setattr__(bad, name, value)
    object.__setattr__(bad, "rho", -1.0)
    with pytest.raises(ValueError, match="rho must be > 0"):
        SRC.__new__(SRC).__setstate__(dict(state, _constants=bad))
    del state["hidden_size"]
    with pytest.raises(ValueError, match="lacks hidden_size"):
        SRC.__new__(SRC).__setstate__(state)
    old = dict(m.__getstate__())  # pickled before constants became a property
    old["constants"] = old.pop("_constants")
    revived = SRC.__new__(SRC)
    revived.__setstate__(old)
    assert revived.constants == m.constants
