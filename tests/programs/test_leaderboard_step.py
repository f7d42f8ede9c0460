"""bench/train/leaderboard_step.py: the A2 leaderboard step under FSDP with the LM head in the loss and each block
recomputed in backward, on two CPU ranks (gloo) at a tiny size.

The oracles: the same FSDP step without activation checkpointing (recomputation must not change a thing), and the
unwrapped model's own logits through impl.train.cross_entropy for the loss inside the wrapper."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.harness.helpers import REPO
from tests.harness.multiprocess import run_ranks


def two_steps(rank: int, world_size: int, checkpoint_layers: int) -> dict:
    import torch.distributed as dist

    from bench.train import leaderboard_step as step
    from bench.train.leaderboard_proxy import TINY
    from impl.nn import TransformerLM
    from impl.train import cross_entropy

    device = torch.device("cpu")
    wrapper, optimizer = step.build(TINY, device, checkpoint_layers)
    tokens, targets = step.batch(TINY, device)
    torch.manual_seed(0)
    reference = TransformerLM(TINY.vocab_size, TINY.context_length, TINY.d_model, TINY.num_layers, TINY.num_heads,
                              TINY.d_ff, TINY.rope_theta)  # the same seed and order: the weights FSDP sharded
    with torch.no_grad():
        expected = float(cross_entropy(reference(tokens), targets))
    saved = []  # tensors the forward saves for backward outside checkpointed regions (FSDP's hook sees them)
    pack = wrapper.pack
    wrapper.pack = lambda tensor: saved.append(tensor.shape) or pack(tensor)
    losses = [float(step.train_step(wrapper, optimizer, tokens, targets)) for _ in range(2)]
    shards = [(name.replace(".block.", "."), p.detach().clone()) for name, p in wrapper.named_parameters()]
    assert dist.get_world_size() == world_size
    return {"losses": losses, "expected_first": expected, "shards": shards, "saved": len(saved) // 2}


def test_checkpointed_blocks_train_as_the_plain_ones_and_the_loss_is_the_models():
    from bench.train.leaderboard_proxy import TINY

    checkpointed = run_ranks(two_steps, 2, TINY.num_layers, timeout_s=300)
    some = run_ranks(two_steps, 2, 1, timeout_s=300)  # the first block only
    plain = run_ranks(two_steps, 2, 0, timeout_s=300)
    for ours, theirs in zip(some, plain):
        assert ours["losses"] == theirs["losses"]
        assert checkpointed[0]["saved"] < ours["saved"] < theirs["saved"]
    for rank, (ours, theirs) in enumerate(zip(checkpointed, plain)):
        assert ours["losses"] == theirs["losses"], rank  # the recomputed forward is the forward
        assert [name for name, _ in ours["shards"]] == [name for name, _ in theirs["shards"]]
        for (name, shard), (_, plain_shard) in zip(ours["shards"], theirs["shards"]):
            torch.testing.assert_close(shard, plain_shard, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")
        # bfloat16 compute against the float32 model: within bfloat16's precision
        assert abs(ours["losses"][0] - ours["expected_first"]) < 2e-2 * ours["expected_first"], ours
        assert ours["losses"][1] < ours["losses"][0]  # AdamW stepped on the gathered gradients
        # Checkpointed blocks keep nothing for backward: what is left is the embedding's, the final norm's, the loss's.
        assert ours["saved"] < theirs["saved"] / 4, (ours["saved"], theirs["saved"])


def test_the_command_runs_on_two_cpu_ranks(tmp_path):
    out = tmp_path / "step.md"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--local-addr=127.0.0.1",
               "--nproc-per-node=2", "-m", "bench.train.leaderboard_step", "--tiny", "--warmup", "1", "--steps", "1",
               "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| step (median) |" in out.read_text()


@pytest.mark.parametrize("layers", ["-1", "4"])
def test_a_checkpoint_count_outside_the_model_is_refused_before_any_work(capsys, layers):
    """TINY has 3 layers: -1 and 4 are refused with a usage error, before the process group is joined."""
    from bench.train import leaderboard_step as step

    with pytest.raises(SystemExit) as exit_info:
        step.main(["--tiny", "--checkpoint-layers", layers])
    assert exit_info.value.code == 2
    assert "--checkpoint-layers must be between 0 and the model's 3 layers" in capsys.readouterr().err
