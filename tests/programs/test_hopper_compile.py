"""The Triton kernels compile for Hopper (sm90) at the LM's shapes, read and write their tiles in 16-byte vectors, and
multiply on Hopper's warpgroup tensor cores.

The CPU tests run the kernels in Triton's interpreter, which neither compiles them nor says how they would run. Here
each kernel wrapper is called on CPU tensors of the LM's shapes with every launch turned into a compile for sm90
(tests/harness/hopper.py), in a process of its own without the interpreter: a kernel that does not compile for the
GPU fails here, and so does one whose tile loads or stores come out as single 16-bit accesses, which run at a
fraction of the memory's bandwidth (on an H200 a RoPE kernel whose pairs were gathered that way ran at a fifth of a
copy's speed: bench/results/h200-lm-step-rope.md), and so does a FlashAttention kernel whose matmuls come out as the
warp-level mma.sync of earlier GPUs rather than Hopper's wgmma.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import triton
import triton.language as tl

from tests.harness.helpers import REPO

# (head dim, heads): TinyStories 17M, GPT-2 small, the A2 leaderboard's 8B model
ATTENTION_SHAPES = {"d32": (32, 16), "d64": (64, 12), "d128": (128, 32)}
RMSNORM_WIDTHS = (512, 768, 1280, 2560, 4096)
VOCABULARIES = {"TinyStories": 10000, "GPT-2": 50257, "Qwen (the leaderboard's)": 151936}  # both block sizes


@triton.jit
def strided_copy_probe(X, Y, n, BLOCK: tl.constexpr):
    """Every second element of X: a gather, which compiles to one 16-bit load an element (what the rule must see)."""
    i = tl.arange(0, BLOCK)
    tl.store(Y + i, tl.load(X + 2 * i, mask=i < n), mask=i < n)


@triton.jit
def small_dot_probe(A, C, BLOCK: tl.constexpr):
    """A (BLOCK × BLOCK) tile times itself: launched on 2 warps, less than a warpgroup, it compiles to mma.sync."""
    i = tl.arange(0, BLOCK)
    a = tl.load(A + i[:, None] * BLOCK + i[None, :])
    tl.store(C + i[:, None] * BLOCK + i[None, :], tl.dot(a, a))


def compile_kernels() -> list[dict]:
    """Every launch of the kernel wrappers at the shapes above, compiled for sm90: kernel, workload, the PTX's global
    accesses and tensor-core instructions, and the bytes a thread spills. FlashAttention's fixed tiles
    (CS336_FLASH_AUTOTUNE=0): the autotuner would time its candidates. Then the probes, which break the rules."""
    from impl.kernels import flash_triton, linear_cross_entropy, rotary
    from impl.kernels.rmsnorm import RMSNormFunction, rmsnorm_bwd_kernel
    from tests.harness.hopper import compile_only, global_accesses, matrix_instructions, spilled_bytes

    def described(launches: list, workload: str) -> list[dict]:
        return [dict(kernel=name, workload=workload, accesses=global_accesses(kernel.asm["ptx"]),
                     mma=matrix_instructions(kernel.asm["ptx"]), spilled=spilled_bytes(kernel))
                for name, kernel in launches]

    results = []
    for dtype in (torch.bfloat16, torch.float32):
        dtype_name = str(dtype).removeprefix("torch.")
        for shape, (d, heads) in ATTENTION_SHAPES.items():
            # the LM's layout: q, k, v as (B, H, N, d) views of token-major (B, N, 3, H, d) memory
            q, k, v = torch.zeros(1, 256, 3, heads, d, dtype=dtype).transpose(1, 3).unbind(2)
            with compile_only() as launches:  # the backward without and with RoPE's rotation back of dQ and dK
                o, lse = flash_triton.flash_forward(q, k, v, True)
                flash_triton.flash_backward(q, k, v, o, lse, torch.zeros_like(o), True)
                angles = torch.zeros(256, d // 2)
                flash_triton.flash_backward(q, k, v, o, lse, torch.zeros_like(o), True, angles=(angles, angles))
            results += described(launches, f"attention {shape} {dtype_name}")
        for width in RMSNORM_WIDTHS:
            x = torch.zeros(64, width, dtype=dtype, requires_grad=True)
            gain = torch.ones(width, dtype=dtype, requires_grad=True)
            with compile_only() as launches:
                RMSNormFunction.apply(x, gain, 1e-5).backward(torch.zeros_like(x))
            results += described(launches, f"rmsnorm {width} {dtype_name}")
    for vocabulary, words in VOCABULARIES.items():  # the LM head's logits, padded as linear_cross_entropy pads them
        logits = torch.zeros(16, words + -words % linear_cross_entropy.VOCAB_ALIGNMENT, dtype=torch.bfloat16)
        with compile_only() as launches:
            for write_gradient in (True, False):
                linear_cross_entropy.softmax_gradient_(logits, torch.zeros(16, dtype=torch.long), words, 1 / 16,
                                                       write_gradient)
        results += described(launches, f"lm head {vocabulary} bfloat16")
    for shape, (d, heads) in ATTENTION_SHAPES.items():  # RoPE over the packed q|k|v projection
        for dtype in (torch.bfloat16, torch.float32):
            x = torch.zeros(1, 256, 3 * heads, d, dtype=dtype)
            cos = torch.zeros(256, d // 2)
            with compile_only() as launches:
                rotary.launch_rotation(x, cos, cos, 2 * heads, torch.empty_like(x), rotary.TILE_WORDS)
            results += described(launches, f"rope {shape} {str(dtype).removeprefix('torch.')}")
    with compile_only() as launches:
        strided_copy_probe[(1,)](torch.zeros(2048, dtype=torch.bfloat16), torch.zeros(1024, dtype=torch.bfloat16),
                                 1000, BLOCK=1024)
        small_dot_probe[(1,)](torch.zeros(64, 64, dtype=torch.bfloat16), torch.zeros(64, 64), BLOCK=64, num_warps=2)
        # the float32 RMSNorm backward as launched until 2026-12-05: 4 rows of 4096 columns on 16 warps
        x = torch.zeros(64, 4096)
        rmsnorm_bwd_kernel[(1,)](x, x[0], x, x[:, 0], x, x, 64, 4096, BLOCK_M=4, BLOCK_N=4096, BLOCKS_PER_PROGRAM=4,
                                 num_warps=16)
    return results + described(launches, "probe")


@pytest.fixture(scope="module")
def compiled() -> list[dict]:
    env = os.environ | {"TRITON_INTERPRET": "0", "CS336_FLASH_AUTOTUNE": "0"}
    done = subprocess.run([sys.executable, "-m", "tests.programs.test_hopper_compile"], env=env, capture_output=True,
                          text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def kernels(compiled: list[dict]) -> list[dict]:
    return [c for c in compiled if c["workload"] != "probe"]


def test_every_kernel_compiles_for_hopper(compiled):
    launched = {(c["kernel"], c["workload"].split()[0]) for c in kernels(compiled)}
    assert launched == {(kernel, "attention") for kernel in ("flash_fwd_kernel", "flash_bwd_preprocess_kernel",
                                                             "flash_bwd_dkdv_kernel", "flash_bwd_dq_kernel")} | {
        (kernel, "rmsnorm") for kernel in ("rmsnorm_fwd_kernel", "rmsnorm_bwd_kernel")} | {
        ("softmax_gradient_kernel", "lm"), ("rotate_heads_kernel", "rope")}
    # two dtypes; attention's backward without and with RoPE (preprocess, dK/dV, dQ again); the LM head in
    # bfloat16, with its gradient and without
    assert len(kernels(compiled)) == 2 * (7 * len(ATTENTION_SHAPES) + 2 * len(RMSNORM_WIDTHS) + len(
        ATTENTION_SHAPES)) + 2 * len(VOCABULARIES)


def scalar_tile_accesses(accesses: dict[str, int]) -> str | None:
    """What breaks the rule: single 16-bit accesses (a tile element at a time), or no 16-byte vector at all. A row's
    scalars (the log-sum-exp, 1/rms) are 32-bit accesses and allowed, and so is one 16-bit load: the LM head's
    kernel reads the target's logit alone."""
    scalar_16_bit = {kind: n for kind, n in accesses.items() if kind.endswith(".b16") and (kind, n) != (
        "ld.global.b16", 1)}
    if scalar_16_bit:
        return f"16-bit accesses {scalar_16_bit} in {accesses}"
    if not any(kind.endswith((".v4.b32", ".v2.b64")) for kind in accesses):
        return f"no 16-byte vector in {accesses}"
    return None


def test_tiles_are_read_and_written_in_16_byte_vectors(compiled):
    broken = {(c["kernel"], c["workload"]): scalar_tile_accesses(c["accesses"]) for c in kernels(compiled)}
    assert not {launch: why for launch, why in broken.items() if why}


def test_the_rule_sees_a_gather(compiled):
    """The probe, compiled in the same process, breaks the rule: the check can fail."""
    probe = next(c for c in compiled if c["kernel"] == "strided_copy_probe")
    assert scalar_tile_accesses(probe["accesses"]) is not None, probe


def test_attention_multiplies_on_warpgroup_tensor_cores(compiled):
    """Every matmul of the bf16 FlashAttention kernels is a wgmma (the preprocess kernel has none); float32 takes IEEE
    dots on the CUDA cores, no tensor cores at all."""
    for c in kernels(compiled):
        if not c["workload"].startswith("attention") or c["kernel"] == "flash_bwd_preprocess_kernel":
            continue
        wanted = (c["mma"]["wgmma"] > 0) if c["workload"].endswith("bfloat16") else (c["mma"]["wgmma"] == 0)
        assert wanted and c["mma"]["mma.sync"] == 0, f"{c['kernel']} ({c['workload']}): {c['mma']}"


def test_the_tensor_core_check_sees_mma_sync(compiled):
    """The small-dot probe, on 2 warps, compiles to mma.sync: the check can fail."""
    probe = next(c for c in compiled if c["kernel"] == "small_dot_probe")
    assert probe["mma"]["wgmma"] == 0 and probe["mma"]["mma.sync"] > 0, probe


def test_no_kernel_spills_registers(compiled):
    """A thread's values all in registers: a spill goes to the stack in local memory and back, in the inner loop.
    Except FlashAttention-2 in float32, the accuracy path (IEEE dots on the CUDA cores, fixed tiles, no speed goal),
    whose forward spills 4 bytes a thread at d = 32."""
    spilling = {(c["kernel"], c["workload"]): c["spilled"] for c in kernels(compiled)
                if c["spilled"] and not (c["workload"].startswith("attention") and c["workload"].endswith("float32"))}
    assert not spilling, f"bytes spilled a thread: {spilling}"


def test_the_spill_check_sees_a_spill(compiled):
    """The float32 RMSNorm backward's former block (4 x 4096 on 16 warps: 128 registers a thread) spills."""
    probe = next(c for c in compiled if c["kernel"] == "rmsnorm_bwd_kernel" and c["workload"] == "probe")
    assert probe["spilled"] > 0, probe


if __name__ == "__main__":  # the compiling process (see compiled)
    print(json.dumps(compile_kernels()))
