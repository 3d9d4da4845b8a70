"""Layers that fire out of the box: the data-dependent init (init_rate), the warning of a layer
that stays silent or saturates, and the GRU idioms that must never hand back the wrong tensor."""

import gc
import io
import warnings

import pytest
import torch
from torch import nn

import srcext
from srcext import SRC, SRCCell
from srcext.layer import DEFAULT_INIT_RATE

from helpers import requires_fused

BACKENDS = ["reference", pytest.param("fused", marks=requires_fused)]
HEALTHY = (0.005, 0.5)  # the firing range every layer must be in after a first training step


class Head(nn.Module):
    """An SRC stack with a linear classifier on its mean output."""

    def __init__(self, rnn: SRC, classes: int = 10):
        super().__init__()
        self.rnn = rnn
        self.fc = nn.Linear(rnn.hidden_size, classes)

    def forward(self, x):
        return self.fc(self.rnn(x)[0].mean(0))


def inputs(kind: str, batch: int, g: torch.Generator) -> torch.Tensor:
    """Inputs of the field, time-major (T, B, F)."""
    if kind == "spikes 10%":  # the README's example
        return (torch.rand(60, batch, 784, generator=g) < 0.1).float()
    if kind == "700 ch at 2%":  # a spike sensor (SHD-like)
        return (torch.rand(80, batch, 700, generator=g) < 0.02).float()
    if kind == "rate-coded images":  # pixels of intensity p spike with probability 0.25 p
        pixels = torch.rand(1, batch, 784, generator=g) ** 3
        return (torch.rand(60, batch, 784, generator=g) < 0.25 * pixels).float()
    if kind == "N(0,1) features":
        return torch.randn(50, batch, 40, generator=g)
    raise ValueError(kind)


def one_adam_step(model: nn.Module, x: torch.Tensor, batch: int) -> None:
    loss = nn.functional.cross_entropy(model(x), torch.arange(batch) % 10)
    loss.backward()
    torch.optim.Adam(model.parameters(), lr=1e-3).step()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["spikes 10%", "700 ch at 2%", "rate-coded images", "N(0,1) features"])
def test_defaults_fire_in_every_layer_after_one_training_step(kind, backend):
    g = torch.Generator().manual_seed(0)
    x = inputs(kind, 8, g)
    torch.manual_seed(0)
    rnn = SRC(x.shape[-1], 64, num_layers=2, backend=backend)
    before = srcext.firing_rates(rnn, x)  # eval-free, no grad: the data init has not run
    one_adam_step(Head(rnn), x, 8)
    rates = srcext.firing_rates(rnn, x)
    assert list(rates) == ["l0", "l1"]
    for name, rate in rates.items():
        assert HEALTHY[0] <= rate <= HEALTHY[1], (kind, name, rate, dict(before))
    assert bool(rnn.data_init_done)


def test_default_layer_is_silent_without_the_data_init():
    """What the data init fixes: the same layer with init_rate=None stays silent."""
    g = torch.Generator().manual_seed(0)
    x = inputs("700 ch at 2%", 8, g)
    torch.manual_seed(0)
    rnn = SRC(700, 64, num_layers=2, init_rate=None)
    one_adam_step(Head(rnn), x, 8)
    assert srcext.firing_rates(rnn, x)["l1"] == 0.0


class WordLM(nn.Module):
    """pytorch/examples' word_language_model with nn.GRU swapped for SRC (its own init)."""

    def __init__(self, ntoken=500, ninp=64, nhid=64, nlayers=2, dropout=0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = SRC(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, tokens):
        output, _ = self.rnn(self.drop(self.encoder(tokens)))
        return self.decoder(self.drop(output))


@requires_fused
def test_word_lm_swap_fires_after_its_sgd_step():
    torch.manual_seed(0)
    model = WordLM()
    tokens = torch.randint(0, 500, (35, 20))
    out = model(tokens)
    nn.functional.cross_entropy(out.reshape(-1, 500), torch.randint(0, 500, (700,))).backward()
    nn.utils.clip_grad_norm_(model.parameters(), 0.25)  # the example's recipe: clip 0.25, lr 20
    for p in model.parameters():
        p.data.add_(p.grad, alpha=-20.0)
    rates = srcext.firing_rates(model.rnn, model.encoder(tokens))
    for name, rate in rates.items():
        assert HEALTHY[0] <= rate <= HEALTHY[1], (name, rate)


@pytest.mark.parametrize("backend", BACKENDS)
def test_data_init_hits_the_rate_on_its_batch_layer_by_layer(backend):
    torch.manual_seed(1)
    rnn = SRC(30, 48, num_layers=3, bidirectional=True, backend=backend, init_rate=0.08)
    x = torch.randn(40, 6, 30) * 0.01  # far too weak for the default weights
    lengths = torch.tensor([40, 33, 20, 12, 7, 40])
    rnn(x, lengths=lengths)
    rates = srcext.firing_rates(rnn, (x, None, lengths))
    assert len(rates) == 6
    for name, rate in rates.items():  # within the search's tolerance (relative 0.2)
        assert abs(rate - 0.08) <= 0.2 * 0.08 + 1e-12, (name, rate)


def test_weight_scale_given_keeps_the_chosen_scale():
    torch.manual_seed(0)
    rnn = SRC(10, 12, weight_scale=3.0)
    w = rnn.weight_l0.detach().clone()
    rnn(torch.randn(20, 4, 10))
    assert rnn.init_rate is None and torch.equal(rnn.weight_l0, w)
    both = SRC(10, 12, weight_scale=3.0, init_rate=0.05)  # both: weight_scale is the start
    assert both.init_rate == 0.05


def test_data_init_only_in_training_with_gradients_and_once():
    torch.manual_seed(0)
    rnn = SRC(10, 12)
    x = torch.randn(20, 4, 10)
    w = rnn.weight_l0.detach().clone()
    with torch.no_grad():
        rnn(x)
    rnn.eval()
    rnn(x)
    assert torch.equal(rnn.weight_l0, w) and not bool(rnn.data_init_done)
    rnn.train()
    rnn(x)
    scaled = rnn.weight_l0.detach().clone()
    assert not torch.equal(scaled, w) and bool(rnn.data_init_done)
    assert torch.allclose(scaled / w, (scaled / w)[0, 0].expand_as(w))  # a single scale
    rnn(x * 5)
    assert torch.equal(rnn.weight_l0, scaled)  # once
    rnn.reset_parameters()  # new weights: armed again
    assert not bool(rnn.data_init_done)


def test_data_init_is_deterministic_and_off_with_none():
    x = torch.randn(20, 4, 10)
    a, b = (torch.manual_seed(3) and SRC(10, 12, 2), torch.manual_seed(3) and SRC(10, 12, 2))
    a(x), b(x)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    off = SRC(10, 12, init_rate=None)
    w = off.weight_l0.detach().clone()
    off(x)
    assert torch.equal(off.weight_l0, w) and bool(off.data_init_done)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, "fast", True, float("nan")])
def test_bad_init_rate_is_refused(bad):
    with pytest.raises(ValueError, match="init_rate"):
        SRC(4, 5, init_rate=bad)


def test_cell_data_init_on_its_first_step():
    torch.manual_seed(0)
    cell = SRCCell(700, 256)
    x = (torch.rand(64, 700) < 0.02).float()
    s, _ = cell(x)
    assert bool(cell.data_init_done)
    assert abs((s > 0).float().mean().item() - DEFAULT_INIT_RATE) <= 0.2 * DEFAULT_INIT_RATE + 1e-9


def test_checkpoint_is_never_initialised_again():
    torch.manual_seed(0)
    x = torch.randn(25, 5, 10)
    model = Head(SRC(10, 16, 2))
    one_adam_step(model, x, 5)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    expected = model(x)
    fresh = Head(SRC(10, 16, 2))
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer))
    assert torch.equal(fresh(x), expected)  # first call, in training mode: bit-identical


def test_checkpoint_from_before_the_data_init_loads_as_initialised():
    torch.manual_seed(0)
    old = SRC(10, 16, init_rate=None).state_dict()
    del old["data_init_done"]  # what a checkpoint of an earlier release holds
    model = SRC(10, 16)
    model.load_state_dict(old)  # strict: no missing key
    assert bool(model.data_init_done)
    model(torch.randn(5, 2, 10))
    assert torch.equal(model.weight_l0, old["weight_l0"])


def test_calibrate_replaces_the_data_init():
    torch.manual_seed(0)
    rnn = SRC(10, 16)
    x = torch.randn(30, 4, 10)
    srcext.calibrate_(rnn, x, target_rate=0.1)
    w = rnn.weight_l0.detach().clone()
    rnn(x)
    assert torch.equal(rnn.weight_l0, w)


def test_data_init_runs_outside_a_compiled_graph():
    torch.manual_seed(0)
    rnn = SRC(10, 16)
    x = torch.randn(30, 4, 10)
    expected_model = SRC(10, 16)
    expected_model.load_state_dict(rnn.state_dict())
    compiled = torch.compile(rnn)
    out, _ = compiled(x)
    ref, _ = expected_model(x)
    assert bool(rnn.data_init_done)
    torch.testing.assert_close(out, ref)


def test_fullgraph_names_the_pending_data_init_and_works_after_one_step():
    torch._dynamo.reset()
    torch.manual_seed(0)
    rnn = SRC(10, 16)
    x = torch.randn(30, 4, 10)
    with pytest.raises(Exception, match="init_rate"):
        torch.compile(rnn, fullgraph=True)(x)
    rnn(x)  # one eager training call runs the init
    out, _ = torch.compile(rnn, fullgraph=True)(x)
    torch.testing.assert_close(out, rnn(x)[0])


def _ddp_worker(rank, world, store_path, out_path):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world)
    torch.manual_seed(0)  # the same start on every rank (DDP also broadcasts rank 0's)
    model = nn.parallel.DistributedDataParallel(Head(SRC(20, 24, 2)))
    g = torch.Generator().manual_seed(100 + rank)  # different data per rank
    x = torch.randn(30, 4, 20, generator=g) * (1 + rank)
    one_adam_step(model, x, 4)
    torch.save([p.detach().clone() for p in model.module.parameters()], f"{out_path}.{rank}")
    del model
    dist.destroy_process_group()
    gc.collect()


@pytest.mark.slow
def test_ddp_ranks_agree_on_the_data_init(tmp_path):
    import torch.multiprocessing as mp

    out_path = str(tmp_path / "params")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "store"), out_path), nprocs=2, join=True)
    rank0, rank1 = torch.load(f"{out_path}.0"), torch.load(f"{out_path}.1")
    torch.manual_seed(0)
    unscaled = Head(SRC(20, 24, 2)).rnn.weight_l0
    assert not torch.allclose(rank0[0], unscaled, rtol=0.2)  # the init did scale
    for a, b in zip(rank0, rank1):
        assert torch.equal(a, b)


# ---- the silence watch ------------------------------------------------------------------


def test_silent_layer_warns_once_naming_the_fix():
    torch.manual_seed(0)
    rnn = SRC(10, 16, 2, init_rate=None)
    x = torch.randn(20, 4, 10) * 1e-3
    with pytest.warns(RuntimeWarning, match=r"SRC\(10, 16\) layer l[01] fired no spike.*init_rate") as record:
        for _ in range(5):
            rnn(x)[0].sum().backward()
    silent = [w for w in record if issubclass(w.category, RuntimeWarning)]
    assert len(silent) == 2  # l0 and l1, once each


def test_saturated_layer_warns():
    torch.manual_seed(0)
    cell = SRCCell(10, 16, weight_scale=1.0, bias_init=-4.0)
    with torch.no_grad():
        cell.weight.abs_()  # every neuron driven up
    with pytest.warns(RuntimeWarning, match="saturated"):
        for _ in range(250):
            # from rest every call, with a drive that makes every neuron spike at once
            cell(torch.full((3, 10), 50.0), cell.initial_state(3))[0].sum().backward()


def test_healthy_and_inference_layers_do_not_warn():
    torch.manual_seed(0)
    rnn = SRC(10, 16, 2)
    x = torch.randn(20, 4, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for _ in range(5):
            rnn(x)[0].sum().backward()
        silent = SRC(10, 16, init_rate=None)
        with torch.no_grad():
            for _ in range(5):
                silent(x * 1e-3)


# ---- GRU idioms -------------------------------------------------------------------------


def test_state_by_position_is_refused_with_the_field_to_use():
    rnn = SRC(6, 7, 2)
    out, state = rnn(torch.randn(5, 3, 6))
    with pytest.raises(TypeError, match=r"state\.h\[-1\]"):
        state[-1]
    i, h, hs = state  # unpacking still works, in field order
    assert h is state.h and hs is state.hs and i is state.i
    assert tuple(state._fields) == ("i", "h", "hs")
    out2, _ = rnn(torch.randn(5, 3, 6), state)  # passing it back in works
    assert out2.shape == out.shape


def test_sequential_with_state_names_return_state():
    model = nn.Sequential(nn.Linear(4, 8), SRC(8, 8), nn.Linear(8, 2))
    with pytest.raises(TypeError, match="return_state=False"):
        model(torch.randn(5, 3, 4))
    model = nn.Sequential(nn.Linear(4, 8), SRC(8, 8, return_state=False), nn.Linear(8, 2))
    assert model(torch.randn(5, 3, 4)).shape == (5, 3, 2)
    last = nn.Sequential(nn.Linear(4, 8), SRC(8, 8))  # last: the tuple reaches the caller
    out, state = last(torch.randn(5, 3, 4))
    assert out.shape == (5, 3, 8)
