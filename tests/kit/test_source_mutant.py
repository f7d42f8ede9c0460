"""tests.harness.helpers.source_mutant on a module with a Triton kernel and a custom operator: the mutant's kernel
runs the mutated source, and the original module's operator keeps its own implementation once a mutant exists (the
two ways a mutant of impl/kernels/* could pass its checks without being what it claims)."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import triton

from tests.harness.helpers import source_mutant

PROBE = '''
import torch
import triton
import triton.language as tl


@triton.jit
def add_kernel(X, Y, N: tl.constexpr):
    offs = tl.arange(0, N)
    tl.store(Y + offs, tl.load(X + offs) + 1.0)


def add_one(x):
    y = torch.empty_like(x)
    add_kernel[(1,)](x, y, N=x.numel())
    return y


@torch.library.custom_op("cs336::source_mutant_probe", mutates_args=())
def times_two(x: torch.Tensor) -> torch.Tensor:
    return x * 2
'''


@pytest.fixture
def probe(tmp_path):
    path = tmp_path / "source_mutant_probe.py"
    path.write_text(PROBE)
    spec = importlib.util.spec_from_file_location("source_mutant_probe", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    for name in [n for n in sys.modules if n.startswith("source_mutant_probe")]:
        del sys.modules[name]


def test_a_mutated_triton_kernel_runs_the_mutated_source(probe):
    compiled = isinstance(probe.add_kernel, triton.runtime.JITFunction)  # else TRITON_INTERPRET=1: CPU tensors
    if compiled and not torch.cuda.is_available():
        pytest.skip("Triton kernels need a GPU or TRITON_INTERPRET=1 before triton.jit runs")
    device = "cuda" if compiled else "cpu"
    x = torch.arange(8, dtype=torch.float32, device=device)
    mutant = source_mutant(probe, "tl.load(X + offs) + 1.0", "tl.load(X + offs) + 5.0")
    assert torch.equal(probe.add_one(x), x + 1)
    assert torch.equal(mutant.add_one(x), x + 5)


def test_the_originals_custom_operator_keeps_its_implementation_after_a_mutant(probe):
    x = torch.ones(3)
    mutant = source_mutant(probe, "return x * 2", "return x * 3")
    assert torch.equal(mutant.times_two(x), 3 * x)
    assert torch.equal(probe.times_two(x), 2 * x)
    assert torch.equal(torch.ops.cs336.source_mutant_probe(x), 2 * x)
