"""bench/train/leaderboard_proxy.py: the two-GPU leaderboard step predicted from pieces measured on one device."""

from __future__ import annotations

import pytest
import torch

from bench.train import leaderboard_proxy as proxy

GIB = 2 ** 30


def pieces(forward_s: float, forward_backward_s: float, saved_gib: float):
    timing = lambda s: proxy.Timing(s, "-")  # noqa: E731
    block = {"forward": timing(forward_s), "forward_backward": timing(forward_backward_s), "saved": saved_gib * GIB,
             "peak": 10 * GIB, "input": 0.25 * GIB}
    head = {"embedding": timing(0.01), "head": timing(0.2), "head_peak": 4 * GIB}
    optimizer = {"optimizer": timing(0.05), "shard_numel": 4 * 10 ** 9}
    return block, head, optimizer


def value(rows, quantity: str) -> str:
    return next(row[1] for row in rows if row[0] == quantity)


def test_the_step_adds_the_pieces_with_the_traffic_hidden_behind_compute():
    shape = proxy.LEADERBOARD
    rows, _ = proxy.predict(shape, *pieces(0.05, 0.15, 0.5), link_gb_s=450, memory_gib=139.8)
    # 34 layers x 0.15 s (the traffic, 3 x 1/2 x 405 MB / 450 GB/s = 1.35 ms, hides) + 0.01 + 0.2 + 0.05
    assert value(rows, "activation checkpointing") == "0 of 34 layers"  # 60 GiB of shards + 34 x 0.75 + 14 fit
    assert value(rows, "**predicted step**") == f"**{(34 * 0.15 + 0.26) * 1e3:,.1f} ms**"
    assert value(rows, "FSDP traffic per layer") == f"{3 * 0.5 * 2 * shape.layer_params() / 450e9 * 1e3:,.1f} ms"


def test_a_slow_link_bounds_each_layer():
    rows, _ = proxy.predict(proxy.LEADERBOARD, *pieces(0.001, 0.002, 0.5), link_gb_s=1.0, memory_gib=139.8)
    traffic = 3 * 0.5 * 2 * proxy.LEADERBOARD.layer_params() / 1e9
    assert value(rows, "**predicted step**") == f"**{(34 * traffic + 0.26) * 1e3:,.1f} ms**"


def test_checkpointing_is_counted_for_the_fewest_layers_that_make_the_activations_fit():
    rows, _ = proxy.predict(proxy.LEADERBOARD, *pieces(0.05, 0.15, 8.0), link_gb_s=450, memory_gib=139.8)
    fixed_gib = (16 * 4 * 10 ** 9 + 3 * 2 * proxy.LEADERBOARD.layer_params()) / GIB + 4 + 34 * 0.25 + 10
    kept = int((0.95 * 139.8 - fixed_gib) // 8.0)  # 34 x 8.25 GiB do not fit; this many blocks' 8 GiB do
    assert kept == 6
    assert value(rows, "activation checkpointing") == "28 of 34 layers"
    # the checkpointed blocks' forward recomputed in backward
    assert value(rows, "**predicted step**") == f"**{(28 * 0.20 + 6 * 0.15 + 0.26) * 1e3:,.1f} ms**"
    assert value(rows, "**predicted peak memory per GPU**") == f"**{fixed_gib + 6 * 8.0:.2f} GiB**"


def test_every_layer_is_checkpointed_when_even_that_does_not_fit():
    rows, _ = proxy.predict(proxy.LEADERBOARD, *pieces(0.05, 0.15, 8.0), link_gb_s=450, memory_gib=80.0)
    assert value(rows, "activation checkpointing") == "34 of 34 layers"
    assert value(rows, "**predicted step**") == f"**{(34 * 0.20 + 0.26) * 1e3:,.1f} ms**"


def test_the_leaderboard_model_has_the_handouts_size():
    """A2 §9's Config: an '8B model' (untied embeddings, SwiGLU, RMSNorm gains)."""
    assert proxy.LEADERBOARD.params() == 8_125_698_048


def test_a_tiny_run_writes_the_report(tmp_path):
    out = tmp_path / "proxy.md"
    assert proxy.main(["--tiny", "--repeats", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| **predicted step** |" in text and "AdamW on this GPU's shards" in text


@pytest.mark.parametrize("argv, message", [
    (["--tiny", "--repeats", "0"], "--repeats >= 1"),
    (["--tiny", "--link-gb-s", "0"], "--link-gb-s must be > 0"),
    pytest.param([], "on a CPU give --tiny",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="the full size runs on a GPU")),
])
def test_bad_arguments_are_refused_before_any_work(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        proxy.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
