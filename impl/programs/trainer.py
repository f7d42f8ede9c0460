"""One run of the ``train`` program (impl/programs/train.py): a Transformer LM trained from a config (A1 §5.3, §7).

Data are the uint16 ``.npy`` arrays the ``tokenize`` program writes, memory-mapped. Everything the run needs to
continue bit-identically (model, AdamW state, step, the sampler's RNG state, the config) goes into one checkpoint,
written atomically (impl/programs/files.py). The run leaves ``metrics.jsonl``, ``loss.png`` and ``summary.json`` in
``out_dir``. Under torchrun (``parallel`` other than none) the ranks split each batch and only rank 0 writes;
impl/programs/launch.py holds that plumbing, and the checkpoints keep the single-process form.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from impl.programs.checkpoints import load_run_checkpoint
from impl.programs.cli import UserError, gist
from impl.programs.config import (MODEL_FIELDS, TRAJECTORY_FIELDS, TrainConfig, batch_sizes, build_model, check_config,
                                  eval_batch_size, kernel_set, resolve_device)
from impl.programs.files import atomic_write, atomic_write_text, remove_stale_temps
from impl.programs.launch import DataParallel, LaunchError, check_launch, torchrun_env
from impl.programs.run_log import MetricsLog, plot_loss_curves
from impl.train import AdamW, cross_entropy, get_batch, lr_cosine_schedule

OUTPUTS = ("checkpoint.pt", "metrics.jsonl", "loss.png", "summary.json")  # in out_dir


class TrainingError(UserError):
    """A run that cannot start or go on; the message says why and what is kept."""


def resolve(cfg: TrainConfig) -> TrainConfig:
    """Fill the automatic fields and check the config against the machine and the data before any work starts
    (each field's type and range first)."""
    check_config(cfg)
    device = resolve_device(cfg.device)
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if device.startswith("cuda") else "fp32")
    if "rmsnorm" in kernel_set(cfg.kernels) and not device.startswith("cuda"):
        raise TrainingError(f"kernels={cfg.kernels!r} needs a CUDA device (the fused RMSNorm is a Triton kernel), "
                            f"got device={device!r}")
    if "cudagraphs" in kernel_set(cfg.kernels):
        # Graphs replay what torch.compile captured: without it there is nothing to replay; under DDP / FSDP the
        # gradient hooks' collectives run between the graph's kernels, which a replay would skip.
        needs = [need for need, met in (("compile=true", cfg.compile), ("a CUDA device", device.startswith("cuda")),
                                        ("parallel='none'", cfg.parallel == "none")) if not met]
        if needs:
            raise TrainingError(f"kernels={cfg.kernels!r} needs {' and '.join(needs)} (cudagraphs replays the "
                                f"compiled step as CUDA graphs), got compile={cfg.compile}, device={device!r}, "
                                f"parallel={cfg.parallel!r}")
    try:
        device = check_launch(cfg.parallel, batch_sizes(cfg), device)  # under torchrun on CUDA: cuda:LOCAL_RANK
    except LaunchError as error:
        raise TrainingError(str(error)) from None
    if cfg.compile and cfg.parallel == "fsdp":
        # It runs, but dynamo treats each layer's shard index as a constant: a recompilation per layer until its
        # cache limit, then eager. Not worth a silent slowdown.
        raise TrainingError("compile=true with parallel='fsdp' is not supported (torch.compile recompiles the FSDP "
                            "weight gather for every layer); use --no-compile, or parallel ddp / ddp_bucketed")
    for name in ("train_data", "valid_data"):
        if not Path(getattr(cfg, name)).is_file():
            raise TrainingError(f"{name} {getattr(cfg, name)} does not exist (make it with the `tokenize` program)")
    sidecar = read_sidecar(cfg.train_data)
    vocab_size = cfg.vocab_size or sidecar.get("vocab_size", 0)
    if vocab_size == 0:
        raise TrainingError(f"vocab_size is 0 (automatic) but {cfg.train_data}'s sidecar .json does not give one: "
                            f"set vocab_size")
    tokenizer_dir = cfg.tokenizer_dir or sidecar.get("tokenizer_dir", "")
    return dataclasses.replace(cfg, device=device, precision=precision, vocab_size=vocab_size,
                               tokenizer_dir=tokenizer_dir)


def read_sidecar(token_file: str) -> dict:
    """The .json `tokenize` writes beside a token array (vocab_size, tokenizer_dir and hashes); {} if none."""
    path = Path(token_file).with_suffix(".json")
    try:
        sidecar = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise TrainingError(f"{path} is not the JSON sidecar `tokenize` writes: {error}") from None
    if not isinstance(sidecar, dict):
        raise TrainingError(f"{path} is not the JSON sidecar `tokenize` writes (not an object)")
    return sidecar


def sequential_batch(tokens: np.ndarray, index: int, batch_size: int, context_length: int,
                     device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``index`` of consecutive windows from the start of ``tokens``: row r holds window index·B + r, tokens
    [w·m, (w+1)·m), and its targets the same shifted by one, so that no token is an input twice."""
    start = index * batch_size * context_length
    span = np.asarray(tokens[start:start + batch_size * context_length + 1], dtype=np.int64)
    span = torch.from_numpy(span).to(device)
    return span[:-1].view(batch_size, context_length), span[1:].view(batch_size, context_length)


def check_sequential_fits(cfg: TrainConfig, train_tokens: np.ndarray, valid_tokens: np.ndarray) -> None:
    """With data_order sequential, the run's windows must exist: max_steps batches of the training tokens (+1 for
    the last target) and eval_batches of the validation tokens. Checked before the model is built."""
    if cfg.data_order != "sequential":
        return
    for split, tokens, batches, setting, rows, rows_setting in (
            (cfg.train_data, train_tokens, cfg.max_steps, "max_steps", cfg.batch_size, "batch_size"),
            (cfg.valid_data, valid_tokens, cfg.eval_batches, "eval_batches", eval_batch_size(cfg), "eval_batch_size")):
        window_tokens = rows * cfg.context_length
        if batches * window_tokens + 1 > len(tokens):
            raise TrainingError(f"data_order sequential: {setting}={batches} batches of {rows_setting} * "
                                f"context_length = {window_tokens} tokens need {batches * window_tokens + 1:,} "
                                f"tokens (no token used twice), but {split} holds {len(tokens):,}")


def load_tokens(path: str, cfg: TrainConfig) -> np.ndarray:
    try:
        tokens = np.load(path, mmap_mode="r")  # memory-mapped: the corpus may exceed RAM
    except ValueError as error:  # not an .npy (or a pickled object array, which is refused unread)
        raise TrainingError(f"{path} is not a token array written by `tokenize` (a .npy): {gist(error)}") from None
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise TrainingError(f"{path}: expected a 1-D integer token array, got shape {tokens.shape} {tokens.dtype}")
    if len(tokens) <= cfg.context_length:
        raise TrainingError(f"{path} holds {len(tokens)} tokens, too few for context_length={cfg.context_length}")
    largest = int(tokens.max())  # one pass over the file, worth it: an id >= vocab_size would fail mid-run
    if largest >= cfg.vocab_size:
        raise TrainingError(f"{path} contains token id {largest} but vocab_size={cfg.vocab_size}: "
                            "the data was made with a larger tokenizer")
    return tokens


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy (nats) of the tokens' own frequencies: the loss of the best context-free model, a baseline."""
    counts = np.bincount(tokens, minlength=vocab_size)
    p = counts[counts > 0] / len(tokens)
    return float(-(p * np.log(p)).sum())


class Trainer:
    """One run: model, optimizer, data and bookkeeping; ``run()`` trains to ``max_steps``; ``close()`` at the end.

    ``checkpoint`` (``load_run_checkpoint``'s) continues that run; ``cfg`` must then compute what the checkpoint's
    config did (``TRAJECTORY_FIELDS``), unless ``override``: the changed settings are then printed and used."""

    def __init__(self, cfg: TrainConfig, checkpoint: dict | None = None, override: bool = False):
        self.settings = dataclasses.asdict(cfg)  # as given ("auto" device...): what a resume starts from
        self.cfg = cfg = resolve(cfg)
        self.out_dir = Path(cfg.out_dir)
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        if checkpoint is None and self.checkpoint_path.exists():
            raise TrainingError(f"{self.checkpoint_path} exists: pass --resume to continue it, or choose another out_dir")
        if checkpoint is not None:
            self.check_continues(checkpoint["config"], override)
        self.train_tokens, self.valid_tokens = load_tokens(cfg.train_data, cfg), load_tokens(cfg.valid_data, cfg)
        check_sequential_fits(cfg, self.train_tokens, self.valid_tokens)
        # Saved with each checkpoint: `generate` refuses another tokenizer than the one the data were made with.
        self.tokenizer_sha256 = read_sidecar(cfg.train_data).get("tokenizer", {})
        self.dp = DataParallel(cfg.parallel, cfg.device, batch_sizes(cfg), cfg.bucket_size_mb, cfg.dist_timeout_minutes)
        try:
            self.setup(checkpoint)
        except BaseException:
            self.close()
            raise

    def check_continues(self, saved: dict, override: bool) -> None:
        changed = {name: f"{name} {saved[name]!r} -> {getattr(self.cfg, name)!r}" for name in TRAJECTORY_FIELDS
                   if saved[name] != getattr(self.cfg, name)}
        reshaped = [change for name, change in changed.items() if name in MODEL_FIELDS]
        if reshaped:
            raise TrainingError(f"{self.checkpoint_path} holds the weights of another model ({'; '.join(reshaped)}): "
                                f"a resume cannot change the model; start a new run in another out_dir")
        if changed and not override:
            raise TrainingError(f"--resume would change what {self.checkpoint_path} computes: "
                                f"{'; '.join(changed.values())}. Drop those settings to continue the run as it was, "
                                f"or pass --override to go on with them (the run then differs from an uninterrupted "
                                f"one)")
        if changed and (torchrun_env() or (0,))[0] == 0:  # one line from rank 0, not one per rank
            print(f"train: resuming with changed settings (--override): {'; '.join(changed.values())}",
                  file=sys.stderr)

    def setup(self, checkpoint: dict | None) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg)  # the unwrapped model: its state dict is the checkpoint's
        self.n_params = sum(p.numel() for p in self.model.parameters())
        if checkpoint is not None:
            self.model.load_state_dict(checkpoint["model"])  # whole weights, before a wrapper shards them
        # kernels lm_head: the wrappers hold the model and its loss as one module (the head applied chunk by chunk in
        # the loss, the logits never kept), so that FSDP gathers the head's weight for the loss too.
        self.fused_head = "lm_head" in kernel_set(cfg.kernels)
        trained: nn.Module = self.model
        if self.fused_head:
            from impl.kernels.linear_cross_entropy import LanguageModelLoss  # as build_model's kernels

            trained = LanguageModelLoss(self.model)
        self.wrapped = self.dp.wrap(trained)  # the DDP / FSDP wrappers broadcast rank 0's weights
        # kernels adamw: the same update, compiled (impl/kernels/adamw.py); the same state, so checkpoints load either way.
        optimizer_cls = AdamW
        if "adamw" in kernel_set(cfg.kernels):
            from impl.kernels.adamw import CompiledAdamW  # here, as build_model's kernels: Triton loads only if asked

            optimizer_cls = CompiledAdamW
        self.optimizer = self.dp.optimizer(self.wrapped.parameters(), optimizer_cls, lr=cfg.lr_max,
                                           betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay,
                                           eps_root=cfg.eps_root)
        self.sampler = np.random.default_rng(cfg.seed)  # the same on every rank: all draw the same global batches
        self.step, self.elapsed = 0, 0.0
        if checkpoint is not None:
            self.dp.load_optimizer_state(self.optimizer, checkpoint["optimizer"])
            self.step, self.elapsed = checkpoint["iteration"], checkpoint["elapsed_s"]
            self.sampler.bit_generator.state = checkpoint["sampler_state"]
            for group in self.optimizer.param_groups:  # the config's, not the checkpoint's (they differ on --override)
                group.update(betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay,
                             eps_root=cfg.eps_root)
        self.metrics: MetricsLog | None = None  # rank 0's; the other ranks write nothing

        def open_metrics() -> None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for name in OUTPUTS:  # this run owns out_dir now: what a killed one left half-written goes
                remove_stale_temps(self.out_dir / name)
            self.metrics = MetricsLog(self.out_dir / "metrics.jsonl",
                                      resume_from_step=self.step if checkpoint is not None else None)

        self.dp.on_rank_0(open_metrics, TrainingError)
        # Model and loss compiled together: the fp32 logits of the loss never have to be materialized. kernels
        # cudagraphs: reduce-overhead replays the compiled forward and backward as CUDA graphs, for a step bound by
        # the CPU launching its kernels (the 17M model's on an H200: bench/results/h200-lm-step-levers.md).
        self.cuda_graphs = "cudagraphs" in kernel_set(cfg.kernels)
        self.loss = (torch.compile(self.model_loss, mode="reduce-overhead" if self.cuda_graphs else "default")
                     if cfg.compile else self.model_loss)
        self.autocast = (torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16)
                         if cfg.precision == "bf16" else contextlib.nullcontext())

    def close(self) -> None:
        """Leave the process group (if this run made one)."""
        self.dp.close()

    def save(self) -> None:
        """The single-process checkpoint whatever the mode: gathered from the ranks, written by rank 0."""
        model_state = self.dp.full_model_state(self.model, self.wrapped)  # on every rank: all check alike
        if not all(torch.isfinite(t).all() for t in model_state.values() if t.is_floating_point()):
            raise TrainingError(f"parameters are not finite at step {self.step}; stopped without saving ({self.kept()})")
        checkpoint = {"model": model_state, "optimizer": self.dp.full_optimizer_state(self.optimizer),
                      "iteration": self.step, "config": dataclasses.asdict(self.cfg), "settings": self.settings,
                      "tokenizer_sha256": self.tokenizer_sha256,
                      "sampler_state": self.sampler.bit_generator.state, "elapsed_s": self.elapsed}

        def write() -> None:
            try:
                with atomic_write(self.checkpoint_path) as file:
                    torch.save(checkpoint, file)
            except OSError as error:
                raise TrainingError(f"could not write the checkpoint at step {self.step} ({error}); "
                                    f"{self.kept()}") from error

        self.dp.on_rank_0(write, TrainingError)

    def kept(self) -> str:
        if self.checkpoint_path.exists():
            return (f"the last good checkpoint {self.checkpoint_path} (step "
                    f"{load_run_checkpoint(self.checkpoint_path)['iteration']}) is intact")
        return "no checkpoint was written yet"

    def lr(self, step: int) -> float:
        return lr_cosine_schedule(step, self.cfg.lr_max, self.cfg.lr_min, self.cfg.warmup_steps, self.cfg.max_steps,
                                  initial_learning_rate=self.cfg.lr_init)

    def batch(self, tokens: np.ndarray, rng: np.random.Generator, index: int,
              batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's rows of global batch number ``index``, which every rank makes alike: (B, m) -> (B / world_size,
        m). Random windows from ``rng``, or with data_order sequential the batch's consecutive windows."""
        cfg = self.cfg
        if cfg.data_order == "sequential":
            x, y = sequential_batch(tokens, index, batch_size, cfg.context_length, cfg.device)
        else:
            x, y = get_batch(tokens, batch_size, cfg.context_length, cfg.device, rng)
        rows = self.dp.rows(batch_size)
        return x[rows], y[rows]

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.wrapped.eval()
        batches = np.random.default_rng(self.cfg.seed + 1)  # the same windows every time: comparable points
        total = torch.zeros((), device=self.cfg.device)
        for index in range(self.cfg.eval_batches):
            x, y = self.batch(self.valid_tokens, batches, index, eval_batch_size(self.cfg))
            if self.cuda_graphs:
                torch.compiler.cudagraph_mark_step_begin()
            with self.autocast:
                total += self.loss(x, y)
        self.wrapped.train()
        return self.dp.mean(total).item() / self.cfg.eval_batches  # equal rows per rank: the batch mean

    def model_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.wrapped(x, y) if self.fused_head else cross_entropy(self.wrapped(x), y)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step at the schedule's learning rate; returns (loss, grad norm) on the device."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.step)
        x, y = self.batch(self.train_tokens, self.sampler, self.step, cfg.batch_size)
        if self.cuda_graphs:  # the last step's graph outputs (loss, gradients) are consumed: their memory is reused
            torch.compiler.cudagraph_mark_step_begin()
        with self.autocast:
            loss = self.loss(x, y)  # the mean over this rank's rows
        loss.backward()
        self.dp.sync_gradients(self.wrapped)  # the mean over ranks: the whole batch's gradient
        grad_norm = self.dp.clip_gradients(self.wrapped.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        # A copy: the caller sums losses over the logging interval, and a graph's output is overwritten by its next
        # replay.
        return loss.detach().clone(), grad_norm

    def run(self) -> dict:
        cfg = self.cfg
        tokens_per_step = cfg.batch_size * cfg.context_length
        interval_loss = torch.zeros((), device=cfg.device)
        interval_steps, interval_start = 0, time.perf_counter()
        start, start_elapsed = time.perf_counter(), self.elapsed
        last_row = self.metrics.rows[-1] if self.metrics and self.metrics.rows else {}
        stopped_early = False
        # The bar is closed (its line ended) however the loop ends: an error then prints on a line of its own.
        with tqdm(total=cfg.max_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                  disable=not self.dp.is_main) as bar:
            while self.step < cfg.max_steps:
                loss, grad_norm = self.train_step()
                self.step += 1
                interval_loss += loss
                interval_steps += 1
                self.elapsed = start_elapsed + time.perf_counter() - start
                last = self.step == cfg.max_steps
                due = not (self.step % cfg.log_interval and self.step % cfg.eval_interval
                           and self.step % cfg.checkpoint_interval)
                # Ranks must take the same branch (the next one communicates): under torchrun rank 0's clock decides,
                # read at logging steps only, where the ranks meet anyway.
                out_of_time = cfg.max_minutes > 0 and (due or self.dp.world_size == 1) \
                    and self.dp.rank_0_decides(self.elapsed >= cfg.max_minutes * 60)
                if not (due or last or out_of_time):
                    continue
                # A host sync only here: a non-finite loss anywhere in the interval is caught before any checkpoint.
                mean_loss = self.dp.mean(interval_loss).item() / interval_steps  # every rank the same value
                if not math.isfinite(mean_loss):
                    raise TrainingError(f"train loss is {mean_loss} in steps {self.step - interval_steps + 1}..{self.step}; "
                                        f"stopped without saving ({self.kept()}). Lower lr_max or check the data.")
                seconds = time.perf_counter() - interval_start
                row = {"step": self.step, "tokens": self.step * tokens_per_step, "wall_s": round(self.elapsed, 3),
                       "lr": self.lr(self.step - 1), "train_loss": mean_loss, "grad_norm": grad_norm.item(),
                       "tokens_per_s": round(interval_steps * tokens_per_step / seconds, 1)}
                if self.step % cfg.eval_interval == 0 or last or out_of_time:
                    row["val_loss"] = self.validation_loss()
                    row["val_perplexity"] = math.exp(min(row["val_loss"], 700.0))
                last_row = row
                self.dp.on_rank_0(lambda: self.metrics.append(row), TrainingError)
                bar.set_postfix(loss=f"{mean_loss:.3f}", **({"val": f"{row['val_loss']:.3f}"} if "val_loss" in row else {}))
                bar.update(interval_steps)
                if self.step % cfg.checkpoint_interval == 0 or last or out_of_time:
                    self.save()
                if "val_loss" in row:
                    self.dp.on_rank_0(lambda: plot_loss_curves(self.metrics.rows, self.out_dir / "loss.png", self.title()),
                                      TrainingError)
                interval_loss.zero_()
                interval_steps, interval_start = 0, time.perf_counter()
                if out_of_time and not last:
                    stopped_early = True
                    break
        summary = {"step": self.step, "stopped_early": stopped_early, "wall_s": round(self.elapsed, 1),
                   **{k: v for k, v in last_row.items() if k.endswith("loss") or k == "val_perplexity"},
                   "val_unigram_entropy": unigram_entropy(self.valid_tokens, cfg.vocab_size)}
        self.dp.on_rank_0(lambda: atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n"),
                          TrainingError)
        return summary

    def title(self) -> str:
        c = self.cfg
        ranks = f", {self.dp.world_size} ranks {c.parallel}" if c.parallel != "none" else ""
        return (f"{self.n_params / 1e6:.1f}M params (d={c.d_model}, L={c.num_layers}, ctx={c.context_length}), "
                f"batch {c.batch_size}, lr {c.lr_max:g}, {c.device} {c.precision}{ranks}")
