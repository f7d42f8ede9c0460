"""The A2 leaderboard step (handout A2 §9) on several GPUs: the 8B model, batch 2, context 32768, forward + loss +
backward + AdamW, each rank one sequence, timed as the handout's test times it.

    torchrun --standalone --nproc-per-node 2 -m bench.train.leaderboard_step --out results/leaderboard-step.md
    torchrun --standalone --nproc-per-node 2 -m bench.train.leaderboard_step --tiny     # two CPU processes (gloo)

What runs: impl.nn.TransformerLM under the reference FSDP (impl/distributed/fsdp.py: float32 master shards, weights
gathered and gradients reduce-scattered in bfloat16), FlashAttention-2 and the fused RMSNorm, the LM head applied
inside the loss chunk by chunk (impl/kernels/linear_cross_entropy.py, run inside the wrapper so that the head's
weight is gathered like any other), AdamW's update compiled (impl/kernels/adamw.py), and the first
``--checkpoint-layers`` blocks' activations recomputed in backward (all by default: 34 blocks' activations at 32768
tokens do not fit; ``python -m bench.train.leaderboard_proxy`` counts the fewest that make them fit, and predicts this
step from one GPU).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from bench.common import gathered, init, peak_memory_gib, report, reset_peak_memory, sync, timed, write_report
from bench.train.leaderboard_proxy import LEADERBOARD, TINY, StepShape
from impl.programs.launch import exit_rank


class CheckpointedBlock(nn.Module):
    """A block whose activations FSDP recomputes in backward (FSDP.checkpointed); the wrapper is set once built."""

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block
        self.wrappers: list = []  # [the FSDP wrapper]: in a list, so that it is not registered as a submodule

    def forward(self, x: Tensor, cache=None) -> Tensor:
        if cache is not None:
            raise ValueError("a checkpointed block runs training steps, not cached decoding")
        return self.wrappers[0].checkpointed(self.block, x)


def build(shape: StepShape, device: torch.device, checkpoint_layers: int, lr: float = 1e-4):
    """The wrapped model and its optimizer, the first ``checkpoint_layers`` blocks recomputed in backward; every rank
    builds the same weights (seed 0) before FSDP shards them."""
    from impl.distributed.fsdp import FSDP
    from impl.kernels.adamw import CompiledAdamW
    from impl.kernels.fast_lm import use_kernels
    from impl.kernels.linear_cross_entropy import LanguageModelLoss
    from impl.nn import TransformerLM

    torch.manual_seed(0)
    model = TransformerLM(shape.vocab_size, shape.context_length, shape.d_model, shape.num_layers, shape.num_heads,
                          shape.d_ff, shape.rope_theta, device=device)
    use_kernels(model, attention=True, rmsnorm=device.type == "cuda")
    checkpointed = [CheckpointedBlock(block) for block in model.layers[:checkpoint_layers]]
    model.layers = nn.ModuleList([*checkpointed, *model.layers[checkpoint_layers:]])
    wrapper = FSDP(LanguageModelLoss(model), compute_dtype=torch.bfloat16)  # gathers the head for the loss
    for block in checkpointed:
        block.wrappers.append(wrapper)
    backend = "inductor" if device.type == "cuda" else "aot_eager"  # aot_eager: no C++ compiler needed on a CPU
    return wrapper, CompiledAdamW(wrapper.parameters(), lr=lr, backend=backend)


def train_step(wrapper, optimizer, tokens: Tensor, targets: Tensor) -> Tensor:
    """The handout's train_step: zero the gradients, the loss, backward, AdamW (FSDP's replicated gains averaged)."""
    optimizer.zero_grad(set_to_none=True)
    loss = wrapper(tokens, targets)
    loss.backward()
    wrapper.finish_gradient_synchronization()
    optimizer.step()
    return loss.detach()


def batch(shape: StepShape, device: torch.device) -> tuple[Tensor, Tensor]:
    """This rank's sequence of the global batch: the handout's random tokens (seed 1), rows split over the ranks."""
    generator = torch.Generator().manual_seed(1)
    tokens = torch.randint(shape.vocab_size, (2, shape.batch_size, shape.context_length), generator=generator)
    inputs, targets = (t.tensor_split(dist.get_world_size())[dist.get_rank()].to(device) for t in tokens)
    return inputs, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     prog="torchrun --nproc-per-node N -m bench.train.leaderboard_step")
    parser.add_argument("--tiny", action="store_true", help="a tiny model: the code path on CPUs (gloo)")
    parser.add_argument("--checkpoint-layers", type=int, metavar="N",
                        help="recompute the first N blocks' activations in backward (default: every block; 0: none)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("reports/leaderboard-step.md"))
    args = parser.parse_args(argv)
    if args.warmup < 0 or args.steps < 1:
        parser.error("--warmup must be >= 0 and --steps >= 1")
    shape = TINY if args.tiny else LEADERBOARD
    checkpoint_layers = shape.num_layers if args.checkpoint_layers is None else args.checkpoint_layers
    if not 0 <= checkpoint_layers <= shape.num_layers:
        parser.error(f"--checkpoint-layers must be between 0 and the model's {shape.num_layers} layers")
    device = init()
    if shape.batch_size % dist.get_world_size():
        parser.error(f"the batch of {shape.batch_size} sequences does not split over {dist.get_world_size()} ranks")
    wrapper, optimizer = build(shape, device, checkpoint_layers)
    tokens, targets = batch(shape, device)
    losses = [train_step(wrapper, optimizer, tokens, targets) for _ in range(args.warmup)]
    reset_peak_memory(device)
    times = []
    for _ in range(args.steps):
        dist.barrier()
        times.append(timed(lambda: losses.append(train_step(wrapper, optimizer, tokens, targets)), device))
    sync(device)
    figures = gathered({"times": times, "peak_gib": peak_memory_gib(device),
                        "losses": [float(loss) for loss in losses]})
    if dist.get_rank() == 0:
        slowest = [max(rank["times"][i] for rank in figures) for i in range(args.steps)]  # a step ends with the last
        peaks = [rank["peak_gib"] for rank in figures if rank["peak_gib"] is not None]
        rows = [[f"{statistics.median(slowest):.3f} s", f"{min(slowest):.3f}-{max(slowest):.3f} s",
                 f"{max(peaks):.1f} GiB" if peaks else "n/a", " → ".join(f"{x:.4f}" for x in figures[0]["losses"])]]
        notes = [f"model: {shape.params():,} parameters, {shape.num_layers} layers, d_model {shape.d_model}, "
                 f"context {shape.context_length}, batch {shape.batch_size} on {dist.get_world_size()} ranks",
                 f"FSDP in bfloat16, FlashAttention-2, fused RMSNorm (CUDA), LM head in the loss, compiled AdamW, "
                 f"activation checkpointing in {checkpoint_layers} of {shape.num_layers} blocks; "
                 f"{args.warmup} warm-up steps, {args.steps} timed (each the slowest rank's, between barriers)"]
        text = report("The A2 leaderboard step", "torchrun -m bench.train.leaderboard_step",
                      argv if argv is not None else sys.argv[1:], device, notes,
                      ["step (median)", "range", "peak memory (largest rank)", "rank 0's loss, step by step"], rows)
        write_report(text, args.out)
    dist.barrier()  # no rank tears the group down while rank 0 still writes the report
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    exit_rank(main())
