"""SRC as a drop-in for torch.nn.GRU (issue 11): the state triple and the rest state,
variable lengths and PackedSequence, nn.GRU's arguments (bias, dropout, bidirectional),
bool/uint8 spikes, and saving with torch.load's default weights_only.

Every comparison runs on both backends against the reference (or against running each
sample alone), in float64."""

import copy
import inspect
import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import srcext
from srcext import SRC, SRCCell, SRCState
from srcext.reference import SRCConstants, src_cell_step
from srcext.state import rest_voltage

from helpers import FLAG_IDS, FLAGS, assert_close, random_constants, requires_fused

BACKENDS = [pytest.param("fused", marks=requires_fused), "reference"]
F64 = torch.float64


def spikes(T, B, F, seed, p=0.4, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g) < p).to(dtype)


def model(*args, backend="reference", gain=5.0, seed=0, **kwargs):
    """An SRC in float64 with weights strong enough that every layer fires."""
    torch.manual_seed(seed)
    kwargs.setdefault("init_rate", None)  # the gain below sets the scale
    m = SRC(*args, backend=backend, dtype=F64, **kwargs)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("weight"):
                p.mul_(gain)
    return m


def cotangent(t, seed):
    return torch.randn(t.shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# ---- 1. the state -----------------------------------------------------------------------


@pytest.mark.parametrize("constants", ["default", "random1", "random2", "bistable"])
def test_rest_state_is_a_fixed_point_of_the_reference_cell_in_float32(constants):
    k = {
        "default": SRCConstants(),
        "random1": random_constants(1),
        "random2": random_constants(2),
        "bistable": SRCConstants(r=7.0, r_s=-3.0, bias_max=-1.0),
    }[constants]
    b = torch.linspace(-12.0, 2.0, 301).clamp(max=k.bias_max)  # effective biases
    layer = SRC(1, 301, bias_max=k.bias_max, **{n: v for n, v in k.as_dict().items() if n != "bias_max"})
    with torch.no_grad():
        layer.bias_l0.copy_(torch.linspace(-12.0, 2.0, 301))
    state = layer.initial_state(4)
    assert isinstance(state, SRCState) and state.h.shape == (1, 4, 301)
    assert torch.equal(state.i, torch.zeros_like(state.i)) and torch.equal(state.h, state.hs)
    rest = (state.i[0], state.h[0], state.hs[0])
    out, after = src_cell_step(torch.zeros(4, 301), rest, b, k)
    for a, r in zip(after, rest):
        assert (a - r).abs().max() <= 1e-6
    assert torch.count_nonzero(out) == 0
    h = rest_voltage(b.double(), k)
    assert (h - torch.tanh((k.r + k.r_s) * h + b.double())).abs().max() <= 1e-12
    if constants == "bistable":  # the lowest of the three roots: the hyperpolarised rest
        assert (h < 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_default_start_is_rest_and_stays_there_without_input(backend):
    m = model(3, 6, 2, backend=backend)
    out, final = m(torch.zeros(30, 2, 3, dtype=F64))
    start = m.initial_state(2)
    assert torch.count_nonzero(out) == 0
    for a, b in zip(final, start):
        assert torch.allclose(a, b, atol=1e-12)
    assert m.initial_state_kind == "rest"
    zeros = SRC(3, 6, initial_state="zeros").initial_state(2)
    assert all(torch.count_nonzero(s) == 0 for s in zeros)


@pytest.mark.parametrize("backend", BACKENDS)
def test_strongly_driven_default_layer_spikes_at_step_zero(backend):
    m = SRC(4, 8, backend=backend, dtype=F64, weight_scale=1.0)
    with torch.no_grad():
        m.weight_l0.fill_(3.0)
    x = torch.ones(15, 2, 4, dtype=F64)
    out, _ = m(x)
    assert (out[0] > 0).all()
    # the spec's zero start cannot spike for its first steps, whatever the input
    zero_start = copy.deepcopy(m)
    zero_start.initial_state_kind = "zeros"
    out_zero, _ = zero_start(x)
    assert torch.count_nonzero(out_zero[:5]) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_forms_accepted(backend):
    m = model(3, 5, 2, backend=backend)
    x = spikes(7, 2, 3, seed=1)
    g = torch.Generator().manual_seed(2)
    i, h, hs = (torch.randn(2, 2, 5, generator=g, dtype=F64) * 0.5 for _ in range(3))
    out, final = m(x, SRCState(i, h, hs))
    assert isinstance(final, SRCState)
    for form in ((i, h, hs), [i, h, hs]):
        out2, final2 = m(x, form)
        assert torch.equal(out, out2) and all(torch.equal(a, b) for a, b in zip(final, final2))
    # a GRU-style h tensor: i = 0, hs = h; zeros is the spec's zero start
    out_h, _ = m(x, h)
    assert torch.equal(out_h, m(x, SRCState(torch.zeros_like(h), h, h))[0])
    out_z, _ = m(x, torch.zeros(2, 2, 5, dtype=F64))
    assert torch.equal(out_z, m(x, m.initial_state(2, kind="zeros"))[0])
    assert torch.equal(m(x, hx=h)[0], out_h)  # nn.GRU's keyword
    with pytest.raises(TypeError, match="both state and hx"):
        m(x, h, hx=h)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_state_forms(backend):
    torch.manual_seed(1)
    cell = SRCCell(3, 5, backend=backend, dtype=F64, weight_scale=6.0)
    x = spikes(1, 4, 3, seed=2)[0]
    h = cell.initial_state(4).h + 0.3
    out, state = cell(x, h)
    assert isinstance(state, SRCState) and state.h.shape == (4, 5)
    ref, _ = cell(x, SRCState(torch.zeros_like(h), h, h))
    assert torch.equal(out, ref) and torch.equal(cell(x, hx=h)[0], out)
    with pytest.raises(TypeError, match="LSTM"):
        cell(x, (h, h))


def test_lstm_pair_and_wrong_shapes_get_clear_errors():
    m = SRC(3, 5, 2)
    x = torch.zeros(4, 2, 3)
    h = torch.zeros(2, 2, 5)
    with pytest.raises(TypeError, match=r"LSTM.*SRCState"):
        m(x, (h, h))
    with pytest.raises(ValueError, match=r"h \(a GRU-style state tensor\) must have shape \(2, 2, 5\)"):
        m(x, torch.zeros(1, 2, 5))
    with pytest.raises(ValueError, match="kind"):
        m.initial_state(2, kind="ones")
    with pytest.raises(ValueError, match="batch_size"):
        m.initial_state(-1)
    with pytest.raises(ValueError, match="initial_state"):
        SRC(3, 5, initial_state="random")


def test_state_fields_are_laid_out_as_gru_h_n():
    """state.h[-1] is the last layer's h (the reverse direction's when bidirectional),
    as h_n[-1] is for torch.nn.GRU, so an h_n[-1] head works on state.h."""
    for bidirectional in (False, True):
        m = model(3, 5, 3, bidirectional=bidirectional, gain=4.0)
        gru = nn.GRU(3, 5, 3, bidirectional=bidirectional)
        x = spikes(6, 2, 3, seed=3)
        _, state = m(x)
        _, h_n = gru(x.float())
        assert state.h.shape == h_n.shape == (3 * (2 if bidirectional else 1), 2, 5)
        head = nn.Linear(5, 4).double()
        assert head(state.h[-1]).shape == (2, 4)
        if not bidirectional:  # row -1: the top layer's h (bidirectional: see below)
            lower = SRC(3, 5, 2, backend="reference", dtype=F64)
            top = SRC(5, 5, backend="reference", dtype=F64)
            lower.load_state_dict({k: v for k, v in m.state_dict().items() if "l2" not in k})
            top.load_state_dict({"weight_l0": m.weight_l2, "bias_l0": m.bias_l2})
            assert torch.equal(top(lower(x)[0])[1].h[0], state.h[-1])
    cell = SRCCell(3, 5)
    assert cell.initial_state(4).h.shape == (4, 5) and cell.initial_state().h.shape == (5,)


# ---- 2. variable lengths ----------------------------------------------------------------


def lengths_case(T, B, seed):
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(0, T + 1, (B,), generator=g)
    n[0], n[-1] = T, 0  # the full length and an empty sample
    return n


def alone(m, x, lengths, state, cot_seed):
    """Each sample run alone on its own steps: outputs (padded with zeros), final states and
    the gradients of the same loss as the batched run."""
    T, B = x.shape[:2]
    params = list(m.parameters())
    outs, finals = [], []
    grads = None
    gx = torch.zeros_like(x)
    gstate = [torch.zeros_like(s) for s in state]
    for b in range(B):
        n = int(lengths[b])
        xb = x[:n, b : b + 1].clone().requires_grad_()
        sb = [s[:, b : b + 1].clone().requires_grad_() for s in state]
        out, final = m(xb, SRCState(*sb))
        pad = torch.zeros((T - n,) + out.shape[1:], dtype=F64)
        outs.append(torch.cat([out, pad])[:, 0])
        finals.append([f[:, 0] for f in final])
        full_cot = cotangent(torch.empty(T, B, out.shape[-1]), cot_seed)
        loss = (out * full_cot[:n, b : b + 1]).sum()
        for j, f in enumerate(final):
            loss = loss + (f * cotangent(torch.empty(state[j].shape), cot_seed + 1 + j)[:, b : b + 1]).sum()
        g = torch.autograd.grad(loss, [xb] + sb + params, allow_unused=True)
        for target, gt in zip([gx[:n]] + gstate, g[:4]):
            if gt is not None:
                target[:, b : b + 1] = gt
        pg = [torch.zeros_like(p) if gp is None else gp for p, gp in zip(params, g[4:])]
        grads = pg if grads is None else [a + c for a, c in zip(grads, pg)]
    out = torch.stack(outs, 1)
    final = [torch.stack([f[j] for f in finals], 1) for j in range(3)]
    return out, final, [gx] + gstate + grads


def batched(m, x, lengths, state, cot_seed):
    x = x.clone().requires_grad_()
    st = [s.clone().requires_grad_() for s in state]
    out, final = m(x, SRCState(*st), lengths=lengths)
    loss = (out * cotangent(out, cot_seed)).sum()
    for j, f in enumerate(final):
        loss = loss + (f * cotangent(f, cot_seed + 1 + j)).sum()
    inputs = [x] + st + list(m.parameters())
    g = torch.autograd.grad(loss, inputs, allow_unused=True)
    return out, final, [torch.zeros_like(t) if gt is None else gt for t, gt in zip(inputs, g)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("detach,st", FLAGS, ids=FLAG_IDS)
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_equal_each_sample_alone(backend, detach, st, bidirectional):
    T, B, F, H, L = 9, 4, 3, 5, 2
    m = model(F, H, L, backend=backend, bidirectional=bidirectional, detach_recurrent=detach, straight_through=st)
    x = spikes(T, B, F, seed=4)
    lengths = lengths_case(T, B, seed=5)
    g = torch.Generator().manual_seed(6)
    rest = m.initial_state(B)  # near rest, so that the layers fire within 9 steps
    state = [s + torch.randn(s.shape, generator=g, dtype=F64) * w for s, w in zip(rest, (0.5, 0.1, 0.1))]
    out, final, grads = batched(m, x, lengths, state, 10)
    rout, rfinal, rgrads = alone(m, x, lengths, state, 10)
    assert (out > 0).any()
    assert_close(out, rout, 1e-12, "output")
    for name, a, b in zip("i h hs".split(), final, rfinal):
        assert_close(a, b, 1e-12, f"final {name}")
    names = ["input", "i0", "h0", "hs0"] + [n for n, _ in m.named_parameters()]
    for name, a, b in zip(names, grads, rgrads):
        assert_close(a, b, 1e-9, f"grad {name}")
    for b in range(B):  # zero past each length
        assert torch.count_nonzero(out[int(lengths[b]) :, b]) == 0


@requires_fused
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_lengths_fused_matches_reference(bidirectional):
    fused = model(3, 6, 2, backend="fused", bidirectional=bidirectional, batch_first=True)
    ref = copy.deepcopy(fused)
    ref.backend = "reference"
    x = spikes(11, 5, 3, seed=7).transpose(0, 1).contiguous()  # (B, T, F)
    lengths = lengths_case(11, 5, seed=8).tolist()
    results = []
    for m in (fused, ref):
        xi = x.clone().requires_grad_()
        out, final = m(xi, lengths=lengths)
        loss = (out * cotangent(out, 1)).sum() + (final.h * cotangent(final.h, 2)).sum()
        results.append((out, final, torch.autograd.grad(loss, [xi] + list(m.parameters()))))
    assert results[0][0].shape == (5, 11, 12 if bidirectional else 6)
    assert_close(results[0][0], results[1][0], 1e-10, "output")
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(a, b, 1e-10, "final state")
    for a, b in zip(results[0][2], results[1][2]):
        assert_close(a, b, 1e-8, "gradient")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_packed_sequence_in_and_out_as_gru(backend, enforce_sorted, batch_first, bidirectional):
    T, B, F, H = 8, 5, 3, 4
    m = model(F, H, 2, backend=backend, batch_first=batch_first, bidirectional=bidirectional)
    lengths = torch.tensor([8, 6, 6, 3, 1]) if enforce_sorted else torch.tensor([3, 8, 1, 6, 6])
    x = spikes(T, B, F, seed=9)
    for b in range(B):
        x[int(lengths[b]) :, b] = 0
    xin = x.transpose(0, 1) if batch_first else x
    packed = pack_padded_sequence(xin, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    out, state = m(packed)
    gru_out, _ = nn.GRU(F, H, 2, batch_first=batch_first, bidirectional=bidirectional).double()(packed)
    assert isinstance(out, type(packed))
    assert torch.equal(out.batch_sizes, gru_out.batch_sizes)
    for a, b in ((out.sorted_indices, gru_out.sorted_indices), (out.unsorted_indices, gru_out.unsorted_indices)):
        assert (a is None and b is None) or torch.equal(a, b)
    padded, out_lengths = pad_packed_sequence(out, batch_first=batch_first, total_length=T)
    assert torch.equal(out_lengths, lengths)
    ref_out, ref_state = m(xin, lengths=lengths)
    assert torch.equal(padded, ref_out)
    for a, b in zip(state, ref_state):  # final state in the caller's sample order
        assert torch.equal(a, b)
    # gradients flow back into the packed data
    data = packed.data.clone().requires_grad_()
    out, _ = m(type(packed)(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices))
    (grad,) = torch.autograd.grad(out.data.sum(), data)
    assert grad.shape == data.shape and grad.abs().sum() > 0


def test_lengths_errors():
    m = SRC(3, 4)
    x = torch.zeros(5, 2, 3)
    with pytest.raises(ValueError, match=r"shape \(B,\) = \(2,\)"):
        m(x, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\[0, T\] = \[0, 5\]"):
        m(x, lengths=[6, 1])
    with pytest.raises(ValueError, match=r"\[0, T\]"):
        m(x, lengths=torch.tensor([-1, 1]))
    with pytest.raises(TypeError, match="integer dtype"):
        m(x, lengths=torch.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match="ints"):
        m(x, lengths=[1.5, 2])
    with pytest.raises(ValueError, match="batched"):
        m(x[:, 0], lengths=[3])
    packed = pack_padded_sequence(x, torch.tensor([5, 3]))
    with pytest.raises(ValueError, match="PackedSequence"):
        m(packed, lengths=[5, 3])


# ---- 3. nn.GRU parity -------------------------------------------------------------------


def test_positional_arguments_in_nn_gru_order():
    gru_params = list(inspect.signature(nn.modules.rnn.RNNBase.__init__).parameters)
    gru_order = gru_params[gru_params.index("input_size") : gru_params.index("bidirectional") + 1]
    src_params = list(inspect.signature(SRC.__init__).parameters)
    assert src_params[1 : 1 + len(gru_order)] == gru_order
    m = SRC(3, 4, 2, False, True, 0.25, True)
    assert (m.num_layers, m.bias, m.batch_first, m.dropout, m.bidirectional, m.num_directions) == (
        2,
        False,
        True,
        0.25,
        True,
        2,
    )
    m.flatten_parameters()  # a no-op, as called by code written for cuDNN RNNs
    cell_params = list(inspect.signature(SRCCell.__init__).parameters)
    assert cell_params[1:4] == ["input_size", "hidden_size", "bias"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bias_false_keeps_b_fixed(backend):
    m = SRC(3, 4, 2, bias=False, backend=backend, dtype=F64, bias_init=-5.5, init_rate=None)
    assert [n for n, _ in m.named_parameters()] == ["weight_l0", "weight_l1"]
    assert set(m.state_dict()) == {"weight_l0", "bias_l0", "weight_l1", "bias_l1", "data_init_done"}
    assert torch.equal(m.bias_l1, torch.full((4,), -5.5, dtype=F64))
    withbias = SRC(3, 4, 2, backend=backend, dtype=F64, bias_init=-5.5, init_rate=None)
    withbias.load_state_dict(m.state_dict())
    x = spikes(6, 2, 3, seed=1)
    assert torch.equal(m(x)[0], withbias(x)[0])
    cell = SRCCell(3, 4, False)
    assert [n for n, _ in cell.named_parameters()] == ["weight"] and "bias" in cell.state_dict()


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_between_layers_only_in_training(backend):
    m = model(3, 6, 3, backend=backend, dropout=0.5)
    plain = copy.deepcopy(m)
    plain.dropout = 0.0
    x = spikes(10, 4, 3, seed=2)
    m.eval()
    assert torch.equal(m(x)[0], plain(x)[0])
    m.train()
    torch.manual_seed(5)
    out, state = m(x)
    # the same computation by hand: dropout after layers 0 and 1, not after the last
    singles = [SRC(3 if layer == 0 else 6, 6, backend=backend, dtype=F64) for layer in range(3)]
    for layer, single in enumerate(singles):
        single.load_state_dict({"weight_l0": m.layer_weight(layer), "bias_l0": m.layer_bias(layer)})
    torch.manual_seed(5)
    h = x
    finals = []
    for layer, single in enumerate(singles):
        h, f = single(h)
        finals.append(f)
        if layer < 2:
            h = nn.functional.dropout(h, 0.5, training=True)
    assert torch.equal(out, h)
    assert torch.equal(state.h, torch.cat([f.h for f in finals]))
    assert not torch.equal(out, plain(x)[0])
    with pytest.warns(UserWarning, match="num_layers=1"):
        SRC(3, 4, 1, dropout=0.3)
    for bad in (-0.1, 1.5, "0.2", True):
        with pytest.raises(ValueError, match="dropout"):
            SRC(3, 4, 2, dropout=bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_bidirectional_is_two_stacks_as_nn_gru(backend, with_lengths):
    T, B, F, H = 7, 3, 4, 5
    m = model(F, H, 2, backend=backend, bidirectional=True)
    assert [n for n, _ in m.named_parameters()] == [
        "weight_l0",
        "bias_l0",
        "weight_l0_reverse",
        "bias_l0_reverse",
        "weight_l1",
        "bias_l1",
        "weight_l1_reverse",
        "bias_l1_reverse",
    ]
    assert m.weight_l1.shape == (H, 2 * H)
    assert m.initial_state(B).h.shape == (4, B, H)
    x = spikes(T, B, F, seed=3)
    lengths = torch.tensor([7, 4, 1]) if with_lengths else torch.full((B,), T)
    out, state = m(x, lengths=lengths if with_lengths else None)
    assert out.shape == (T, B, 2 * H)
    # by hand, per sample: forward on x[:n], backward on x[:n] flipped, concatenated
    for b in range(B):
        n = int(lengths[b])
        h = x[:n, b : b + 1]
        for layer in range(2):
            fwd = SRC(h.shape[-1], H, backend=backend, dtype=F64, init_rate=None)
            bwd = SRC(h.shape[-1], H, backend=backend, dtype=F64, init_rate=None)
            for single, rev in ((fwd, False), (bwd, True)):
                single.weight_l0.data.copy_(m.layer_weight(layer, rev))
                single.bias_l0.data.copy_(m.layer_bias(layer, rev))
            of, sf = fwd(h)
            ob, sb = bwd(h.flip(0))
            h = torch.cat([of, ob.flip(0)], -1)
            for j in range(3):
                field = state._fields[j]
                assert torch.allclose(getattr(state, field)[2 * layer, b], getattr(sf, field)[0, 0], atol=1e-12)
                assert torch.allclose(getattr(state, field)[2 * layer + 1, b], getattr(sb, field)[0, 0], atol=1e-12)
        assert torch.allclose(out[:n, b], h[:, 0], atol=1e-12)
        assert torch.count_nonzero(out[n:, b]) == 0


@requires_fused
def test_bidirectional_fused_matches_reference_with_gradients():
    fused = model(4, 6, 2, backend="fused", bidirectional=True, detach_recurrent=False)
    ref = copy.deepcopy(fused)
    ref.backend = "reference"
    x = spikes(12, 3, 4, seed=4)
    res = []
    for m in (fused, ref):
        xi = x.clone().requires_grad_()
        out, st = m(xi)
        loss = (out * cotangent(out, 3)).sum() + (st.hs * cotangent(st.hs, 4)).sum()
        res.append([out] + list(torch.autograd.grad(loss, [xi] + list(m.parameters()))))
    for a, b in zip(*res):
        assert_close(a, b, 1e-8, "bidirectional")


def test_unsupported_arguments_and_repr():
    with pytest.raises(ValueError, match="proj_size"):
        SRC(3, 4, proj_size=2)
    with pytest.raises(TypeError, match="nonlinearity"):
        SRC(3, 4, nonlinearity="tanh")
    with pytest.raises(TypeError, match="bidirectional"):
        SRC(3, 4, bidirectional=1)
    with pytest.raises(TypeError, match="bias must be"):
        SRC(3, 4, 1, "yes")
    m = SRC(
        3,
        4,
        2,
        bias=False,
        batch_first=True,
        dropout=0.1,
        bidirectional=True,
        r=1.5,
        initial_state="zeros",
        stateful=True,
        return_state=False,
        weight_scale=2.0,
    )
    text = repr(m)
    for part in (
        "SRC(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.1, bidirectional=True, backend='auto'",
        "initial_state='zeros'",
        "stateful=True",
        "return_state=False",
        "r=1.5",
        "r_s=-7.0",
        "bias_max=-4.0",
        "bias_init=-6.0",
        "weight_scale=2.0",
        "bias_straight_through=True",
        "detach_recurrent=True",
    ):
        assert part in text, (part, text)


def test_old_checkpoints_and_pickles_still_load():
    """state_dict keys of unidirectional stacks are unchanged; a module pickled before the
    new attributes existed keeps the zero start and the clamp gradient it had."""
    m = SRC(3, 4, 2)
    old_keys = {"weight_l0", "bias_l0", "weight_l1", "bias_l1"}
    assert set(m.state_dict()) == old_keys | {"data_init_done"}  # the one new key: a buffer
    fresh = SRC(3, 4, 2)
    fresh.load_state_dict({k: v.clone() for k, v in m.state_dict().items() if k in old_keys})  # strict
    assert bool(fresh.data_init_done)  # an old checkpoint's weights are final
    old = SRC(3, 4, 2, backend="reference")
    for attr in (
        "initial_state_kind",
        "bias_straight_through",
        "stateful",
        "return_state",
        "state",
        "_spike_recorder",
        "trainable_bias",
        "dropout",
        "bidirectional",
        "num_directions",
        "init_rate",
        "output",
        "_data_init_pending",
        "_silence_watch",
        "_sequential_checked",
    ):
        del old.__dict__[attr]
    del old._buffers["data_init_done"]
    revived = pickle.loads(pickle.dumps(old))
    assert revived.initial_state_kind == "zeros" and revived.bias_straight_through is False
    out, state = revived(torch.zeros(3, 2, 3))
    assert out.shape == (3, 2, 4) and state.h.shape == (2, 2, 4)
    assert bool(revived.data_init_done) and revived.init_rate is None
    revived.reset_parameters()  # works on the revived module (its buffer was added)
    # pickled when the bias setting was SRC.bias / _bias_trainable: it keeps its value
    for key in ("bias", "_bias_trainable"):
        frozen = SRC(3, 4, bias=False)
        frozen.__dict__[key] = frozen.__dict__.pop("trainable_bias")
        assert pickle.loads(pickle.dumps(frozen)).bias is False, key


# ---- 6. spike dtypes and saving ---------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8])
def test_bool_and_uint8_spikes(backend, dtype):
    m = model(5, 6, 2, backend=backend)
    x = spikes(9, 3, 5, seed=5)
    out, state = m(x.to(dtype))
    ref, ref_state = m(x)
    assert out.dtype == F64 and torch.equal(out, ref) and torch.equal(state.h, ref_state.h)
    packed = pack_padded_sequence(x.to(dtype), torch.tensor([9, 4, 2]))
    assert torch.equal(m(packed)[0].data, m(pack_padded_sequence(x, torch.tensor([9, 4, 2])))[0].data)
    cell = SRCCell(5, 6, backend=backend, dtype=F64)
    assert torch.equal(cell(x[0].to(dtype))[0], cell(x[0])[0])


def test_torch_save_and_default_torch_load(tmp_path):
    torch.manual_seed(0)
    x = spikes(6, 2, 3, seed=6, dtype=torch.float32)
    stateful = SRC(3, 4, 2, bidirectional=True, stateful=True)
    stateful(x)  # holds an SRCState now
    for obj in (
        SRC(3, 4, 2, bias=False),
        SRCCell(3, 4),
        stateful,
        srcext.models.SRCClassifier(3, num_classes=2, hidden_size=4),
    ):
        path = tmp_path / "model.pt"
        torch.save(obj, path)
        loaded = torch.load(path)  # weights_only=True, the default
        assert type(loaded) is type(obj)
        for a, b in zip(loaded.state_dict().values(), obj.state_dict().values()):
            assert torch.equal(a, b)
    assert isinstance(loaded.layers[0].constants, SRCConstants)
    assert torch.equal(loaded(x), obj(x))
    # a user's own container needs only its own classes allowed, not srcext's
    seq = nn.Sequential(SRC(3, 4, return_state=False), nn.Linear(4, 2))
    torch.save(seq, tmp_path / "seq.pt")
    with torch.serialization.safe_globals([nn.Sequential, nn.Linear]):
        loaded = torch.load(tmp_path / "seq.pt")
    assert torch.equal(loaded(x), seq(x))


def test_rest_state_is_solved_once_per_bias_value(monkeypatch):
    """state=None needs the rest state on every call; it is solved again only when a bias
    changes (an optimizer step, load_state_dict) or the constants do."""
    import srcext.layer_base as layer_module

    calls = []
    real = layer_module.rest_voltage
    monkeypatch.setattr(layer_module, "rest_voltage", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(0)
    model = SRC(6, 9, 2, backend="fused", weight_scale=5.0)
    x = (torch.rand(12, 3, 6) < 0.5).float()
    first, _ = model(x)
    again, _ = model(x)
    assert len(calls) == 1 and torch.equal(first, again)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    first.sum().backward()
    opt.step()  # moves the biases in place
    after = model.initial_state(3)
    assert len(calls) == 2
    fresh = real(
        torch.stack([torch.clamp(model.bias_l0.detach(), max=-4.0), torch.clamp(model.bias_l1.detach(), max=-4.0)]),
        model.constants,
    )
    assert torch.equal(after.h[:, 0], fresh.to(after.h.dtype))
    with torch.no_grad():
        model.load_state_dict(SRC(6, 9, 2).state_dict())
    model.initial_state(3)
    assert len(calls) == 3


def test_small_rest_starts_are_held_contiguous_and_left_unwritten():
    """A fused call from rest reads a cached start: contiguous for a small layer (the op then
    copies nothing per call), an expansion holding no memory for a large one; and the calls
    never write it, so the next call starts from the same rest (the same output)."""
    import srcext.layer_base as layer_module

    torch.manual_seed(0)
    small = SRC(6, 9, 2, backend="fused")
    x = (torch.rand(12, 3, 6) < 0.5).float()
    first = small(x)[0]
    start = small._rest_start(3)
    assert all(t.is_contiguous() for t in start) and start.h.shape == (2, 3, 9)
    assert torch.equal(start.h, small.initial_state(3).h) and not start.i.any()
    before = [t.clone() for t in start]
    first.sum().backward()
    again = small(x)[0]
    assert torch.equal(first, again)
    assert all(torch.equal(a, b) for a, b in zip(small._rest_start(3), before))
    large = SRC(6, 64, backend="fused")
    batch = layer_module._MATERIALISED_REST_START // 64 + 1
    big = large._rest_start(batch)
    assert big.h.stride()[-2] == 0 and big.i.stride() == (0, 0, 0)
    assert torch.equal(big.h, large.initial_state(batch).h)
