"""torch.compile with dynamic shapes (no recompile per sequence length) and torch.export of an
inference model (the opcheck and fullgraph tests of the ops are in test_library.py)."""

import pytest
import torch
import torch._dynamo.testing

from srcext import SRC

from helpers import requires_fused

pytestmark = requires_fused


def test_compile_dynamic_shapes_no_recompile_per_length():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SRC(8, 12, backend="fused", init_rate=None)  # no data init: one graph
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    for T, B in [(5, 2), (9, 3), (17, 4), (33, 5), (12, 7)]:
        x = torch.rand(T, B, 8)
        out, _ = compiled(x)
        assert torch.allclose(out, model(x)[0])
    assert counter.frame_count <= 2, counter.frame_count


def test_compiled_graph_holds_no_constants_tensor():
    """Under torch.compile the cell constants of an SRCConstants reach the ops as floats: the
    graph makes no tensor of them and takes none as an input, so there is no host tensor for
    the backward to keep (CUDA graph trees reject one: benchmarks/GPU_NOTES.md). Its inputs
    are the parameters and x; the op calls carry the constants' values."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 10), SRC(10, 12, 2, backend="fused", init_rate=None))
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    x = torch.rand(7, 3, 6)
    out, _ = torch.compile(lambda x: model(x), backend=backend, fullgraph=True)(x)
    assert torch.allclose(out, model(x)[0])
    (gm,) = graphs
    inputs = [n for n in gm.graph.nodes if n.op == "placeholder"]
    assert len(inputs) == 1 + sum(1 for _ in model.parameters()), [n.name for n in inputs]
    made = [n for n in gm.graph.nodes if n.op == "call_function" and n.target in (torch.tensor, torch.as_tensor)]
    assert not made, made
    calls = [n for n in gm.graph.nodes if n.op == "call_function" and "src_forward" in str(n.target)]
    assert len(calls) == 2
    for call in calls:
        values = call.kwargs.get("layer_constants", call.args[10] if len(call.args) > 10 else None)
        assert list(values) == list(model[1].constants.cell_values())


def test_export_inference_model():
    torch.manual_seed(0)
    model = SRC(8, 12, 2, backend="fused").eval()
    x = torch.rand(10, 3, 8)
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
        out = exported.module()(x)[0]
        assert torch.allclose(out, model(x)[0])


@pytest.mark.parametrize("backend", ["fused", "reference"])
def test_fullgraph_with_lengths(backend):
    """lengths= under fullgraph=True: their values are checked eagerly only (the kernels clamp
    them), so no guard on data-dependent values breaks the graph."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SRC(8, 6, 2, backend=backend, init_rate=None, weight_scale=4.0)
    x = torch.randn(10, 3, 8)
    lengths = torch.tensor([10, 5, 2])
    out, state = torch.compile(model, fullgraph=True)(x, lengths=lengths)
    ref, ref_state = model(x, lengths=lengths)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(state.h, ref_state.h)
