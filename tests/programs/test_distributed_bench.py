"""bench/distributed.py on a CPU: the tiny smoke run with gloo (two ranks, then one), and the report's arithmetic.

No time is asserted; the tables' shape, the formulas (busbw, scaling efficiency, the goals) and the refusals are.
"""

from __future__ import annotations

import re

import pytest

from bench import distributed
from bench.distributed_setups import SHARDING
from tests.harness.helpers import tables

TIME = r"\d+\.\d{2} ± \d+\.\d{2}"
DDP_ROWS = ["no DDP (one process)", "naive: all-reduce per parameter after backward",
            "flat: one all-reduce of all gradients after backward", "ours: DDPIndividualParameters (overlapped)",
            "ours: DDPBucketed 1 MB", "ours: DDPBucketed 10 MB", "ours: DDPBucketed 100 MB", "ours: DDPBucketed 1000 MB",
            "torch DDP (DistributedDataParallel, defaults)"]


@pytest.mark.distributed
@pytest.mark.slow
def test_tiny_two_rank_run_writes_every_section(tmp_path):
    out = tmp_path / "distributed.md"
    assert distributed.main(["--nproc", "2", "--model", "tiny", "--out", str(out)]) == 0
    text = out.read_text()
    assert "command: `python -m bench.distributed --nproc 2 --model tiny" in text
    assert "- gloo: 2 rank(s), each on CPU" in text  # the backend on a CPU
    (ar_header, ar_rows), (ddp_header, ddp_rows), (mem_header, mem_rows) = tables(text)

    assert ar_header[0] == "size (MiB)" and [r[0] for r in ar_rows] == ["1", "10"]
    for row in ar_rows:  # two ranks: busbw = algbw · 2(n−1)/n = algbw
        assert re.fullmatch(r"\d+\.\d{3}", row[1]) and row[2] == row[3] and row[5] == row[6], row

    assert ddp_header[:3] == ["variant", "step, world size 1 (ms)", "step, world size 2 (ms)"]
    assert ddp_header[-2:] == ["speed vs torch DDP", "scaling efficiency"]
    assert [r[0] for r in ddp_rows] == DDP_ROWS
    assert re.fullmatch(TIME, ddp_rows[0][1]) and ddp_rows[0][2] == "—"  # no DDP: one process only
    for row in ddp_rows[1:]:
        cells = dict(zip(ddp_header, row))
        assert re.fullmatch(TIME, cells["step, world size 1 (ms)"]), row
        assert re.fullmatch(TIME, cells["step, world size 2 (ms)"]), row
        assert cells["peak memory (GiB)"] == "n/a" and re.fullmatch(r"\d+\.\d{2}", cells["scaling efficiency"]), row
    assert dict(zip(ddp_header, ddp_rows[-1]))["speed vs torch DDP"] == "1.00x"

    assert [r[0] for r in mem_rows] == list(SHARDING)
    for row in mem_rows:
        cells = dict(zip(mem_header, row))
        assert re.fullmatch(TIME, cells["step (ms)"]) and cells["after init: allocated / peak (GiB)"] == "n/a", row
    assert "goal: ShardedOptimizer's peak" in text and "not measured" in text  # a CPU has no allocator statistics


def fake_run(world_size: int, step_ms: dict[str, float]) -> dict:
    row = lambda t: dict(step_ms=t, std_ms=0.0, phases_ms=[t / 2, t / 4, t / 4], init_gib=1.0, peak_before_gib=2.0,
                         peak_after_gib=3.0)
    return {"world_size": world_size, "ddp": {name: row(t) for name, t in step_ms.items()}}


def test_scaling_efficiency_and_the_ddp_goal():
    """Efficiency = the world-size-1 step without DDP ÷ the N-rank step; the goal reads our best row vs torch DDP."""
    one = fake_run(1, {distributed.NO_DDP: 100.0, "ours: DDPBucketed 10 MB": 105.0, distributed.TORCH_DDP: 104.0})
    two = fake_run(2, {"ours: DDPBucketed 10 MB": 125.0, distributed.TORCH_DDP: 130.0})
    two["ddp"]["naive: all-reduce per parameter after backward"] = {"error": "OOM"}
    header, rows, notes = distributed.ddp_table({1: one, 2: two})
    cells = {row[0]: dict(zip(header, row)) for row in rows}
    ours = cells["ours: DDPBucketed 10 MB"]
    assert ours["scaling efficiency"] == "0.80" and ours["speed vs torch DDP"] == "1.04x"
    assert ours["fwd+bwd (ms)"] == "62.50" and ours["peak memory (GiB)"] == "3.00"
    assert cells["naive: all-reduce per parameter after backward"]["step, world size 2 (ms)"] == "OOM"
    assert cells[distributed.NO_DDP]["step, world size 2 (ms)"] == "—"
    assert any("ours: DDPBucketed 10 MB, 1.04x — met" in note for note in notes), notes


def test_allreduce_bandwidths_and_goal():
    """algbw = bytes / time; busbw = algbw · 2(n−1)/n; ours ÷ torch is a speed ratio."""
    results = {"world_size": 4, "allreduce": [{"mib": 1e9 / 2**20, "torch": 0.01, "ours": 0.0125},  # 1 GB in MiB
                                              {"mib": 10, "error": "OOM"}]}
    header, rows, notes = distributed.allreduce_table(results)
    cells = dict(zip(header, rows[0]))
    assert cells["torch algbw (GB/s)"] == "100.00" and cells["torch busbw (GB/s)"] == "150.00"
    assert cells["ours algbw (GB/s)"] == "80.00" and cells["ours ÷ torch (speed)"] == "0.80x"
    assert rows[1][1] == "OOM"
    assert any("worst 0.80x — NOT met" in note for note in notes), notes


@pytest.mark.parametrize("argv", [["--sections", "ddp,zero"], ["--buckets-mb", "10,x"], ["--allreduce-mib", "0"],
                                  ["--model", "huge"]])
def test_bad_choices_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        distributed.parse_args(argv)
    err = capsys.readouterr().err
    assert "expected" in err or "unknown" in err or "invalid choice" in err, err


def test_memory_table_compares_each_row_with_its_torch_peer():
    """Peak ratio = ours ÷ the peer's peak through the optimizer step; the ZeRO goal reads ShardedOptimizer's."""
    def row(peak: float, step_ms: float) -> dict:
        return dict(step_ms=step_ms, std_ms=0.0, phases_ms=[1.0, 1.0, 1.0], init_gib=1.0, init_peak_gib=1.5,
                    peak_before_gib=peak - 1, peak_after_gib=peak)

    memory = {name: row(10.0, 100.0) for name in SHARDING}
    memory["ours: ShardedOptimizer + torch DDP"] = row(9.0, 125.0)
    memory["ours: FSDP"] = {"error": "OOM"}
    header, rows, notes = distributed.memory_table({"world_size": 2, "memory": memory})
    cells = {r[0]: dict(zip(header, r)) for r in rows}
    ours = cells["ours: ShardedOptimizer + torch DDP"]
    assert ours["peak ÷ torch peer's"] == "0.90x" and ours["speed vs torch peer"] == "0.80x"
    assert ours["after init: allocated / peak (GiB)"] == "1.00 / 1.50" and ours["optimizer"] == "torch.optim.AdamW"
    assert cells["ours: FSDP"]["step (ms)"] == "OOM" and cells["ours: FSDP"]["peak ÷ torch peer's"] == ""
    assert cells["unsharded: torch DDP"]["peak ÷ torch peer's"] == ""  # the baseline has no peer
    assert any("0.90x — met" in note for note in notes), notes
