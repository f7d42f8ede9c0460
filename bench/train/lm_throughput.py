"""Training throughput, an implementation vs ours and a nanoGPT-style peer: tokens/s and MFU (A1 §7, A2 §2).

    python -m bench.train.lm_throughput --config tinystories --steps 100          # on a GPU
    python -m bench.train.lm_throughput --config gpt2-small --compile on
    python -m bench.train.lm_throughput --tiny                                    # on a CPU, in seconds
    python -m bench.train.lm_throughput --tiny --impl mypkg                       # yours beside ours and the peer
    python -m bench.train.lm_throughput --config tinystories --profile 5          # and where a step's time goes

"Ours" is the real ``train`` program's step, impl.programs.trainer.Trainer.train_step (get_batch,
autocast, our cross_entropy, clip_gradients, our AdamW), on a temporary uint16 token file. The
peer (bench/train/nanogpt_peer.py) is the same model in torch.nn + SDPA + fused AdamW, started from
ours' initial weights and fed the same windows from the same file, so that the loss columns of
the two rows must agree. ``--impl`` adds the implementation's own step: its TransformerLM (loaded with
ours' initial weights: the spec's state-dict keys), AdamW and cross_entropy, fed and clipped as the peer
is; a component it lacks (or a model that gives no gradients, as course adapters) is a "missing" row.
Warm-up steps (compilation included) are excluded; the timed steps are bracketed by
torch.cuda.synchronize(). Precision is bf16 autocast on a GPU, fp32 on a CPU. ``--profile N`` then runs N more
steps of each row under torch.profiler (bench/train/step_profile.py): a second table of milliseconds per step by
kernel category, and each row's profiler table beside the report, ending with the device's gaps summed by the
kernels before and after them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.common import PEAK_BF16_FLOPS, ComponentMissing, add_impl_argument, flops_per_token, fmt, free_memory, \
    mfu, peak_memory_gib, report, reset_peak_memory, tested_implementation, timed, trainable, write_report, yours
from bench.train.nanogpt_peer import PeerTrainer, SameBatches
from bench.train.step_profile import PROFILE_HEADER, profile_row, profile_steps
from impl.programs.config import KERNELS, TrainConfig, kernel_set
from impl.programs.trainer import Trainer

CONFIGS = {
    # The handout's TinyStories model (A1 §7.2): 17M parameters without the embeddings.
    "tinystories": dict(vocab_size=10_000, context_length=256, d_model=512, num_layers=4, num_heads=16, d_ff=1344,
                        batch_size=128),
    # GPT-2 small's shapes and vocabulary; SwiGLU d_ff = 8/3·d has the 4·d MLP's size: 124M without the embedding.
    "gpt2-small": dict(vocab_size=50_257, context_length=1024, d_model=768, num_layers=12, num_heads=12, d_ff=2048,
                       batch_size=32),
    # For tests on a CPU.
    "tiny": dict(vocab_size=256, context_length=32, d_model=64, num_layers=2, num_heads=4, d_ff=128, batch_size=4),
}
HEADER = ["config", "implementation", "compile", "tokens/s", "step (ms)", "MFU", "÷ peer (tokens/s)",
          "peak memory (GiB)", "loss at last step"]
PEER = "nanoGPT-style peer"


@dataclass
class Result:
    tokens_per_s: float
    step_ms: float
    peak_gib: float | None
    loss: float
    profile: dict[str, float] | None = None  # step_profile.profile_steps's, with --profile


@dataclass(frozen=True)
class Profiling:
    steps: int  # 0: none
    directory: Path  # the profiler's tables, one file per row


def measure(train_step, device: torch.device, warmup: int, steps: int, tokens_per_step: int,
            profiling: Profiling, row_name: str) -> Result | None:
    """Throughput of ``steps`` steps after ``warmup`` untimed ones (then ``profiling.steps`` profiled ones); None if
    the GPU runs out of memory."""
    try:
        reset_peak_memory(device)
        for _ in range(warmup):
            train_step()
        losses = []
        seconds = timed(lambda: losses.append(train_step()), device, repeat=steps)  # no host sync inside
        result = Result(tokens_per_step * steps / seconds, 1000 * seconds / steps, peak_memory_gib(device),
                        losses[-1].item())
        if profiling.steps:
            result.profile = profile_steps(train_step, device, profiling.steps,
                                           profiling.directory / f"{row_name}.txt")
    except torch.OutOfMemoryError:
        return None
    return result


def table_row(config: str, label: str, compile: bool, result: Result | str | None, peer: Result | None, flops: int,
              device: torch.device) -> list[str]:
    """One row; ``result`` None: out of memory; a string: why the row has no figures (missing, error)."""
    settings = [config, label, "on" if compile else "off"]
    if isinstance(result, str):
        return settings + [result] + [""] * 5
    ratio = f"{result.tokens_per_s / peer.tokens_per_s:.2f}x" if result and peer and label != PEER else "-"
    if result is None:
        return settings + ["OOM", "OOM", "OOM", ratio, "OOM", "OOM"]
    return settings + [f"{result.tokens_per_s:,.0f}", f"{result.step_ms:.1f}",
                       fmt(mfu(result.tokens_per_s, flops, device), ".1%"), ratio, fmt(result.peak_gib, ".2f"),
                       f"{result.loss:.4f}"]


def token_file(directory: Path, vocab_size: int, n_tokens: int) -> Path:
    """Uniform random uint16 tokens with the sidecar .json the ``train`` program reads vocab_size from."""
    path = directory / f"tokens-{vocab_size}.npy"
    np.save(path, np.random.default_rng(0).integers(0, vocab_size, size=n_tokens, dtype=np.uint16))
    path.with_suffix(".json").write_text(json.dumps({"dtype": "uint16", "vocab_size": vocab_size}))
    return path


def bundle_trainer(bundle, cfg: TrainConfig, tokens: np.ndarray, weights: dict[str, torch.Tensor]) -> SameBatches:
    """The implementation's own step: its TransformerLM from ours' initial weights, its AdamW and cross_entropy."""
    model_cls, optimizer_cls, cross_entropy = trainable(bundle, "TransformerLM"), bundle.AdamW, bundle.cross_entropy
    model = model_cls(cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.d_ff,
                      cfg.rope_theta, device=torch.device(cfg.device))
    model.load_state_dict(weights)  # the spec's keys: the same start as ours and the peer
    optimizer = optimizer_cls(model.parameters(), lr=cfg.lr_max, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                              weight_decay=cfg.weight_decay)
    forward = torch.compile(model) if cfg.compile else model
    return SameBatches(cfg, tokens, model, optimizer, lambda x, y: cross_entropy(forward(x), y))


def measure_bundle(bundle, cfg: TrainConfig, data: Path, weights: dict, warmup: int, steps: int,
                   profiling: Profiling, row_name: str) -> Result | str | None:
    """The implementation's throughput, or why there is none: a missing component, or its error."""
    device = torch.device(cfg.device)
    try:
        trainer = bundle_trainer(bundle, cfg, np.load(data, mmap_mode="r"), weights)
        return measure(trainer.train_step, device, warmup, steps, cfg.batch_size * cfg.context_length, profiling,
                       row_name)
    except ComponentMissing as missing:
        return str(missing)
    except Exception as error:  # noqa: BLE001  (a failing implementation: one row, not the run)
        return f"error: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
    finally:
        trainer = None
        free_memory(device)


def compare(shape: dict, compile: bool, data: Path, out_dir: Path, warmup: int, steps: int, tested,
            profiling: Profiling, name: str) -> tuple[TrainConfig, int, Result | None, Result | str | None, Result | None]:
    """Time ours, the implementation under test (None: none) and the peer, all from ours' initial weights;
    returns the resolved config and N (no embedding) with the three results."""
    trainer = Trainer(TrainConfig(train_data=str(data), valid_data=str(data), out_dir=str(out_dir), compile=compile,
                                  **shape))
    cfg, device = trainer.cfg, torch.device(trainer.cfg.device)
    weights = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
    non_embedding = sum(w.numel() for w in weights.values()) - weights["token_embeddings.weight"].numel()

    def ours_step() -> torch.Tensor:
        loss, _ = trainer.train_step()
        trainer.step += 1  # as Trainer.run: the schedule moves on
        return loss

    tokens_per_step = cfg.batch_size * cfg.context_length
    row = f"{name}-compile-{'on' if compile else 'off'}"
    ours = measure(ours_step, device, warmup, steps, tokens_per_step, profiling, f"{row}-ours")
    del trainer, ours_step
    free_memory(device)
    theirs = None if tested is None else measure_bundle(tested, cfg, data, weights, warmup, steps, profiling,
                                                        f"{row}-yours")
    peer_trainer = PeerTrainer(cfg, np.load(data, mmap_mode="r"), weights)
    peer = measure(peer_trainer.train_step, device, warmup, steps, tokens_per_step, profiling, f"{row}-peer")
    del peer_trainer
    free_memory(device)
    return cfg, non_embedding, ours, theirs, peer


def kernels_setting(text: str) -> str:
    try:
        kernel_set(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.train.lm_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="tinystories,gpt2-small",
                        help=f"comma-separated, from {', '.join(CONFIGS)} (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per row (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first, compilation included")
    parser.add_argument("--compile", choices=["both", "on", "off"], default="both", help="torch.compile both models")
    parser.add_argument("--batch-size", type=int, help="override every config's batch size")
    parser.add_argument("--context-length", type=int, help="override every config's context length")
    parser.add_argument("--vocab-size", type=int, help="override every config's vocabulary (at most 65536: uint16)")
    parser.add_argument("--kernels", type=kernels_setting,
                        help=f"ours on fused kernels: none, all, or some of {','.join(KERNELS)} (TrainConfig.kernels; "
                             "all is the fused kernels, without cudagraphs)")
    add_impl_argument(parser)
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then N steps of each row under torch.profiler: where the step's time goes")
    parser.add_argument("--out", type=Path, default=Path("reports/lm_throughput.md"))
    parser.add_argument("--tiny", action="store_true",
                        help="tiny model, 1 warm-up + 3 steps, no compile: for CPU tests")
    args = parser.parse_args(argv)
    if args.tiny:
        args.config, args.warmup, args.steps, args.compile = "tiny", 1, 3, "off"
    unknown = [name for name in args.config.split(",") if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown}: choose from {list(CONFIGS)}")
    if args.profile < 0:
        parser.error(f"--profile must be >= 0, got {args.profile}")
    if args.kernels and "cudagraphs" in kernel_set(args.kernels) and args.compile != "on":
        parser.error(f"--kernels cudagraphs replays the compiled step: it needs --compile on, got {args.compile}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    overrides = {k: v for k in ("batch_size", "context_length", "vocab_size", "kernels")
                 if (v := getattr(args, k)) is not None}
    modes = {"both": [False, True], "on": [True], "off": [False]}[args.compile]
    tested = tested_implementation(args.impl)
    profiling = Profiling(args.profile, args.out.with_suffix("") / "profiles")
    rows, profile_rows, notes = [], [], []
    with tempfile.TemporaryDirectory(prefix="lm_throughput-") as tmp:
        for name in args.config.split(","):
            shape = CONFIGS[name] | overrides
            data = token_file(Path(tmp), shape["vocab_size"], 64 * shape["batch_size"] * (shape["context_length"] + 1))
            for compile in modes:
                cfg, n, ours, theirs, peer = compare(shape, compile, data, Path(tmp) / f"{name}-{compile}",
                                                     args.warmup, args.steps, tested, profiling, name)
                device = torch.device(cfg.device)
                flops = flops_per_token(n, cfg.num_layers, cfg.d_model, cfg.context_length)
                if tested is not None:
                    rows.append(table_row(name, yours(tested, "its step"), compile, theirs, peer, flops, device))
                rows.append(table_row(name, "ours", compile, ours, peer, flops, device))
                rows.append(table_row(name, PEER, compile, peer, peer, flops, device))
                labelled = [(yours(tested, "its step"), theirs)] if tested is not None else []
                profile_rows += [profile_row(name, f"{label}, compile {'on' if compile else 'off'}", result.step_ms,
                                             result.profile)
                                 for label, result in [*labelled, ("ours", ours), (PEER, peer)]
                                 if isinstance(result, Result) and result.profile]
            notes.append(f"{name}: vocab {cfg.vocab_size}, ctx {cfg.context_length}, d_model {cfg.d_model}, "
                         f"d_ff {cfg.d_ff}, {cfg.num_layers} layers, {cfg.num_heads} heads, θ {cfg.rope_theta:g}, "
                         f"batch {cfg.batch_size}, {cfg.precision}, ours on kernels: {cfg.kernels}; N = {n / 1e6:.1f}M parameters without the token "
                         f"embedding, {flops / 1e9:.2f} GFLOP per token (6N + 12·L·d·T)")
    notes += [f"{args.warmup} warm-up steps excluded, then {args.steps} steps timed between "
              "torch.cuda.synchronize() calls",
              "MFU: tokens/s × FLOPs per token ÷ dense bf16 peak ("
              + ", ".join(f"{chip} {peak / 1e12:g}" for chip, peak in PEAK_BF16_FLOPS.items()) + " TFLOP/s)",
              "ours: impl.programs.trainer.Trainer.train_step; peer: bench/train/nanogpt_peer.py (torch.nn, SDPA, loss "
              "inside the compiled module, fused torch AdamW, clip_grad_norm_), same initial weights and batches"]
    if tested is not None:
        notes.append(f"yours: --impl {args.impl} ({tested.name}): its TransformerLM, AdamW and cross_entropy, from "
                     "ours' initial weights, fed the same batches, clip_grad_norm_ and the schedule as the peer")
    title = f"LM training throughput: {'yours and ours' if tested is not None else 'ours'} vs a nanoGPT-style peer"
    text = report(title, "python -m bench.train.lm_throughput", argv, device, notes, HEADER, rows)
    if profile_rows:
        text += "\n" + report(f"Where a step's time goes: ms per step over {args.profile} profiled steps",
                              "python -m bench.train.lm_throughput", argv, device, [
                                  "step: the timed steps' mean (above); device busy: the kernels' summed time per "
                                  "profiled step (leaf operators' on a CPU); device idle: the gaps between them on the "
                                  "profiler's timeline per profiled step, time the device waits for the host "
                                  "(launches, Python, syncs); step − busy − idle: the timed steps against the "
                                  "profiled ones",
                                  "categories by kernel name (bench/train/step_profile.py); each row's profiler "
                                  f"table in {profiling.directory}/"], PROFILE_HEADER, profile_rows)
    write_report(text, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
