"""What the install produced: the compiled ops and the dispatch keys they serve."""

import os

import pytest
import torch

import srcext


def test_extension_loaded_with_cpu_kernels():
    assert srcext.extension_loaded()
    assert torch._C._dispatch_has_kernel_for_dispatch_key("srcext::src_forward", "CPU")
    assert torch._C._dispatch_has_kernel_for_dispatch_key("srcext::src_backward", "CPU")


@pytest.mark.skipif(
    os.environ.get("SRCEXT_EXPECT_CUDA") != "1",
    reason="set SRCEXT_EXPECT_CUDA=1 where the build must include CUDA (CI does)",
)
def test_cuda_kernels_compiled_and_registered():
    """CI builds with the CUDA toolkit: both ops must have CUDA kernels even without a GPU."""
    for op in ("srcext::src_forward", "srcext::src_backward"):
        assert torch._C._dispatch_has_kernel_for_dispatch_key(op, "CUDA"), op
    assert srcext.fused_available("cuda")
