"""The A2 leaderboard step (handout A2 §9) predicted from one GPU: the pieces of a two-GPU FSDP step measured at full
size, then added up with the arithmetic shown.

    python -m bench.train.leaderboard_proxy --out results/leaderboard-proxy.md      # one H200: ~3 minutes
    python -m bench.train.leaderboard_proxy --tiny                                  # on a CPU, in seconds

The step: the handout's 8B model (34 layers, d_model 4096, d_ff 11008, 32 heads, vocab 151936, context 32768),
batch 2, forward + loss + backward + AdamW, on two GPUs. Under FSDP (impl/distributed/fsdp.py) each GPU runs one
of the two sequences through every layer with the layer's weights gathered in bfloat16, and keeps half of every
weight as a float32 master with its gradient and AdamW's two moments. So one GPU measures what each of the two does:

- one block (impl.nn.TransformerBlock on the kernels: FlashAttention-2, the fused RMSNorm) on one sequence of
  32768 tokens in bfloat16: forward, forward + backward, the activations it saves for backward and its peak;
- the token embedding's forward and backward, and the final RMSNorm with the LM head and the loss
  (impl.kernels.linear_cross_entropy: the logits never stored) on 32768 tokens;
- the AdamW update (impl.kernels.adamw.CompiledAdamW) of half of every weight, in float32.

What one GPU cannot measure is assumed and named in the report: the link (NVLink, GB/s each way per GPU), over which
FSDP gathers each layer's weights twice (forward, and backward's re-gather) and reduce-scatters its gradient, hidden
behind the layer's compute as far as the compute lasts (prefetch); the data-parallel sum of the replicated gains is
negligible. Activation checkpointing (recompute a block's forward in backward) is counted for the fewest blocks
that make the activations fit: each block left out keeps its activations and saves its forward's time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.common import free_memory, report, reset_peak_memory, sync, timed, write_report


# The handout's Config (A2 §9); the leaderboard times it on two B200s, the naive baseline 10 s, the best 6.2 s.
@dataclass(frozen=True)
class StepShape:
    vocab_size: int = 151_936
    context_length: int = 32_768
    d_model: int = 4096
    d_ff: int = 11_008
    num_layers: int = 34
    num_heads: int = 32
    batch_size: int = 2
    rope_theta: float = 10_000.0

    def layer_params(self) -> int:
        return 4 * self.d_model ** 2 + 3 * self.d_model * self.d_ff + 2 * self.d_model  # q k v o, w1 w2 w3, 2 gains

    def params(self) -> int:
        return self.num_layers * self.layer_params() + 2 * self.vocab_size * self.d_model + self.d_model


LEADERBOARD = StepShape()
TINY = StepShape(vocab_size=512, context_length=128, d_model=64, d_ff=172, num_layers=3, num_heads=4)
GPUS = 2


@dataclass
class Timing:
    seconds: float  # median
    spread: str  # min-max, for the report


def median_timing(fn, device: torch.device, repeats: int) -> Timing:
    times = [timed(fn, device) for _ in range(repeats)]
    return Timing(statistics.median(times), f"{min(times) * 1e3:.1f}-{max(times) * 1e3:.1f}")


def allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def peak_since(device: torch.device, start: int) -> int:
    return torch.cuda.max_memory_allocated(device) - start if device.type == "cuda" else 0


def measure_block(shape: StepShape, device: torch.device, kernels: bool, repeats: int) -> dict:
    """One block on one sequence, bfloat16: forward and forward + backward; saved activations and peak (bytes)."""
    from impl.kernels.fast_lm import use_kernels
    from impl.nn import RotaryEmbedding, TransformerBlock

    d_head = shape.d_model // shape.num_heads
    rope = RotaryEmbedding(shape.rope_theta, d_head, shape.context_length, device=device)
    block = TransformerBlock(shape.d_model, shape.num_heads, shape.d_ff, rope, device=device, dtype=torch.bfloat16)
    if kernels:
        use_kernels(block, attention=True, rmsnorm=device.type == "cuda")
    x = torch.randn(1, shape.context_length, shape.d_model, device=device, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn_like(x)

    def forward_backward():
        block(x).backward(grad)

    for _ in range(2):  # warm-up: autotuning, allocator
        forward_backward()
    with torch.no_grad():
        forward = median_timing(lambda: block(x), device, repeats)
    forward_backward_timing = median_timing(forward_backward, device, repeats)
    sync(device)
    before = allocated(device)
    reset_peak_memory(device)
    out = block(x)
    saved = allocated(device) - before - out.numel() * out.element_size()
    out.backward(grad)
    sync(device)
    return {"forward": forward, "forward_backward": forward_backward_timing, "saved": saved,
            "peak": peak_since(device, before), "input": x.numel() * x.element_size()}


def measure_head(shape: StepShape, device: torch.device, repeats: int) -> dict:
    """Embedding forward + backward, and final RMSNorm + LM head + loss forward + backward, one sequence."""
    from impl.kernels.linear_cross_entropy import linear_cross_entropy
    from impl.nn import Embedding, RMSNorm

    tokens = torch.randint(shape.vocab_size, (1, shape.context_length + 1), device=device)
    embedding = Embedding(shape.vocab_size, shape.d_model, device=device, dtype=torch.bfloat16)
    norm = RMSNorm(shape.d_model, device=device, dtype=torch.bfloat16)
    head = torch.randn(shape.vocab_size, shape.d_model, device=device, dtype=torch.bfloat16) * shape.d_model ** -0.5
    head.requires_grad_()
    hidden = torch.randn(1, shape.context_length, shape.d_model, device=device, dtype=torch.bfloat16,
                         requires_grad=True)

    def embed():
        embedding(tokens[:, :-1]).backward(hidden.detach())

    def loss():
        linear_cross_entropy(norm(hidden), head, tokens[:, 1:]).backward()

    for fn in (embed, loss):
        fn()
    sync(device)
    before = allocated(device)
    reset_peak_memory(device)
    loss()
    sync(device)
    return {"embedding": median_timing(embed, device, repeats), "head": median_timing(loss, device, repeats),
            "head_peak": peak_since(device, before)}


def measure_optimizer(shape: StepShape, device: torch.device, repeats: int) -> dict:
    """CompiledAdamW on one GPU's shards: 1/GPUS of every weight's rows, float32, with float32 gradients."""
    from impl.kernels.adamw import CompiledAdamW

    d, f = shape.d_model, shape.d_ff
    layer = [(d, d)] * 4 + [(f, d), (d, f), (f, d)]
    shapes = layer * shape.num_layers + [(shape.vocab_size, d)] * 2
    params = [torch.zeros(-(-rows // GPUS), cols, device=device, requires_grad=True) for rows, cols in shapes]
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    optimizer = CompiledAdamW(params, lr=1e-4, backend="inductor" if device.type == "cuda" else "aot_eager")
    optimizer.step()  # compiles; creates the moments
    sync(device)
    numel = sum(p.numel() for p in params)
    return {"optimizer": median_timing(optimizer.step, device, repeats), "shard_numel": numel}


def predict(shape: StepShape, block: dict, head: dict, optimizer: dict, link_gb_s: float, memory_gib: float | None
            ) -> tuple[list[list[str]], list[str]]:
    """The step on GPUS GPUs from the measured pieces: rows of (quantity, value, how) and the notes."""
    layer_bytes = 2 * shape.layer_params()  # bfloat16 on the wire
    ring = (GPUS - 1) / GPUS  # of a tensor's bytes, each GPU sends and receives in a ring all-gather/reduce-scatter
    comm = 3 * ring * layer_bytes / (link_gb_s * 1e9)  # gather, re-gather in backward, reduce-scatter
    gib = 2 ** 30
    shards = 16 * optimizer["shard_numel"]  # float32 master, gradient, m, v
    gathered = 3 * layer_bytes  # the layer in use and PREFETCH = 2 gathers in flight
    fixed = shards + gathered + head["head_peak"]
    checkpointed = checkpointed_layers(shape.num_layers, fixed, block, memory_gib)
    kept = shape.num_layers - checkpointed  # blocks whose activations stay until backward
    activations = shape.num_layers * block["input"] + kept * block["saved"] + block["peak"]
    plain_compute = block["forward_backward"].seconds
    recomputed_compute = plain_compute + block["forward"].seconds
    layers = kept * max(plain_compute, comm) + checkpointed * max(recomputed_compute, comm)
    step = head["embedding"].seconds + layers + head["head"].seconds + optimizer["optimizer"].seconds
    memory = fixed + activations
    ms = lambda t: f"{t * 1e3:,.1f} ms"  # noqa: E731
    gib_or_na = lambda b: f"{b / gib:.2f} GiB" if memory_gib else "n/a"  # noqa: E731  CPUs keep no allocator stats
    rows = [
        ["block forward (one sequence)", ms(block["forward"].seconds),
         f"measured, median (range {block['forward'].spread} ms)"],
        ["block forward + backward", ms(block["forward_backward"].seconds),
         f"measured, median (range {block['forward_backward'].spread} ms)"],
        ["block activations saved for backward", gib_or_na(block["saved"]), "measured (allocated after forward)"],
        ["FSDP traffic per layer", ms(comm),
         f"3 × ({GPUS}−1)/{GPUS} × {layer_bytes / gib:.3f} GiB ÷ {link_gb_s:g} GB/s (assumed link)"],
        ["activation checkpointing", f"{checkpointed} of {shape.num_layers} layers",
         "the fewest that make the activations fit in 95% of the memory" if checkpointed else "not needed to fit"],
        [f"{shape.num_layers} layers", ms(layers),
         f"{kept} × max(compute {ms(plain_compute)}, traffic {ms(comm)}) + {checkpointed} × max(compute "
         f"{ms(recomputed_compute)} with the forward recomputed, traffic): the gathers prefetched behind the compute"],
        ["embedding forward + backward", ms(head['embedding'].seconds), "measured"],
        ["final norm + LM head + loss, forward + backward", ms(head['head'].seconds), "measured (logits never stored)"],
        ["AdamW on this GPU's shards", ms(optimizer['optimizer'].seconds),
         f"measured ({optimizer['shard_numel'] / 1e9:.2f}B float32 parameters)"],
        ["**predicted step**", f"**{ms(step)}**", "embedding + layers + head + AdamW"],
        ["memory: shards (master, gradient, m, v)", f"{shards / gib:.1f} GiB", "16 bytes × this GPU's parameters"],
        ["memory: gathered weights", f"{gathered / gib:.1f} GiB", "3 layers in bfloat16"],
        ["memory: activations", gib_or_na(activations),
         f"{shape.num_layers} × input + {kept} × saved + one block's peak"],
        ["memory: head peak", gib_or_na(head["head_peak"]), "measured"],
        ["**predicted peak memory per GPU**", f"**{gib_or_na(memory)}**",
         f"of {memory_gib:.1f} GiB" if memory_gib else "activations not measured on a CPU"],
    ]
    notes = [f"model: {shape.params():,} parameters, {shape.num_layers} layers, d_model {shape.d_model}, "
             f"d_ff {shape.d_ff}, {shape.num_heads} heads, vocab {shape.vocab_size}, context {shape.context_length}, "
             f"batch {shape.batch_size} on {GPUS} GPUs (one sequence each)",
             "pieces measured on this one device; the link is assumed; times are medians of the repeats",
             f"the step predicted, on {GPUS} GPUs: `torchrun --standalone --nproc-per-node {GPUS} -m "
             f"bench.train.leaderboard_step --checkpoint-layers {checkpointed}`"]
    return rows, notes


def checkpointed_layers(num_layers: int, fixed: int, block: dict, memory_gib: float | None) -> int:
    """The fewest blocks whose forward must be recomputed in backward for the step's memory to fit in 95% of the
    device's (all of them if even that does not fit; none where the memory is unknown, on a CPU)."""
    if memory_gib is None:
        return 0
    room = 0.95 * memory_gib * 2 ** 30 - fixed - block["peak"] - num_layers * block["input"]
    kept = max(0, min(num_layers, int(room // block["saved"]))) if block["saved"] > 0 else num_layers
    return num_layers - kept


def device_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.get_device_properties(device).total_memory / 2 ** 30 if device.type == "cuda" else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     prog="python -m bench.train.leaderboard_proxy")
    parser.add_argument("--tiny", action="store_true", help="a tiny model on whatever device: the code path in seconds")
    parser.add_argument("--link-gb-s", type=float, default=450.0,
                        help="GPU-to-GPU bandwidth each way per GPU, GB/s (H200 NVLink: 450)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-kernels", action="store_true",
                        help="the reference block (no FlashAttention or RMSNorm kernels)")
    parser.add_argument("--out", type=Path, default=Path("reports/leaderboard-proxy.md"))
    args = parser.parse_args(argv)
    if args.link_gb_s <= 0 or args.repeats < 1:
        parser.error("--link-gb-s must be > 0 and --repeats >= 1")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        parser.error("the full-size pieces need a GPU (about 90 GiB of it); on a CPU give --tiny")
    shape = TINY if args.tiny else LEADERBOARD
    block = measure_block(shape, device, kernels=not args.no_kernels, repeats=args.repeats)
    free_memory(device)
    head = measure_head(shape, device, args.repeats)
    free_memory(device)
    optimizer = measure_optimizer(shape, device, args.repeats)
    rows, notes = predict(shape, block, head, optimizer, args.link_gb_s, device_memory_gib(device))
    text = report("The A2 leaderboard step on two GPUs, predicted from one", "python -m bench.train.leaderboard_proxy",
                  argv if argv is not None else sys.argv[1:], device, notes, ["quantity", "value", "how"], rows)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
