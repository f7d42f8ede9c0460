"""bench/kernels.py on a CPU: the --tiny smoke run through Triton's interpreter, the cells, the refusals.

No time is asserted; the tables' shape and the failure handling are.
"""

from __future__ import annotations

import re

import pytest
import torch

from bench import kernels
from impl.rmsnorm_triton import INTERPRETED
from tests.harness.helpers import tables


@pytest.mark.skipif(not INTERPRETED, reason="the --tiny run needs TRITON_INTERPRET=1 before impl is imported")
def test_tiny_run_writes_the_three_tables(tmp_path):
    out = tmp_path / "kernels.md"
    assert kernels.main(["--tiny", "--out", str(out)]) == 0
    text = out.read_text()
    (lb_header, lb_rows), (sweep_header, sweep_rows), (rms_header, rms_rows) = tables(text)
    assert lb_header == kernels.LEADERBOARD_HEADER
    assert [r[0] for r in lb_rows] == ["ours (FlashAttentionTriton)", "ours, torch.compile'd (impl.flash_attention, "
                                      "as the leaderboard times it)", "SDPA FLASH", "SDPA cuDNN", "naive PyTorch, eager",
                                      "naive PyTorch, torch.compile'd"]
    ours = dict(zip(lb_header, lb_rows[0]))
    assert re.fullmatch(r"\d+\.\d{3}", ours["forward (ms)"]) and ours["ours' speed-up vs this (fwd+bwd)"] == "1.00x"
    assert dict(zip(lb_header, lb_rows[2]))["H100 anchor fwd+bwd (ms)"] == "7.49"  # SDPA FLASH: GPU only, anchor shown
    assert sweep_header == kernels.SWEEP_HEADER
    assert [(r[0], r[1], r[2]) for r in sweep_rows] == [("fp32", "16", "16"), ("fp32", "32", "16")]
    assert all(re.fullmatch(r"\d+\.\d{3}", c) for r in sweep_rows for c in r[3:9]), sweep_rows
    assert rms_header == kernels.RMSNORM_HEADER
    assert [(r[0], r[2]) for r in rms_rows] == [("fp32", "forward"), ("fp32", "fwd+bwd")]
    assert "command: `python -m bench.kernels --tiny" in text


def test_an_out_of_memory_cell_reads_oom_and_an_unsupported_one_error():
    bench = kernels.Bench(torch.device("cpu"), 1, 1)

    def out_of_memory():
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    def unsupported():
        raise RuntimeError("No available kernel. Aborting execution.")

    assert bench.ms(out_of_memory) == "OOM"
    assert bench.ms(unsupported) == "error"
    assert kernels.ratio("OOM", 1.0) == "" and kernels.rate(1.0, "error") == ""


def test_causal_attention_flops():
    """Causal attention forward: 2·B·H·N²·d FLOPs (two matmuls, half the scores)."""
    assert kernels.attention_tflop(1, 16, 16_384, 64) == pytest.approx(2 * 16 * 16_384**2 * 64 / 1e12)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_without_a_gpu_it_says_so(capsys):
    assert kernels.main(["--rmsnorm"]) == 2
    assert "needs a GPU" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--dtypes", "fp8"], ["--seqs", "128,x"], ["--dims", "0"]])
def test_bad_choices_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        kernels.parse_args(argv)
    err = capsys.readouterr().err
    assert "expected" in err or "unknown" in err, err
