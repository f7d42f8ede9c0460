"""bench/kernels/benchmark.py on a CPU: the --tiny smoke run through Triton's interpreter, the cells, the refusals,
the implementation under test (--impl) beside ours, and its missing components as rows.

No time is asserted; the tables' shape and the failure handling are.
"""

from __future__ import annotations

import re

import pytest
import torch

from bench.common import parse_tables as tables
from bench.kernels import benchmark as kernels
from impl.kernels.rmsnorm import INTERPRETED

ADAPTERS = "adapters:tests/kit/adapters_reference.py"
YOURS = "yours, adapters (tests/kit/adapters_reference.py): "
TOY = "yours, toy partial package: "


@pytest.mark.skipif(not INTERPRETED, reason="the --tiny run needs TRITON_INTERPRET=1 before impl is imported")
def test_tiny_run_writes_the_four_tables(tmp_path):
    out = tmp_path / "kernels.md"
    assert kernels.main(["--tiny", "--out", str(out)]) == 0
    text = out.read_text()
    (lb_header, lb_rows), (lm_header, lm_rows), (sweep_header, sweep_rows), (rms_header, rms_rows) = tables(text)
    assert "FlashAttention-2 at the LM's shapes: tiny LM" in text and "B=3, 2 heads, N=24, d=16" in text
    assert lm_header == kernels.LEADERBOARD_HEADER and [r[0] for r in lm_rows] == LEADERBOARD_OURS + PEERS
    assert dict(zip(lm_header, lm_rows[3]))["H100 anchor fwd+bwd (ms)"] == "n/a"  # the anchors are the leaderboard's
    assert lb_header == kernels.LEADERBOARD_HEADER
    assert [r[0] for r in lb_rows] == LEADERBOARD_OURS + PEERS  # the reference once, no "yours" rows
    ours = dict(zip(lb_header, lb_rows[0]))
    assert re.fullmatch(r"\d+\.\d{3}", ours["forward (ms)"]) and ours["row 1's speed-up vs this (fwd+bwd)"] == "1.00x"
    assert re.fullmatch(r"\d+\.\d{3}", ours["fwd+bwd GPU time (ms)"])  # on a CPU: the calls as made
    assert ours["row 1's speed-up vs this (GPU time)"] == "1.00x"
    pytorch_tiles = dict(zip(lb_header, lb_rows[2]))
    assert re.fullmatch(r"\d+\.\d{3}", pytorch_tiles["fwd+bwd (ms)"])  # FlashAttentionPyTorch
    assert re.fullmatch(r"\d+\.\d+x", pytorch_tiles["row 1's speed-up vs this (GPU time)"])
    assert "GPU time: the same fwd+bwd calls replayed from a CUDA graph" in text
    assert dict(zip(lb_header, lb_rows[3]))["H100 anchor fwd+bwd (ms)"] == "7.49"  # SDPA FLASH: GPU only, anchor shown
    assert sweep_header == kernels.SWEEP_HEADER
    assert [tuple(r[:4]) for r in sweep_rows] == [("ours: FlashAttentionTriton", "fp32", "16", "16"),
                                                  ("ours: FlashAttentionTriton", "fp32", "32", "16")]
    assert all(re.fullmatch(r"\d+\.\d{3}", c) for r in sweep_rows for c in r[4:10]), sweep_rows
    assert rms_header == kernels.RMSNORM_HEADER
    assert [(r[0], r[1], r[3]) for r in rms_rows] == [("ours: RMSNormTriton", "fp32", "forward"),
                                                      ("ours: RMSNormTriton", "fp32", "fwd+bwd")]
    assert "command: `python -m bench.kernels.benchmark --tiny" in text


LEADERBOARD_OURS = ["ours: FlashAttentionTriton", "ours: flash_attention, torch.compile'd (as the leaderboard times it)",
                    "ours: FlashAttentionPyTorch (tiles in PyTorch)"]
PEERS = ["SDPA FLASH", "SDPA cuDNN", "naive PyTorch, eager", "naive PyTorch, torch.compile'd"]


@pytest.mark.skipif(not INTERPRETED, reason="the --tiny run needs TRITON_INTERPRET=1 before impl is imported")
def test_course_adapters_are_timed_beside_ours_and_what_they_lack_reads_missing(tmp_path):
    """The adapters' two FlashAttention-2 Functions get rows before ours; flash_attention and RMSNormTriton have no
    course adapter: a row each saying so."""
    out = tmp_path / "kernels.md"
    assert kernels.main(["--tiny", "--leaderboard", "--rmsnorm", "--impl", ADAPTERS, "--out", str(out)]) == 0
    (lb_header, lb_rows), (rms_header, rms_rows) = tables(out.read_text())
    assert [r[0] for r in lb_rows] == [YOURS + row.removeprefix("ours: ") for row in LEADERBOARD_OURS] \
        + LEADERBOARD_OURS + PEERS
    triton, multihead, pytorch = (dict(zip(lb_header, row)) for row in lb_rows[:3])
    assert re.fullmatch(r"\d+\.\d{3}", triton["fwd+bwd (ms)"]) and triton["row 1's speed-up vs this (fwd+bwd)"] == "1.00x"
    assert re.fullmatch(r"\d+\.\d{3}", pytorch["fwd+bwd (ms)"])
    assert multihead["forward (ms)"].startswith("flash_attention is missing: ")
    assert [(r[0], r[3]) for r in rms_rows] == [(YOURS + "RMSNormTriton", "forward"), ("ours: RMSNormTriton", "forward"),
                                                ("ours: RMSNormTriton", "fwd+bwd")]
    assert dict(zip(rms_header, rms_rows[0]))["time (ms)"].startswith("RMSNormTriton is missing: ")


@pytest.mark.skipif(not INTERPRETED, reason="the --tiny run needs TRITON_INTERPRET=1 before impl is imported")
def test_an_implementation_without_kernels_reads_missing_in_every_row_and_exits_0(tmp_path):
    out = tmp_path / "kernels.md"
    assert kernels.main(["--tiny", "--impl", "tests.kit.toy_partial", "--out", str(out)]) == 0
    (_, lb_rows), (_, lm_rows), (_, sweep_rows), (_, rms_rows) = tables(out.read_text())
    for rows in (lb_rows, lm_rows):
        assert [r[0] for r in rows] == [TOY + row.removeprefix("ours: ") for row in LEADERBOARD_OURS] \
            + LEADERBOARD_OURS + PEERS
        assert all(r[1].endswith("is missing: tests.kit.toy_partial does not provide it") for r in rows[:3])
    theirs = [r for r in sweep_rows + rms_rows if r[0].startswith(TOY)]
    assert len(theirs) == 3 and all(r[4].endswith("is missing: tests.kit.toy_partial does not provide it")
                                    for r in theirs)
    assert [r[0] for r in sweep_rows] == [TOY + "FlashAttentionTriton", "ours: FlashAttentionTriton"] * 2


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
