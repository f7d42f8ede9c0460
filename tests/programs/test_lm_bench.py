"""The LM training-step benchmarks, on a CPU at tiny sizes: bench/train/lm_throughput.py and a2_benchmark.py.

What matters most is that the throughput peer is a fair comparison: the same function as our
TransformerLM (equal logits from the same weights), the same size, the same training step. Then that
an implementation under test (--impl) gets its rows, and what it lacks reads missing, exit code 0.
No wall-clock time is asserted.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch

from bench.common import parse_tables
from bench.train import a2_benchmark, lm_throughput
from bench.train.nanogpt_peer import PeerLM, state_dict_from_ours
from bench.train.step_profile import COLUMNS, OTHER, PROFILE_HEADER, category, device_gaps, gap_table
from impl.nn import TransformerLM
from impl.train import cross_entropy
from impl.programs.config import TrainConfig

# Odd sizes and a non-default θ, so that a transposed weight, a wrong head split or a θ mix-up shows.
SHAPE = dict(vocab_size=97, context_length=24, d_model=48, num_layers=2, num_heads=4, d_ff=80, rope_theta=500.0)


ADAPTERS = "adapters:tests/kit/adapters_reference.py"


def table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one markdown table in a report."""
    (found,) = parse_tables(path.read_text())
    return found


def models(theta: float = SHAPE["rope_theta"]) -> tuple[TransformerLM, PeerLM]:
    torch.manual_seed(0)
    ours = TransformerLM(*(SHAPE[k] for k in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads",
                                              "d_ff", "rope_theta")))
    peer = PeerLM(TrainConfig(**{**SHAPE, "rope_theta": theta}))
    peer.load_state_dict(state_dict_from_ours(ours.state_dict(), SHAPE["num_layers"]))
    return ours, peer


def test_the_peer_has_our_parameters_and_computes_our_function():
    """Ours' weights copied into the peer: same parameter count, logits within 1e-4 in fp32, same loss."""
    ours, peer = models()
    assert sum(p.numel() for p in peer.parameters()) == sum(p.numel() for p in ours.parameters())
    ids = torch.randint(0, SHAPE["vocab_size"], (3, 19))  # shorter than the context: RoPE tables are sliced
    targets = torch.randint(0, SHAPE["vocab_size"], (3, 19))
    with torch.no_grad():
        expected = ours(ids)
        logits, loss = peer(ids, targets)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    torch.testing.assert_close(loss, cross_entropy(expected, targets), atol=1e-5, rtol=0)
    _, other_theta = models(theta=10_000.0)  # the check sees RoPE: another θ gives other logits
    with torch.no_grad():
        assert (other_theta(ids)[0] - expected).abs().max() > 1e-3


def test_lm_throughput_reports_ours_and_the_peer_training_alike(tmp_path):
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--out", str(out)]) == 0
    header, rows = table(out)
    assert header == lm_throughput.HEADER
    assert [(r[0], r[1], r[2]) for r in rows] == [("tiny", "ours", "off"), ("tiny", "nanoGPT-style peer", "off")]
    ours, peer = (dict(zip(header, row)) for row in rows)
    assert float(ours["tokens/s"].replace(",", "")) > 0 and re.fullmatch(r"\d+\.\d\dx", ours["÷ peer (tokens/s)"])
    assert ours["MFU"] == peer["MFU"] == "n/a"  # no peak FLOP/s for a CPU
    # Same initial weights, same batches, same optimizer settings: the same loss after the timed steps.
    assert abs(float(ours["loss at last step"]) - float(peer["loss at last step"])) < 1e-3
    assert "command: `python -m bench.train.lm_throughput --tiny" in out.read_text()


def test_profile_adds_where_each_rows_step_goes_and_the_profilers_tables(tmp_path):
    """--profile: a second table, one row per timed row, whose categories add up to the device's busy time; the
    profiler's own table per row beside the report."""
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--steps", "1", "--profile", "1", "--out", str(out)]) == 0
    throughput, profile = parse_tables(out.read_text())
    assert profile[0] == PROFILE_HEADER
    assert [row[1] for row in profile[1]] == ["ours, compile off", "nanoGPT-style peer, compile off"]
    for row in profile[1]:
        cells = dict(zip(PROFILE_HEADER, row))
        busy = float(cells["device busy (ms)"])
        assert busy > 0 and float(cells["matmul"]) > 0
        assert abs(sum(float(cells[column]) for column in COLUMNS) - busy) < 0.01 * len(COLUMNS)
        assert float(cells["device idle (ms)"]) > 0  # on a CPU, the Python between the operators
    tables = sorted(path.name for path in (tmp_path / "lm_throughput" / "profiles").iterdir())
    assert tables == ["tiny-compile-off-ours.txt", "tiny-compile-off-peer.txt"]
    assert "aten::mm" in (tmp_path / "lm_throughput" / "profiles" / tables[0]).read_text()


def uncovered_time(intervals: list[tuple[float, float]]) -> float:
    return sum(length for length, _, _ in device_gaps([(start, end, "") for start, end in intervals]))


def test_device_gaps_are_the_time_no_interval_covers_counting_overlaps_once():
    """Against the time units no interval covers, counted one by one, on random integer intervals."""
    rng = random.Random(0)
    assert uncovered_time([]) == 0 and uncovered_time([(3, 7)]) == 0
    assert uncovered_time([(0, 10), (2, 3), (12, 15), (14, 20), (25, 26)]) == 2 + 5
    for _ in range(200):
        starts = [rng.randint(0, 40) for _ in range(rng.randint(1, 8))]
        intervals = [(start, start + rng.randint(0, 6)) for start in starts]
        first, last = min(s for s, _ in intervals), max(e for _, e in intervals)
        uncovered = sum(not any(s <= t < e for s, e in intervals) for t in range(first, last))
        assert uncovered_time(intervals) == uncovered, intervals


def test_each_gap_is_named_by_the_kernel_that_reached_furthest_before_it_and_the_next():
    spans = [(0, 10, "gemm"), (2, 3, "copy"), (12, 15, "adam"), (14, 20, "norm"), (25, 26, "gemm")]
    assert device_gaps(spans) == [(2, "gemm", "adam"), (5, "norm", "gemm")]
    table = gap_table(device_gaps(spans + [(30, 31, "adam"), (40, 41, "norm")]), steps=1)
    assert "0.020 ms a step in 4 gaps" in table
    # by pair, largest first: adam -> norm 9, gemm -> adam 2 + 4, norm -> gemm 5
    assert table.index("adam  ->  norm") < table.index("gemm  ->  adam") < table.index("norm  ->  gemm")
    assert "       6.0 µs    2.0  gemm  ->  adam" in table


@pytest.mark.parametrize("kernel, expected", [
    ("nvjet_tst_256x128_64x4_1x2_h_bz_coopA_TNT", "matmul"), ("sm90_xmma_gemm_bf16bf16_bf16f32", "matmul"),
    ("flash_bwd_dkdv_kernel", "attention"), ("pytorch_flash::flash_fwd_kernel<Flash_fwd_kernel_traits>", "attention"),
    ("triton_per_fused__log_softmax_backward_data_1", "cross-entropy"),
    ("triton_red_fused__to_copy__unsafe_view_amax_exp_mm_sub_sum_12", "cross-entropy"),
    ("triton_poi_fused__to_copy_add_mul_neg_select_select_backward_stack_view_10", "rotary embedding"),
    ("rotate_heads_kernel", "rotary embedding"),
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<FusedAdamMathFunctor>", "optimizer"),
    ("rmsnorm_bwd_kernel", "norm"), ("triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_0", "norm"),
    ("Memcpy HtoD (Pageable -> Device)", "copy, fill"), ("aten::copy_", "copy, fill"),
    ("triton_poi_fused_mul_silu_2", OTHER)])
def test_kernels_fall_into_the_category_their_name_says(kernel, expected):
    assert category(kernel) == expected


@pytest.mark.parametrize("label, reason", [
    (ADAPTERS, "TransformerLM is missing: its interface gives its parameters no gradients"),
    ("tests.kit.toy_partial", "TransformerLM is missing: tests.kit.toy_partial does not provide it")])
def test_an_implementation_that_cannot_train_reads_missing_beside_ours_and_the_peer(tmp_path, label, reason):
    """Course adapters take weights by value (no gradients: no training step); the toy package has no model.
    Either way one row says why, ours and the peer are timed, and the run exits 0."""
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--steps", "1", "--impl", label, "--out", str(out)]) == 0
    header, rows = table(out)
    assert [r[1] for r in rows] == [rows[0][1], "ours", "nanoGPT-style peer"] and rows[0][1].startswith("yours, ")
    assert rows[0][3].startswith(reason) and rows[0][4:] == [""] * 5
    assert float(rows[1][3].replace(",", "")) > 0


def test_an_implementation_with_a_model_trains_from_our_weights_on_our_batches(tmp_path):
    """The implementation's own TransformerLM, AdamW and cross_entropy (here the reference's module under a label
    that is not the reference's): timed in its own row, and its loss equals ours after the same steps."""
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--steps", "2", "--impl", "tests.kit.adapters_reference:impl",
                               "--out", str(out)]) == 0
    header, rows = table(out)
    theirs, ours, _ = (dict(zip(header, row)) for row in rows)
    assert theirs["implementation"].startswith("yours, ") and ours["implementation"] == "ours"
    assert float(theirs["tokens/s"].replace(",", "")) > 0 and re.fullmatch(r"\d+\.\d\dx", theirs["÷ peer (tokens/s)"])
    assert abs(float(theirs["loss at last step"]) - float(ours["loss at last step"])) < 1e-4


def test_a2_benchmark_reports_what_an_implementation_lacks_once_per_configuration(tmp_path):
    out = tmp_path / "a2.md"
    assert a2_benchmark.main(["--tiny", "--precision", "fp32", "--impl", "tests.kit.toy_partial", "--out", str(out)]) == 0
    header, rows = table(out)
    assert [r[1] for r in rows] == ["yours, toy partial package: its TransformerLM", "ours"]
    assert rows[0][5] == "TransformerLM is missing: tests.kit.toy_partial does not provide it"
    assert re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", rows[1][5])


def test_a2_benchmark_times_three_phases_per_precision(tmp_path):
    out = tmp_path / "a2.md"
    assert a2_benchmark.main(["--tiny", "--out", str(out)]) == 0
    header, rows = table(out)
    assert header == a2_benchmark.HEADER
    assert [(r[0], r[1], r[3], r[4]) for r in rows] == [("tiny", "ours", "fp32", "off"), ("tiny", "ours", "bf16", "off")]
    for row in rows:
        timings, memory = row[5:8], row[8:]
        assert all(re.fullmatch(r"\d+\.\d\d ± \d+\.\d\d", cell) for cell in timings), row
        assert memory == ["n/a"] * 3  # no allocator statistics on a CPU


def test_an_out_of_memory_phase_reads_oom_and_the_run_goes_on():
    def fails():
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    assert a2_benchmark.measure(fails, torch.device("cpu"), 1, 2, None) == ("OOM", "OOM")


@pytest.mark.parametrize("argv", [["--sizes", "huge"], ["--precision", "fp8"], ["--compile", "maybe"]])
def test_a2_benchmark_refuses_unknown_choices(argv, capsys):
    with pytest.raises(SystemExit):
        a2_benchmark.parse_args(argv)
    assert "unknown" in capsys.readouterr().err


def test_ours_with_the_compiled_adamw_trains_as_the_peer(tmp_path, monkeypatch):
    """--kernels adamw: the trainer's optimizer is CompiledAdamW (Inductor's code on this CPU), the loss after the
    timed steps the peer's, as with the reference AdamW."""
    from impl.kernels.adamw import CompiledAdamW

    updates = []
    compiled_update = CompiledAdamW.update
    monkeypatch.setattr(CompiledAdamW, "update", lambda self, *args: updates.append(1) or compiled_update(self, *args))
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--kernels", "adamw", "--out", str(out)]) == 0
    assert len(updates) == 1 + 3  # --tiny's warm-up step and its 3 timed ones: every step of ours
    header, rows = table(out)
    ours, peer = (dict(zip(header, row)) for row in rows)
    assert abs(float(ours["loss at last step"]) - float(peer["loss at last step"])) < 1e-3
    assert "ours on kernels: adamw" in out.read_text()


def test_lm_throughput_refuses_an_unknown_kernel(capsys):
    with pytest.raises(SystemExit):
        lm_throughput.parse_args(["--kernels", "attention,flash"])
    assert "unknown 'flash'" in capsys.readouterr().err


def test_lm_throughput_refuses_cuda_graphs_without_compile(capsys):
    with pytest.raises(SystemExit):
        lm_throughput.parse_args(["--kernels", "attention,cudagraphs", "--compile", "both"])
    assert "--kernels cudagraphs replays the compiled step: it needs --compile on, got both" in capsys.readouterr().err


def test_ours_with_the_lm_head_in_the_loss_trains_as_the_peer(tmp_path, monkeypatch):
    """--kernels lm_head: the trainer's loss is linear_cross_entropy on the model's hidden states (no logits), the
    loss after the timed steps the peer's."""
    import impl.kernels.linear_cross_entropy as module

    calls = []
    fused = module.linear_cross_entropy
    monkeypatch.setattr(module, "linear_cross_entropy", lambda *args: calls.append(1) or fused(*args))
    out = tmp_path / "lm_throughput.md"
    assert lm_throughput.main(["--tiny", "--kernels", "lm_head,adamw", "--out", str(out)]) == 0
    assert len(calls) == 1 + 3  # --tiny's warm-up step and its 3 timed ones
    header, rows = table(out)
    ours, peer = (dict(zip(header, row)) for row in rows)
    assert abs(float(ours["loss at last step"]) - float(peer["loss at last step"])) < 1e-3
