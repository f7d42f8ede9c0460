"""Compile Triton kernels for Hopper (sm90, the H100 and H200) on a machine without a GPU.

Triton's JIT asks the active driver for the device, its stream and the target architecture, specializes on the
arguments (a pointer 16-byte aligned, an integer divisible by 16), compiles, then launches. ``compile_only``
stands in for the driver with an sm90 target and turns every launch into a compile (``warmup``): a kernel wrapper
called on CPU tensors then compiles each of its kernels exactly as its launch on a GPU would, specialization
included, down to the PTX and the cubin (Triton ships ptxas), and runs none of them. It needs the kernels compiled,
not interpreted: a process without TRITON_INTERPRET=1.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator

import triton

from triton.backends.compiler import GPUTarget
from triton.runtime.driver import driver
from triton.runtime.jit import JITFunction

HOPPER = GPUTarget("cuda", 90, 64)


class HopperStandIn:
    """What the JIT asks the active driver before a launch, answered for device 0 of sm90."""

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0

    def get_current_target(self) -> GPUTarget:
        return HOPPER


@contextlib.contextmanager
def compile_only() -> Iterator[list]:
    """Within it every Triton launch compiles its kernel for sm90 and returns without running it; yields the list of
    (kernel name, CompiledKernel) that the launches compiled, in launch order."""
    launches, launch, active = [], JITFunction.run, driver._active  # None until a launch first picks a driver

    def compile_instead(self, *args, grid, warmup, **kwargs):
        kernel = launch(self, *args, grid=grid, warmup=True, **kwargs)
        launches.append((self.__name__, kernel))
        return kernel

    JITFunction.run = compile_instead
    driver.set_active(HopperStandIn())
    try:
        yield launches
    finally:
        JITFunction.run = launch
        driver._active = active  # as it was: reset_active() would look for a GPU driver, which may not exist


def global_accesses(ptx: str) -> dict[str, int]:
    """The kernel's global-memory load and store instructions by kind and width, e.g. {"ld.global.v4.b32": 8}."""
    return dict(collections.Counter(re.findall(r"\b((?:ld|st)\.global(?:\.[a-z0-9]+)*)", ptx)))


def spilled_bytes(kernel) -> int:
    """Bytes a thread spills to the stack (ptxas's spill stores), from Triton's own ptxas run again with -v on the
    kernel's PTX: registers a kernel needs beyond what its warps leave each thread (65,536 an SM, 255 at most)."""
    ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "kernel.ptx")
        with open(source, "w") as f:
            f.write(kernel.asm["ptx"])
        done = subprocess.run([ptxas, "-v", f"--gpu-name=sm_{HOPPER.arch}a", source, "-o", os.devnull],
                              capture_output=True, text=True, timeout=300)
    report = re.search(r"(\d+) bytes spill stores", done.stdout + done.stderr)
    if done.returncode or not report:
        raise RuntimeError(f"ptxas -v on {kernel.name}: {(done.stdout + done.stderr)[-2000:]}")
    return int(report.group(1))


def matrix_instructions(ptx: str) -> dict[str, int]:
    """The kernel's tensor-core instructions: Hopper's warpgroup MMA (wgmma.mma_async) and the older warp-level
    mma.sync, which a Hopper kernel falls back to where its dot does not fit a warpgroup (fewer than 4 warps, say)."""
    return {"wgmma": len(re.findall(r"\bwgmma\.mma_async", ptx)), "mma.sync": len(re.findall(r"\bmma\.sync", ptx))}
