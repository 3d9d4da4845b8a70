"""Cell constants as one tensor, per layer or per neuron, and learnable (issue 13): the fused
ops' gradients of the constants against autograd through the reference, gradcheck, opcheck,
the layers' learn= / per_neuron= options, saving and loading, and bad input."""

import io
import json
import pathlib
import pickle
import re

import pytest
import torch

import srcext
from srcext import SRC, SRCCell
from srcext.constants import CELL_CONSTANTS, NUM_CELL_CONSTANTS, SRCConstants, constants_tensor, raw_value
from srcext.models import SRCClassifier
from srcext.ops import CHECKPOINT_INTERVAL, src_recurrence_fused
from srcext.reference import src_recurrence_reference

import cuda_emulation
from cuda_emulation import src_recurrence as emulated
from helpers import FLAG_IDS, FLAGS, assert_close, random_constants, requires_fused, tolerance

pytestmark = requires_fused

ROOT = pathlib.Path(__file__).resolve().parents[1]
K = CHECKPOINT_INTERVAL
# A partial last chunk, several chunks, more neurons than a CPU block (64 lanes).
SHAPES = [(2 * K + 5, 3, 7), (K, 2, 70)]
SHAPE_IDS = [f"T{t}-B{b}-H{h}" for t, b, h in SHAPES]
KINDS = ["per_layer", "per_neuron", "per_layer_expanded"]


def the_constants(kind: str, H: int, seed: int) -> torch.Tensor:
    """float64 constants inside the valid ranges: (K,), (K, H) different per neuron, or a
    per-layer (K,) seen as (K, H) through a stride-0 view."""
    if kind == "per_neuron":
        per = [random_constants(1000 * seed + h) for h in range(H)]
        return torch.tensor([[getattr(k, n) for k in per] for n in CELL_CONSTANTS], dtype=torch.float64)
    k = constants_tensor(random_constants(seed), torch.float64)
    return k.unsqueeze(1).expand(NUM_CELL_CONSTANTS, H) if kind == "per_layer_expanded" else k


def inputs(T, B, H, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(T, B, H, generator=g, dtype=torch.float64) * 0.8 + 0.25
    bias = -4.0 - torch.rand(H, generator=g, dtype=torch.float64) * 1.5
    state = [torch.randn(B, H, generator=g, dtype=torch.float64) * 0.5 for _ in range(3)]
    # Both sides start from values the storage dtype holds.
    return [t.to(dtype).double() for t in [u, bias] + state]


def run_with_grads(fn, leaves64, k64, dtype, detach, st, seed, lengths=None):
    """Outputs and the gradients of (u, bias, i0, h0, hs0, constants) of a random linear loss
    of every output, with the data in `dtype` and the constants in the math's precision (the
    reference: float64 throughout)."""
    kdtype = torch.float64 if dtype == torch.float64 else torch.float32
    if fn is src_recurrence_reference:
        dtype = kdtype = torch.float64
    leaves = [t.to(dtype).requires_grad_() for t in leaves64]
    k = k64.to(kdtype).detach().requires_grad_()
    kin = k if k64.stride()[-1] != 0 else k[:, :1].expand(k64.shape)  # keep a stride-0 view
    u, b, i0, h0, hs0 = leaves
    spikes, final = fn(u, b, (i0, h0, hs0), kin, detach, st, lengths=lengths)
    outs = (spikes,) + tuple(final)
    g = torch.Generator().manual_seed(seed + 1)
    loss = sum((o * torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)).sum() for o in outs)
    grads = torch.autograd.grad(loss, leaves + [k], allow_unused=True)
    return ([o.detach().double() for o in outs], [None if gr is None else gr.double() for gr in grads])


def check_against_reference(fused, dtype, shape, kind, detach, st, seed=0, lengths=None):
    T, B, H = shape
    leaves = inputs(T, B, H, dtype, seed)
    k = the_constants(kind, H, seed)
    outs, grads = run_with_grads(fused, leaves, k, dtype, detach, st, seed, lengths)
    ref_outs, ref_grads = run_with_grads(src_recurrence_reference, leaves, k, dtype, detach, st, seed, lengths)
    assert (ref_outs[0] > 0).any(), "the test drives no spike"
    tol = tolerance(dtype, detach)
    for name, a, e in zip(("spikes", "i_n", "h_n", "hs_n"), outs, ref_outs):
        assert_close(a, e, tolerance(dtype, True), name)
    names = ("u", "bias", "i0", "h0", "hs0")
    for name, a, e in zip(names, grads[:5], ref_grads[:5]):
        assert_close(a, e, tol, f"grad {name}")
    # Every constant's gradient, row by row (each is a sum over all steps and samples; with
    # half-precision storage the rounded spikes and states move the small sums more).
    assert grads[5].shape == k.shape
    assert_close(grads[5], ref_grads[5], tol, "grad constants")
    row_tol = tol if dtype in (torch.float64, torch.float32) else 0.1
    for j, name in enumerate(CELL_CONSTANTS):
        assert_close(grads[5][j], ref_grads[5][j], row_tol, f"grad {name}")
    # The constants matter: their gradients are not all zero.
    assert ref_grads[5].abs().sum() > 0


# ---- one definition of the constants --------------------------------------------------------


def test_constant_names_and_order_agree_with_the_header():
    """The X-macro list of csrc/common/src_constants.h, which makes the C++ indices and names,
    is CELL_CONSTANTS in order."""
    text = (ROOT / "csrc" / "common" / "src_constants.h").read_text()
    listing = re.search(r"#define SRC_CELL_CONSTANTS\(X\)(.*?)\n\n", text, re.S).group(1)
    entries = re.findall(r"X\((\w+), (k\w+)\)", listing)
    assert tuple(name for name, _ in entries) == CELL_CONSTANTS
    # enumerators spell the names: kAlpha ~ alpha, kRS ~ r_s, kGateThreshold ~ gate_threshold
    for name, member in entries:
        assert member[1:].lower() == name.replace("_", "").lower()


def test_ops_and_layer_do_not_take_constants_from_the_reference():
    pkg = ROOT / "srcpkg" / "srcext"
    for module in ("ops/recurrence.py", "layer.py", "state.py"):
        source = (pkg / module).read_text()
        assert not re.search(r"from \.reference import[^\n]*(SRCConstants|DEFAULTS|BIAS_INIT)", source), module
    assert srcext.SRCConstants is srcext.reference.SRCConstants  # still importable from there


# ---- the ops --------------------------------------------------------------------------------


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_constant_gradients_match_reference(dtype, shape, kind, detach, st):
    check_against_reference(src_recurrence_fused, dtype, shape, kind, detach, st)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("kind", ["per_layer", "per_neuron"])
@pytest.mark.parametrize("detach", [True, False], ids=["detach", "exact"])
def test_constant_gradients_half_storage(dtype, kind, detach):
    check_against_reference(src_recurrence_fused, dtype, (K + 3, 2, 9), kind, detach, True)


@pytest.mark.parametrize("kind", ["per_layer", "per_neuron"])
@pytest.mark.parametrize("detach", [True, False], ids=["detach", "exact"])
def test_constant_gradients_with_lengths(kind, detach):
    lengths = torch.tensor([2 * K + 5, 0, K + 2])
    check_against_reference(src_recurrence_fused, torch.float64, SHAPES[0], kind, detach, False, lengths=lengths)


def test_per_neuron_constants_equal_to_the_layer_values_give_the_same_result():
    T, B, H = K + 4, 2, 5
    u, b, i0, h0, hs0 = inputs(T, B, H, torch.float64, 3)
    k = random_constants(3)
    per_layer = src_recurrence_fused(u, b, (i0, h0, hs0), k, False, False)
    per_neuron = src_recurrence_fused(
        u, b, (i0, h0, hs0), constants_tensor(k, torch.float64)[:, None].repeat(1, H), False, False
    )
    for a, e in zip((per_layer[0],) + per_layer[1], (per_neuron[0],) + per_neuron[1]):
        assert torch.equal(a, e)


@pytest.mark.parametrize("kind", ["per_neuron", "per_layer"])
def test_gradcheck_with_tensor_constants_float64(kind):
    """The exact gradient setting (the others are surrogates: no finite difference agrees)."""
    T, B, H = 2 * K + 3, 2, 3
    leaves = [t.requires_grad_() for t in inputs(T, B, H, torch.float64, 5)]
    k = the_constants(kind, H, 5)
    k[CELL_CONSTANTS.index("z")] = 0.3  # z > 0 so that its derivative is exercised
    k.requires_grad_()

    def f(u, b, i0, h0, hs0, k):
        spikes, final = src_recurrence_fused(u, b, (i0, h0, hs0), k, False, False)
        return (spikes,) + tuple(final)

    assert torch.autograd.gradcheck(f, leaves + [k], eps=1e-6, atol=1e-7, rtol=1e-5)


def op_args(T, B, H, seed=0, requires_grad=True):
    tensors = inputs(T, B, H, torch.float64, seed)
    return [t.requires_grad_(requires_grad) for t in tensors]


@pytest.mark.parametrize("kind", ["per_layer", "per_neuron"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_opcheck_with_tensor_constants(kind, detach, st):
    T, B, H = K + 5, 2, 3
    k = the_constants(kind, H, 1).requires_grad_()
    torch.library.opcheck(torch.ops.srcext.src_forward.default, op_args(T, B, H) + [k, detach, st, True])
    u, bias, i0, h0, hs0 = op_args(T, B, H, requires_grad=False)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, k.detach(), detach, st, True)
    grads = [torch.randn_like(u)] + [torch.randn_like(i0) for _ in range(3)]
    for constants_grad in (True, False):
        torch.library.opcheck(
            torch.ops.srcext.src_backward.default,
            grads + [u, bias, out[4], k.detach(), detach, st, constants_grad],
            test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"),
        )


def test_backward_op_returns_constant_gradients_only_when_asked():
    T, B, H = 5, 2, 3
    u, bias, i0, h0, hs0 = op_args(T, B, H, requires_grad=False)
    k = the_constants("per_neuron", H, 0)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, k, True, True, True)
    grads = [torch.randn_like(u)] + [torch.randn_like(i0) for _ in range(3)]
    with_k = torch.ops.srcext.src_backward(*grads, u, bias, out[4], k, True, True, True)
    without = torch.ops.srcext.src_backward(*grads, u, bias, out[4], k, True, True, False)
    assert with_k[5].shape == k.shape and without[5].numel() == 0
    for a, e in zip(with_k[:5], without[:5]):
        assert torch.equal(a, e)  # the other gradients do not depend on it


def test_bad_constants_tensors_raise_clear_errors():
    T, B, H = 4, 2, 3
    u, bias, i0, h0, hs0 = op_args(T, B, H, requires_grad=False)
    good = constants_tensor(SRCConstants(), torch.float64)
    cases = [
        (good[:8], ValueError, r"shape \(K,\) = \(9,\).*\(K, H\) = \(9, 3\)"),
        (good[:, None].repeat(1, H + 1), ValueError, r"\(K, H\) = \(9, 3\)"),
        (good.float(), TypeError, "dtype Double"),
        (good[None, :, None], ValueError, "shape"),
    ]
    for k, exc, match in cases:
        with pytest.raises(exc, match=match):
            torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, k, True, True, False)
    out = torch.ops.srcext.src_forward(u, bias, i0, h0, hs0, good, True, True, True)
    grads = [torch.zeros_like(u)] + [torch.zeros_like(i0)] * 3
    with pytest.raises(ValueError, match="shape"):
        torch.ops.srcext.src_backward(*grads, u, bias, out[4], good[:5], True, True, True)
    # The Python entry points say the same before calling the op.
    with pytest.raises(ValueError, match=r"\(K, H\) = \(9, 3\)"):
        src_recurrence_fused(u, bias, (i0, h0, hs0), torch.zeros(9, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(K, H\) = \(9, 3\)"):
        src_recurrence_reference(u, bias, (i0, h0, hs0), torch.zeros(9, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="SRCConstants or a tensor"):
        src_recurrence_fused(u, bias, (i0, h0, hs0), [0.9] * 9)


# ---- the CUDA kernels, emulated on the host -------------------------------------------------


@pytest.fixture(scope="module")
def emu():
    return cuda_emulation.load()


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_emulated_constant_gradients_match_reference(emu, dtype, kind, detach, st):
    check_against_reference(emulated, dtype, (2 * K + 5, 3, 7), kind, detach, st)


@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("kind", ["per_layer", "per_neuron"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
def test_emulated_gradients_do_not_depend_on_the_constants_being_learned(emu, dtype, kind, detach, st):
    """The CUDA kernels give bitwise the same gradients of the drive, bias and start state
    whether the constants' gradients are asked for or not (their own instances, and per-layer
    constants then read per neuron through stride 0: one lane where the other runs two), as
    the CPU op does (test_backward_op_returns_constant_gradients_only_when_asked). T leaves
    a partial chunk beside full ones."""
    T, B, H = 2 * K + 5, 3, 6
    u, b, i0, h0, hs0 = (t.to(dtype) for t in inputs(T, B, H, torch.float64, 4))
    upstream = torch.randn(T, B, H, generator=torch.Generator().manual_seed(5)).to(dtype)
    results = []
    for learn in (False, True):
        k = the_constants(kind, H, 2).float().requires_grad_(learn)
        leaves = [t.clone().requires_grad_() for t in (u, b, i0, h0, hs0)]
        spikes, final = emulated(leaves[0], leaves[1], tuple(leaves[2:]), k, detach, st)
        loss = (spikes * upstream).sum() + sum((f.float() * (j + 1)).sum() for j, f in enumerate(final))
        results.append(torch.autograd.grad(loss, leaves))
    for a, e in zip(*results):
        assert torch.equal(a, e)


def test_emulated_launches_name_the_dynamics_instances(emu):
    """Per-neuron constants and wanted constant gradients launch their own kernel instances;
    per-layer constants without gradients launch the default ones."""
    T, B, H = K + 1, 2, 3
    u, b, i0, h0, hs0 = inputs(T, B, H, torch.float32, 0)
    data = [t.float() for t in (u, b, i0, h0, hs0)]
    data[0].requires_grad_()
    names = {}
    for kind in ("per_layer", "per_neuron"):
        for learn in (False, True):
            k = the_constants(kind, H, 0).float().requires_grad_(learn)
            emu.clear_launches()
            spikes, _ = emulated(data[0], data[1], tuple(data[2:]), k, True, True)
            spikes.sum().backward()
            names[kind, learn] = [r["kernel"] for r in emu.launches()]
    # The detached backward: <scalar_t, Acc, straight_through, lengths, per_neuron,
    # constant_grads, lanes>.
    backward = "srcext::cuda::src_detached_backward_kernel<float, float, true, false"
    assert names["per_layer", False] == [
        "srcext::cuda::src_forward_kernel<float, float, true, false, false, 1>",
        f"{backward}, false, false, 1>",
    ]
    assert names["per_layer", True] == [  # read per neuron through stride 0 for the gradients
        "srcext::cuda::src_forward_kernel<float, float, true, false, false, 1>",
        f"{backward}, true, true, 1>",
    ]
    assert names["per_neuron", False] == [
        "srcext::cuda::src_forward_kernel<float, float, true, false, true, 1>",
        f"{backward}, true, false, 1>",
    ]
    assert names["per_neuron", True][1] == f"{backward}, true, true, 1>"


@pytest.mark.parametrize("kind", ["per_layer", "per_neuron"])
def test_emulated_constant_gradients_bf16_and_lengths(emu, kind):
    check_against_reference(emulated, torch.bfloat16, (K + 3, 2, 9), kind, False, True)
    check_against_reference(
        emulated, torch.float64, SHAPES[0], kind, True, False, lengths=torch.tensor([2 * K + 5, 0, K + 2])
    )


requires_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and srcext.fused_available("cuda")), reason="no CUDA device"
)


@requires_cuda
@pytest.mark.parametrize("where", ["cpu", "cuda"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_cuda_constant_gradients_match_reference(kind, where, detach, st):
    """On a GPU: per-layer constants on the CPU (launch arguments) or on the device (read per
    neuron through a stride-0 view), and per-neuron ones."""

    def on_cuda(u, bias, state, k, detach_recurrent, straight_through, lengths=None):
        spikes, final = src_recurrence_fused(
            u.cuda(),
            bias.cuda(),
            tuple(s.cuda() for s in state),
            k.to(where),
            detach_recurrent,
            straight_through,
            lengths=None if lengths is None else lengths.cuda(),
        )
        return spikes.cpu(), tuple(f.cpu() for f in final)

    for dtype in (torch.float64, torch.float32):
        check_against_reference(on_cuda, dtype, (2 * K + 5, 3, 300), kind, detach, st)


# ---- the layers -----------------------------------------------------------------------------

ALL = CELL_CONSTANTS


def test_learned_constants_are_parameters_initialised_at_the_given_values():
    m = SRC(
        4,
        6,
        2,
        learn=("alpha", "rho", "r", "z_hyp", "gate_slope", "z"),
        per_neuron=True,
        alpha=0.8,
        rho=2.5,
        r=1.5,
        z_hyp=0.7,
        gate_slope=8.0,
    )
    names = dict(m.named_parameters())
    for layer in range(2):
        assert names[f"alpha_raw_l{layer}"].shape == (6,)
        k = m.cell_constants(layer)
        assert k.shape == (NUM_CELL_CONSTANTS, 6)
        expected = dict(m.constants.as_dict())
        for j, name in enumerate(CELL_CONSTANTS):
            tol = 1.01e-4 if name == "z" else 1e-6  # z = 0 starts 1e-4 inside its range
            assert torch.allclose(k[j], torch.full((6,), expected[name]), atol=tol), name
    assert "r_s_raw_l0" not in names  # not learned
    per_layer = SRC(4, 6, learn="alpha")
    assert dict(per_layer.named_parameters())["alpha_raw_l0"].shape == ()
    assert per_layer.cell_constants().shape == (NUM_CELL_CONSTANTS,)
    cell = SRCCell(4, 6, learn=("rho",), per_neuron=True)
    assert dict(cell.named_parameters())["rho_raw"].shape == (6,)


def test_parametrisation_keeps_constants_in_range():
    m = SRC(3, 5, learn=("alpha", "rho", "z", "z_hyp", "z_dep"), per_neuron=True)
    with torch.no_grad():
        for p in m.parameters():
            if p.dim() == 1 and p.shape == (5,):
                p.copy_(torch.tensor([-50.0, -3.0, 0.0, 3.0, 50.0]))
    k = m.cell_constants()
    for name in ("alpha", "z", "z_hyp", "z_dep"):
        row = k[CELL_CONSTANTS.index(name)]
        assert ((row >= 0) & (row <= 1)).all(), name
    assert (k[CELL_CONSTANTS.index("rho")] > 0).all()


@pytest.mark.parametrize("per_neuron", [False, True], ids=["per_layer", "per_neuron"])
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
def test_layer_fused_gradients_of_learned_constants_match_reference(per_neuron, detach, st):
    torch.manual_seed(0)
    kwargs = dict(
        learn=ALL,
        per_neuron=per_neuron,
        detach_recurrent=detach,
        straight_through=st,
        z=0.2,
        z_dep=0.1,
        weight_scale=4.0,
        dtype=torch.float64,
    )
    fused = SRC(5, 70, 2, backend="fused", **kwargs)
    ref = SRC(5, 70, 2, backend="reference", **kwargs)
    with torch.no_grad():  # different per-neuron values, the same in both
        for n, p in fused.named_parameters():
            if "_raw" in n:
                p.add_(torch.randn_like(p) * 0.1)
    ref.load_state_dict(fused.state_dict())
    x = (torch.rand(2 * K + 3, 3, 5) < 0.5).double()
    for model in (fused, ref):
        out, final = model(x)
        (out.sum() + 0.3 * final.h.sum() + 0.2 * final.hs.sum()).backward()
    fp, rp = dict(fused.named_parameters()), dict(ref.named_parameters())
    learned = [n for n in fp if "_raw" in n]
    assert len(learned) == 2 * NUM_CELL_CONSTANTS
    for name in fp:
        assert_close(fp[name].grad, rp[name].grad, 1e-8, name)
    assert all(fp[n].grad.abs().sum() > 0 for n in learned)


def test_nothing_learnable_has_no_new_parameters_and_same_results():
    torch.manual_seed(0)
    plain = SRC(4, 8, 2)
    assert [n for n, _ in plain.named_parameters()] == ["weight_l0", "bias_l0", "weight_l1", "bias_l1"]
    learned = SRC(4, 8, 2, learn=("r",))
    learned.load_state_dict(plain.state_dict(), strict=False)
    x = (torch.rand(20, 2, 4) < 0.5).float()
    a, b = plain(x)[0], learned(x)[0]
    assert torch.equal(a, b)


def test_state_dict_round_trip_with_learned_constants(tmp_path):
    torch.manual_seed(1)
    m = SRC(4, 6, learn=("alpha", "r_s"), per_neuron=True)
    with torch.no_grad():
        m.alpha_raw_l0.add_(torch.randn(6))
    other = SRC(4, 6, learn=("alpha", "r_s"), per_neuron=True)
    other.load_state_dict(m.state_dict())
    assert torch.equal(other.cell_constants(), m.cell_constants())
    x = (torch.rand(12, 2, 4) < 0.5).float()
    assert torch.equal(other(x)[0], m(x)[0])
    path = tmp_path / "m.pt"
    torch.save(m, path)
    loaded = torch.load(path)  # weights_only: srcext.SAFE_GLOBALS
    assert loaded.learn == ("alpha", "r_s") and loaded.per_neuron
    assert torch.equal(loaded(x)[0], m(x)[0])
    classifier = SRCClassifier(4, hidden_size=6, neurons_per_class=2, learn=ALL, per_neuron=True)
    # The classifier's own config (as checkpoints store it, through JSON) rebuilds it.
    again = SRCClassifier.from_config(json.loads(json.dumps(classifier.config())))
    again.load_state_dict(classifier.state_dict())
    assert again.layers[0].learn == ALL and again.layers[1].per_neuron
    assert torch.equal(again.layers[1].cell_constants(), classifier.layers[1].cell_constants())


def test_a_model_saved_before_the_change_still_loads():
    """Before: constants as a plain SRCConstants attribute (named srcext.reference.
    SRCConstants), no learn / per_neuron attributes."""
    torch.manual_seed(2)
    m = SRC(4, 6, r=1.5)
    x = (torch.rand(10, 2, 4) < 0.5).float()
    expected = m(x)[0]
    old = SRC(4, 6, r=1.5)
    old.load_state_dict(m.state_dict())
    del old.__dict__["learn"], old.__dict__["per_neuron"]
    buffer = io.BytesIO()
    torch.save(old, buffer)
    # The pickle names the class by its old module (same length: the framing stays valid).
    data = buffer.getvalue()
    assert b"srcext.constants" in data
    data = data.replace(b"srcext.constants", b"srcext.reference")
    loaded = torch.load(io.BytesIO(data))  # weights_only=True
    assert loaded.learn == () and not loaded.per_neuron and loaded.constants.r == 1.5
    assert torch.equal(loaded(x)[0], expected)
    # And a state_dict from before has exactly today's keys for a model that learns nothing.
    fresh = SRC(4, 6, r=1.5)
    fresh.load_state_dict(m.state_dict())
    assert pickle.loads(pickle.dumps(fresh.constants)) == m.constants


def test_invalid_learn_and_constants_raise_clear_errors():
    with pytest.raises(ValueError, match="rho must be > 0"):
        SRC(3, 4, rho=0.0, learn=("rho",))
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        SRC(3, 4, alpha=1.5, learn=("alpha",))
    with pytest.raises(ValueError, match="unknown constant 'beta'"):
        SRC(3, 4, learn=("beta",))
    with pytest.raises(ValueError, match="bias_max is not learnable"):
        SRC(3, 4, learn=("bias_max",))
    with pytest.raises(ValueError, match="twice"):
        SRC(3, 4, learn=("r", "r"))
    with pytest.raises(ValueError, match="per_neuron=True needs learn"):
        SRC(3, 4, per_neuron=True)
    with pytest.raises(TypeError, match="per_neuron must be True or False"):
        SRCCell(3, 4, learn=("r",), per_neuron=1)
    m = SRC(3, 4, learn=("r",), per_neuron=True)
    with pytest.raises(RuntimeError, match="size"):
        m.load_state_dict({**m.state_dict(), "r_raw_l0": torch.zeros(5)})


def test_learned_r_moves_the_rest_state():
    m = SRC(3, 4, learn=("r",), per_neuron=True)
    before = m.initial_state(1).h.clone()
    with torch.no_grad():
        m.r_raw_l0.add_(torch.tensor([0.0, 1.0, 2.0, 3.0]))
    after = m.initial_state(1).h[0, 0].double()
    assert after[0] == before[0, 0, 0] and (after[1:] != before[0, 0, 1:]).all()
    # Each neuron's rest voltage is the fixed point of its own (learned) r:
    # h = tanh((r + r_s) h + min(b, bias_max)).
    k = m.cell_constants().detach().double()
    a = k[CELL_CONSTANTS.index("r")] + k[CELL_CONSTANTS.index("r_s")]
    b = torch.clamp(m.bias_l0.detach().double(), max=m.constants.bias_max)
    assert torch.allclose(after, torch.tanh(a * after + b), atol=1e-6)


@pytest.mark.parametrize("per_neuron", [False, True], ids=["per_layer", "per_neuron"])
def test_compile_fullgraph_with_learned_constants(per_neuron):
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = SRC(4, 8, learn=("alpha", "rho", "r_s"), per_neuron=per_neuron, backend="fused")
    x = (torch.rand(K + 2, 2, 4) < 0.5).float()
    expected = m(x)[0]
    expected.sum().backward()
    eager = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    out = compiled(x)[0]
    assert torch.equal(out, expected)
    out.sum().backward()
    for p, g in zip(m.parameters(), eager):
        assert torch.allclose(p.grad, g, rtol=1e-5, atol=1e-6)


def test_raw_value_round_trips():
    for name in CELL_CONSTANTS:
        value = {"alpha": 0.9, "rho": 3.0, "z": 0.3, "z_hyp": 0.9, "z_dep": 0.1}.get(name, -1.5)
        raw = torch.tensor(raw_value(name, value), dtype=torch.float64)
        got = srcext.constants.constrained(name, raw).item()
        assert abs(got - value) < 1e-12, name
