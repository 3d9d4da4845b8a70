"""PyTorch's program transforms on the layer, both backends: torch.func (grad, vmap, jvp),
the meta device and torch.jit.trace. Where torch cannot run the fused kernels (derivatives
under torch.func) the error names srcext and the alternative, never a silently wrong value."""

import pytest
import torch
from torch.func import functional_call, grad, jvp, vmap

from srcext import SRC, SRCCell, SRCState

from helpers import requires_fused

BACKENDS = ["reference", pytest.param("fused", marks=requires_fused)]


def layer(backend, **kw):
    torch.manual_seed(0)
    return SRC(4, 5, 2, backend=backend, init_rate=None, weight_scale=4.0, **kw)


def test_func_grad_on_the_reference_equals_autograd():
    m = layer("reference")
    x = torch.randn(7, 3, 4)
    params = {k: v.detach() for k, v in m.named_parameters()}
    g = grad(lambda p: functional_call(m, p, (x,))[0].square().sum())(params)
    m(x)[0].square().sum().backward()
    for name, p in m.named_parameters():
        torch.testing.assert_close(g[name], p.grad)


@requires_fused
def test_func_grad_and_jvp_with_the_default_backend_take_the_reference():
    """backend='auto' runs the reference under torch.func.grad / jvp: the same values as
    autograd through the fused kernels, not an error or a zero tangent."""
    m = layer("auto")
    x = torch.randn(7, 3, 4)
    params = {k: v.detach() for k, v in m.named_parameters()}
    g = grad(lambda p: functional_call(m, p, (x,))[0].square().sum())(params)
    m(x)[0].square().sum().backward()
    for name, p in m.named_parameters():
        assert p.grad.abs().sum() > 0
        torch.testing.assert_close(g[name], p.grad)
    t, v = torch.randn_like(x), torch.randn(7, 3, 5)
    _, jt = jvp(lambda x: m(x)[0], (x,), (t,))
    xr = x.clone().requires_grad_()
    (vjp,) = torch.autograd.grad(m(xr)[0], xr, v)
    assert jt.abs().sum() > 0
    torch.testing.assert_close((jt * v).sum(), (t * vjp).sum(), rtol=1e-4, atol=1e-4)


@requires_fused
def test_func_derivatives_of_the_fused_kernels_are_refused_clearly():
    m = layer("fused")
    x = torch.randn(7, 3, 4)
    params = {k: v.detach() for k, v in m.named_parameters()}
    with pytest.raises(RuntimeError, match="srcext.*backend='reference'"):
        grad(lambda p: functional_call(m, p, (x,))[0].sum())(params)
    with pytest.raises(RuntimeError, match="srcext.*backend='reference'"):  # not a zero tangent
        jvp(lambda x: m(x)[0], (x,), (torch.randn_like(x),))


def test_jvp_on_the_reference_is_the_transpose_of_the_vjp():
    m = SRC(4, 5, backend="reference", init_rate=None, weight_scale=4.0, dtype=torch.float64)
    x = torch.randn(7, 3, 4, dtype=torch.float64)
    t, v = torch.randn_like(x), torch.randn(7, 3, 5, dtype=torch.float64)
    _, jt = jvp(lambda x: m(x)[0], (x,), (t,))
    xr = x.clone().requires_grad_()
    (vjp,) = torch.autograd.grad(m(xr)[0], xr, v)
    assert jt.abs().sum() > 0
    torch.testing.assert_close((jt * v).sum(), (t * vjp).sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_samples_equals_the_batch(backend):
    m = layer(backend)
    x = torch.randn(7, 3, 4)
    with torch.no_grad():
        per_sample = vmap(lambda xs: m(xs.unsqueeze(1))[0].squeeze(1), in_dims=1, out_dims=1)(x)
        torch.testing.assert_close(per_sample, m(x)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_meta_device_gives_shapes(backend):
    m = layer(backend).to("meta")
    m.train()
    out, state = m(torch.randn(7, 3, 4, device="meta"))
    assert out.shape == (7, 3, 5) and out.is_meta and state.h.shape == (2, 3, 5)
    s, cell_state = SRCCell(4, 5, backend=backend).to("meta")(torch.randn(3, 4, device="meta"))
    assert s.shape == (3, 5) and cell_state.hs.is_meta


@requires_fused
def test_jit_trace_of_the_fused_layer_runs_at_new_sizes():
    m = layer("fused", return_state=False).eval()
    traced = torch.jit.trace(m, (torch.randn(7, 3, 4),), check_trace=False)
    x = torch.randn(11, 2, 4)
    torch.testing.assert_close(traced(x), m(x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_with_a_dynamic_batch(backend):
    """The batch size stays symbolic (it used to be forced to a Python int)."""
    from torch.export import Dim, export

    m = layer(backend).eval()
    ep = export(m, (torch.randn(7, 3, 4),), dynamic_shapes=({1: Dim("B")},))
    x = torch.randn(7, 5, 4)
    torch.testing.assert_close(ep.module()(x)[0], m(x)[0])


@requires_fused
def test_export_of_the_fused_layer_with_dynamic_steps_and_batch_for_inference():
    from torch.export import Dim, export

    m = layer("fused").eval()
    with torch.no_grad():
        ep = export(m, (torch.randn(40, 3, 4),), dynamic_shapes=({0: Dim("T"), 1: Dim("B")},))
        x = torch.randn(9, 6, 4)
        torch.testing.assert_close(ep.module()(x)[0], m(x)[0])


@pytest.mark.parametrize("straight_through", [True, False], ids=["st", "relu"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_with_dynamic_steps_and_batch_and_gradients(backend, straight_through):
    """torch.export with gradients on, T and B dynamic: the exported program gives the layer's
    outputs and input gradients at a new T and B (exact BPTT). The reference's time loop is
    a scan under export (srcext.export); the fused layer needs T >= 17 declared (torch guards
    on its checkpoint count being more than one)."""
    from torch.export import Dim, export

    # torch's compile cache keeps the scan body of an earlier export at a fixed T (7 in the
    # tests above) and then guards the dynamic T away from it; a fresh cache, as the guide says
    torch._dynamo.reset()
    torch.manual_seed(0)
    m = SRC(
        5,
        8,
        init_rate=None,
        weight_scale=4.0,
        backend=backend,
        straight_through=straight_through,
        detach_recurrent=False,
    )
    steps = Dim("T", min=1 if backend == "reference" else 17)
    ep = export(m, (torch.rand(20, 3, 5),), dynamic_shapes=({0: steps, 1: Dim("B")},))
    x = torch.rand(33, 4, 5) * 1.5
    weights = torch.randn(33, 4, 8)
    grads = []
    for run in (ep.module(), m):
        xx = x.clone().requires_grad_()
        out = run(xx)[0]
        (out * weights).sum().backward()
        grads.append((out.detach(), xx.grad))
    assert grads[1][0].gt(0).any()  # spikes: the gradient paths through them are exercised
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


@pytest.mark.parametrize("as_tuple", [False, True], ids=["SRCState", "tuple"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_export_with_the_state_as_an_input(backend, as_tuple):
    """The state passed in and returned: SRCState (torch 2.14's guard code needs
    check_guards=False, see the guide) or a plain tuple; batch and T dynamic."""
    from torch.export import Dim, export

    m = layer(backend).eval()
    x = torch.randn(7, 3, 4)
    state = m(x)[1]
    state = tuple(state) if as_tuple else state
    batch = Dim("B", min=2)
    fields = [{1: batch}] * 3
    specs = ({0: Dim("T", min=2), 1: batch}, tuple(fields) if as_tuple else SRCState(*fields))
    with torch.no_grad():  # inference: with gradients on, the fused layer needs T >= 17
        ep = export(m, (x, state), dynamic_shapes=specs)
    run = ep.module(check_guards=as_tuple)
    x2, state2 = torch.randn(11, 5, 4), SRCState(*(torch.randn(2, 5, 5) * 0.5 for _ in range(3)))
    out, final = run(x2, tuple(state2) if as_tuple else state2)
    expected, expected_final = m(x2, state2)
    torch.testing.assert_close(out, expected)
    for a, b in zip(final, expected_final):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_over_stacked_models(backend):
    """torch.func's model ensembling: three layers' parameters stacked, one vmap call."""
    import copy

    from torch.func import stack_module_state

    torch.manual_seed(0)
    models = [SRC(4, 6, init_rate=None, weight_scale=4.0, backend=backend) for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.rand(10, 2, 4)

    def run(p, b, x):
        return functional_call(base, (p, b), (x,))[0]

    out = vmap(run, in_dims=(0, 0, None))(params, buffers, x)
    expected = torch.stack([m(x)[0] for m in models])
    assert expected.gt(0).any()
    torch.testing.assert_close(out, expected)
