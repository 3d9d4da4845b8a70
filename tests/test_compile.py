"""torch.compile with dynamic shapes (no recompile per sequence length) and torch.export of an
inference model (the opcheck and fullgraph tests of the ops are in test_library.py)."""

import torch
import torch._dynamo.testing

from srcext import SRC

from helpers import requires_fused

pytestmark = requires_fused


def test_compile_dynamic_shapes_no_recompile_per_length():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = SRC(8, 12, backend="fused")
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(model, backend=counter, dynamic=True, fullgraph=True)
    for T, B in [(5, 2), (9, 3), (17, 4), (33, 5), (12, 7)]:
        x = torch.rand(T, B, 8)
        out, _ = compiled(x)
        assert torch.allclose(out, model(x)[0])
    assert counter.frame_count <= 2, counter.frame_count


def test_export_inference_model():
    torch.manual_seed(0)
    model = SRC(8, 12, 2, backend="fused").eval()
    x = torch.rand(10, 3, 8)
    with torch.no_grad():
        exported = torch.export.export(model, (x,))
        out = exported.module()(x)[0]
        assert torch.allclose(out, model(x)[0])
