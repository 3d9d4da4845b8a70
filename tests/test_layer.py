"""The SRC and SRCCell modules: fused backend against the reference backend end to end
(input, weight, bias and state gradients; the fused one on every device, helpers.DEVICES),
torch.compile, state passing, layouts, and input validation."""

import copy

import pytest
import torch

from srcext import SRC, SRCCell
from srcext.reference import SRCConstants

from helpers import (
    FLAG_IDS,
    FLAGS,
    assert_close,
    assert_compiled_matches_eager,
    over_devices,
    random_constants,
    requires_fused,
    tolerance,
)

pytestmark = requires_fused


def spikes_input(T, B, F, seed, p=0.3, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g) < p).to(dtype)


def make_pair(in_size, hidden, layers, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    fused = SRC(in_size, hidden, layers, backend="fused", dtype=dtype, **kwargs)
    with torch.no_grad():  # strong enough weights that every layer fires
        for p in fused.parameters():
            if p.dim() == 2:
                p.mul_(6.0)
    ref = copy.deepcopy(fused)
    ref.backend = "reference"
    return fused, ref


def run_layer(model, x, state, device="cpu"):
    """Run `model` (on `device`) on CPU inputs; outputs and gradients come back on the CPU."""
    x = x.to(device).requires_grad_()
    state = None if state is None else tuple(s.to(device).requires_grad_() for s in state)
    out, final = model(x, state)
    g = torch.Generator().manual_seed(7)

    def cot(t):  # the same upstream gradient whatever the dtype and device
        return torch.randn(t.shape, generator=g, dtype=torch.float64).to(device=t.device, dtype=t.dtype)

    loss = (out * cot(out)).sum() + sum((f * cot(f)).sum() for f in final)
    inputs = [x] + list(model.parameters()) + ([] if state is None else list(state))
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return (
        out.detach().cpu(),
        tuple(f.detach().cpu() for f in final),
        tuple(None if g is None else g.cpu() for g in grads),
    )


CASES = [  # (T, B, in, hidden, layers, batch_first)
    (1, 1, 1, 1, 1, False),
    (9, 3, 13, 7, 2, False),
    (20, 2, 5, 11, 3, True),
    (27, 5, 13, 21, 3, True),
]


@over_devices
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
@pytest.mark.parametrize("constants", ["default", "random"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "given-state"])
def test_fused_layer_matches_reference(device, case, detach, st, constants, with_state):
    T, B, F, H, L, batch_first = case
    k = SRCConstants() if constants == "default" else random_constants(11)
    fused, ref = make_pair(
        F, H, L, detach_recurrent=detach, straight_through=st, batch_first=batch_first, **k.as_dict()
    )
    fused = fused.to(device)
    x = spikes_input(T, B, F, seed=3)
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    state = None
    if with_state:
        g = torch.Generator().manual_seed(4)
        state = tuple(torch.randn(L, B, H, generator=g, dtype=torch.float64) * 0.5 for _ in range(3))
    out, final, grads = run_layer(fused, x, state, device)
    rout, rfinal, rgrads = run_layer(ref, x, state)
    assert out.shape == ((B, T, H) if batch_first else (T, B, H))
    assert_close(out, rout, 1e-10, "output")
    for name, a, b in zip(("i_n", "h_n", "hs_n"), final, rfinal):
        assert a.shape == (L, B, H)
        assert_close(a, b, 1e-10, name)
    names = ["input"] + [n for n, _ in fused.named_parameters()] + (["i0", "h0", "hs0"] if with_state else [])
    for name, a, b in zip(names, grads, rgrads):
        assert_close(a, b, 1e-8, f"grad {name}")


def test_fused_layer_float32_against_float64_reference():
    fused, ref = make_pair(17, 24, 2, dtype=torch.float32)
    ref = ref.double()
    x = spikes_input(30, 4, 17, seed=5, dtype=torch.float32)
    out, final, grads = run_layer(fused, x, None)
    rout, rfinal, rgrads = run_layer(ref, x.double(), None)
    assert out.dtype == torch.float32
    assert_close(out, rout, tolerance(torch.float32, True), "output")
    for a, b in zip(grads, rgrads):
        assert_close(a, b, 1e-3, "gradient")


@over_devices
def test_compile_matches_eager(device):
    assert_compiled_matches_eager(device)


@pytest.mark.parametrize("backend", ["fused", "reference"])
@pytest.mark.parametrize("T1", [0, 1, 7, 16])
def test_chunked_run_equals_one_run(backend, T1):
    torch.manual_seed(1)
    model = SRC(6, 9, 2, backend=backend, dtype=torch.float64)
    x = spikes_input(23, 3, 6, seed=2, p=0.6)
    whole, whole_state = model(x)
    first, state = model(x[:T1])
    second, final = model(x[T1:], state)
    assert torch.allclose(torch.cat([first, second]), whole, atol=1e-12)
    for a, b in zip(final, whole_state):
        assert torch.allclose(a, b, atol=1e-12)


def test_cell_equals_layer_over_time():
    torch.manual_seed(2)
    layer = SRC(5, 8, 1, backend="fused", dtype=torch.float64, detach_recurrent=False, init_rate=None)
    cell = SRCCell(5, 8, backend="fused", dtype=torch.float64, detach_recurrent=False, init_rate=None)
    with torch.no_grad():
        cell.weight.copy_(layer.weight_l0 * 5)
        layer.weight_l0.mul_(5)
        cell.bias.copy_(layer.bias_l0)
    x = spikes_input(25, 2, 5, seed=8, p=0.7)
    out, (i_n, h_n, hs_n) = layer(x)
    state, steps = None, []
    for t in range(x.shape[0]):
        s, state = cell(x[t], state)
        steps.append(s)
    assert (out > 0).any()
    assert torch.allclose(torch.stack(steps), out, atol=1e-12)
    for a, b in zip(state, (i_n[0], h_n[0], hs_n[0])):
        assert torch.allclose(a, b, atol=1e-12)


@pytest.mark.parametrize("output", ["spikes", "voltage"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_cell_lean_step_equals_the_general_path(detach, st, output):
    """SRCCell's lean step (an SRCState or no state: one op call) gives exactly what the
    general path gives (a plain tuple state takes it), outputs and gradients, in training
    with a bias above bias_max (its straight-through gradient) and in inference."""
    torch.manual_seed(3)
    cell = SRCCell(5, 8, backend="fused", detach_recurrent=detach, straight_through=st, output=output, init_rate=None)
    with torch.no_grad():
        cell.weight.mul_(4)
        cell.bias[:3] = cell.constants.bias_max + 0.5
    x = spikes_input(6, 3, 5, seed=4, p=0.6, dtype=torch.float32)
    weights = torch.randn(6, 3, 8)
    assert cell._lean_step(x[0], cell.initial_state(3)) is not None  # the case it serves
    assert cell._lean_step(x[0], tuple(cell.initial_state(3))) is None
    runs = []
    for general in (False, True):
        cell.zero_grad()
        state = cell.initial_state(3)
        outs = []
        for t in range(x.shape[0]):
            s, state = cell(x[t], tuple(state) if general else (None if t == 0 else state))
            outs.append(s)
        out = torch.stack(outs)
        ((out * weights).sum() + state.h.sum()).backward()
        runs.append((out.detach(), [f.detach() for f in state], cell.weight.grad.clone(), cell.bias.grad.clone()))
        with torch.no_grad():
            runs[-1] += (cell(x[0], None if not general else tuple(cell.initial_state(3)))[0],)
    (out, final, gw, gb, inf), (out2, final2, gw2, gb2, inf2) = runs
    assert out.abs().sum() > 0 and gb[:3].abs().sum() > 0
    torch.testing.assert_close(out, out2, rtol=0, atol=0)
    for a, b in zip(final, final2):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(gw, gw2, rtol=0, atol=0)
    torch.testing.assert_close(gb, gb2, rtol=0, atol=0)
    torch.testing.assert_close(inf, inf2, rtol=0, atol=0)


def test_unbatched_input_matches_batch_of_one():
    torch.manual_seed(3)
    model = SRC(4, 6, 2, dtype=torch.float64)
    x = spikes_input(10, 1, 4, seed=1, p=0.8)
    out_b, state_b = model(x)
    out_u, state_u = model(x[:, 0])
    assert out_u.shape == (10, 6) and state_u.i.shape == (2, 6)
    assert torch.equal(out_u, out_b[:, 0])
    cell = SRCCell(4, 6, dtype=torch.float64)
    s, st = cell(x[0, 0])
    assert s.shape == (6,) and st.h.shape == (6,)


def test_non_contiguous_input_and_gradients():
    fused, ref = make_pair(8, 10, 2)
    base = spikes_input(12, 8, 3, seed=6).permute(1, 2, 0)  # (8, 3, 12): a strided view
    x = base.transpose(0, 2)  # (12, 3, 8), non-contiguous
    assert not x.is_contiguous()
    results = []
    for model in (fused, ref):
        xi = x.clone().transpose(0, 2).contiguous().transpose(0, 2).requires_grad_()  # same strides
        out, _ = model(xi)
        upstream = torch.randn(out.shape[::-1], dtype=out.dtype, generator=torch.Generator().manual_seed(1)).permute(
            2, 1, 0
        )
        assert not upstream.is_contiguous()
        grads = torch.autograd.grad(out, [xi] + list(model.parameters()), upstream)
        results.append((out, grads))
    assert_close(results[0][0], results[1][0], 1e-10, "output")
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, 1e-9, "gradient")


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_empty_time_returns_initial_state(backend):
    model = SRC(3, 4, 2, backend=backend, dtype=torch.float64)
    state = tuple(torch.randn(2, 5, 4, dtype=torch.float64) for _ in range(3))
    out, final = model(torch.zeros(0, 5, 3, dtype=torch.float64), state)
    assert out.shape == (0, 5, 4)
    for a, b in zip(final, state):
        assert torch.equal(a, b)


def test_batch_of_zero():
    model = SRC(3, 4, backend="fused", dtype=torch.float64)
    out, final = model(torch.zeros(6, 0, 3, dtype=torch.float64))
    assert out.shape == (6, 0, 4) and final.i.shape == (1, 0, 4)


# ---- validation -------------------------------------------------------------------------


@pytest.fixture
def model():
    return SRC(4, 5, 2)


def test_rejects_wrong_number_of_dimensions(model):
    with pytest.raises(ValueError, match="dimensions"):
        model(torch.zeros(2, 3, 4, 1))
    with pytest.raises(ValueError, match="dimensions"):
        model(torch.zeros(4))


def test_rejects_wrong_feature_size(model):
    with pytest.raises(ValueError, match="input_size 4"):
        model(torch.zeros(3, 2, 5))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8])
def test_rejects_integer_input(model, dtype):
    """bool and uint8 spikes are accepted (tests/test_dropin.py); other integers are not."""
    with pytest.raises(TypeError, match="floating point.*bool/uint8"):
        model(torch.zeros(3, 2, 4, dtype=dtype))


def test_rejects_non_tensor(model):
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[0.0] * 4])


def test_rejects_input_dtype_different_from_parameters(model):
    with pytest.raises(TypeError, match="dtype"):
        model(torch.zeros(3, 2, 4, dtype=torch.float64))


def test_rejects_bad_states(model):
    x = torch.zeros(3, 2, 4)
    good = torch.zeros(2, 2, 5)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 5\)"):
        model(x, (good, good, torch.zeros(1, 2, 5)))
    with pytest.raises(TypeError, match="LSTM"):
        model(x, (good, good))
    with pytest.raises(TypeError, match="3 tensors"):
        model(x, (good,) * 4)
    with pytest.raises(ValueError, match=r"shape \(2, 2, 5\)"):
        model(x, good[:1])  # a GRU-style h tensor must have the state's shape
    with pytest.raises(TypeError, match="dtype"):
        model(x, (good, good.double(), good))
    with pytest.raises(TypeError, match="floating point"):
        model(x, (good, good.long(), good))
    with pytest.raises(TypeError, match="must be a tensor"):
        model(x, (good, good, 0.0))


def test_rejects_tensors_on_different_devices(model):
    meta = torch.zeros(3, 2, 4, device="meta")
    with pytest.raises(ValueError, match="meta"):
        model(meta)
    good = torch.zeros(2, 2, 5)
    with pytest.raises(ValueError, match="meta"):
        model(torch.zeros(3, 2, 4), (good, good.to("meta"), good))


def test_rejects_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'cudnn'"):
        SRC(4, 5, backend="cudnn")
    with pytest.raises(ValueError, match="unknown backend"):
        SRCCell(4, 5, backend="")
    model = SRC(4, 5)
    model.backend = "reference"
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        model.backend = "gpu"
    assert model.backend == "reference"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(rho=0.0), "rho"),
        (dict(rho=-1.0), "rho"),
        (dict(alpha=1.5), "alpha"),
        (dict(alpha=-0.1), "alpha"),
        (dict(z=1.0), "z must"),
        (dict(z_hyp=2.0), "z_hyp"),
        (dict(r=float("nan")), "finite"),
        (dict(gate_slope=float("inf")), "finite"),
        (dict(num_layers=0), "num_layers"),
        (dict(hidden_size=0), "hidden_size"),
    ],
)
def test_rejects_invalid_configuration(kwargs, match):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        SRC(**args)


def test_fused_unavailable_raises_with_reason(monkeypatch):
    import srcext._extension as ext

    monkeypatch.setattr(ext, "_load_error", ImportError("libfoo.so: cannot open"))
    with pytest.raises(RuntimeError, match="could not be loaded.*libfoo"):
        SRC(3, 4, backend="fused")(torch.zeros(2, 1, 3))
    # the reference backend, and "auto", still run
    out, _ = SRC(3, 4, backend="auto")(torch.zeros(2, 1, 3))
    assert out.shape == (2, 1, 4)


def test_fused_on_cuda_requested_without_cuda_kernels_raises(monkeypatch):
    import srcext._extension as ext
    from srcext.layer import use_fused

    monkeypatch.setattr(ext, "_FUSED_DEVICE_TYPES", frozenset({"cpu"}))
    with pytest.raises(RuntimeError, match="fused.*not available for cuda.*without CUDA"):
        use_fused("fused", torch.device("cuda"))
    assert use_fused("auto", torch.device("cuda")) is False


def test_import_without_extension_still_gives_reference(tmp_path):
    """A fresh interpreter where srcext._C fails to load: import works, reference runs."""
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, builtins
        real_import = builtins.__import__
        def fake_import(name, globals=None, locals=None, fromlist=(), level=0):
            if fromlist and "_C" in fromlist and globals and globals.get("__name__", "").startswith("srcext"):
                raise ImportError("simulated: undefined symbol")
            return real_import(name, globals, locals, fromlist, level)
        builtins.__import__ = fake_import
        import torch, srcext
        assert not srcext.extension_loaded()
        out, _ = srcext.SRC(3, 4)(torch.zeros(5, 2, 3))
        assert out.shape == (5, 2, 4)
        try:
            srcext.SRC(3, 4, backend="fused")(torch.zeros(5, 2, 3))
        except RuntimeError as e:
            assert "simulated" in str(e), e
        else:
            raise SystemExit("fused did not raise")
        print("ok")
    """)
    # SRCEXT_NO_COMPILE: no compile on first use either (else it would build the kernels from
    # the checkout's csrc/ and load them)
    env = {**os.environ, "SRCEXT_NO_COMPILE": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr


def test_repr_names_changed_constants():
    text = repr(SRC(3, 4, r=1.5, detach_recurrent=False))
    assert "r=1.5" in text and "detach_recurrent=False" in text
