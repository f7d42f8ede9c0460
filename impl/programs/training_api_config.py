"""The training API's request (A3 §3.2): the body of ``POST /submit``, its consistency rules, and the ``train``
program's settings that run it (impl/programs/training_api.py serves it).

Field types and ranges are pydantic's (strict: no "128" for 128, no true for 1, no NaN or Infinity; unknown keys
refused), so a malformed body is a 422 naming the field. ``rule_errors`` then checks the rules between fields, each
error naming its field:

- the handout's: ``hidden_size == num_attention_heads * head_dim``; ``num_attention_heads`` divisible by
  ``num_key_value_heads``; ``total_train_tokens`` divisible by ``seq_len * train_batch_size``;
- this server's: ``n_evals`` divides the number of steps (each chunk is a whole number of steps: the trainer
  evaluates and checkpoints every ``steps / n_evals`` steps), ``vocab_size`` covers the data's tokenizer, the head
  dimension is even (RoPE rotates pairs), the model has at most ``max_parameters`` parameters, the training tokens
  exist (no token is used twice: ``total_train_tokens`` + 1 of the server's training split), ``init_value`` is at
  most ``peak_value``;
- what the kit's model cannot honour yet, refused rather than silently ignored: ``attention_bias``.

``num_key_value_heads`` (grouped-query attention), ``head_dim``, ``tie_word_embeddings`` and ``rms_norm_eps``
become the train program's ``num_kv_heads``, ``head_dim``, ``tie_embeddings`` and ``norm_eps`` (impl.nn.TransformerLM's
options); ``eps_root`` and ``init_value`` its ``eps_root`` (impl.train.AdamW's) and ``lr_init`` (the warm-up's start).

The data order is the handout's: fixed, the same for every configuration and seed, no token seen twice (the train
program's ``data_order = "sequential"``: step s trains on the training split's windows s·B … s·B + B − 1), and every
evaluation reads the validation split's first ``n_validation_tokens`` in batches of ``val_batch_size`` (the train
program's ``eval_batch_size``); ``model_seed`` seeds only the initialization.

Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from impl.programs.config import TrainConfig, check_config
from impl.programs.settings import ConfigError

# strict: JSON's types as they are; extra="forbid": a misspelt key is an error, not a default silently taken.
STRICT = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
HANDOUT_MAX_RUNTIME_SECONDS = 12 * 3600  # "between 1 second and 12 hours"


class ArchitectureConfig(BaseModel):
    model_config = STRICT
    attention_bias: bool
    head_dim: int = Field(ge=1, le=4096)
    hidden_size: int = Field(ge=1, le=65536)
    intermediate_size: int = Field(ge=1, le=262144)
    num_attention_heads: int = Field(ge=1, le=1024)
    num_hidden_layers: int = Field(ge=1, le=1024)
    num_key_value_heads: int = Field(ge=1, le=1024)
    rms_norm_eps: float = Field(gt=0, lt=1)
    rope_theta: float = Field(gt=1, le=1e12)
    tie_word_embeddings: bool
    dtype: Literal["float32", "bfloat16"]
    vocab_size: int = Field(ge=1, le=1 << 20)


class LRScheduler(BaseModel):
    model_config = STRICT
    peak_value: float = Field(gt=0, le=10)
    final_lr_frac: float = Field(ge=0, le=1)
    warmup_frac: float = Field(ge=0, le=1)
    init_value: float = Field(ge=0, le=10)


class OptimizerConfig(BaseModel):
    """AdamW with a warm-up and cosine schedule (the handout's example); the kit's trainer has no SGD."""
    model_config = STRICT
    lr_scheduler: LRScheduler
    weight_decay: float = Field(ge=0, le=10)
    beta1: float = Field(ge=0, lt=1)
    beta2: float = Field(ge=0, lt=1)
    eps: float = Field(gt=0, le=1)
    eps_root: float = Field(ge=0, le=1)
    grad_clip_norm: float = Field(gt=0, le=1e6)


class TrainingConfig(BaseModel):
    """The body of POST /submit (A3 §3.2)."""
    model_config = STRICT
    architecture_config: ArchitectureConfig
    optimizer_config: OptimizerConfig
    train_batch_size: int = Field(ge=1, le=65536)
    val_batch_size: int = Field(ge=1, le=65536)
    n_evals: int = Field(ge=1, le=10000)
    total_train_tokens: int = Field(ge=1, le=10**13)
    max_runtime_seconds: float = Field(ge=1, le=HANDOUT_MAX_RUNTIME_SECONDS)
    model_seed: int = Field(ge=0, le=2**63 - 1)  # SQLite's and TOML's integers are 64-bit signed


class FinalSubmission(BaseModel):
    model_config = STRICT
    training_config: TrainingConfig
    predicted_final_loss: float = Field(gt=0, le=1e3)


@dataclass(frozen=True)
class Limits:
    """What this server fixes for every experiment (the handout: seq_len 512, 2^18 validation tokens)."""
    seq_len: int = 512
    n_validation_tokens: int = 1 << 18
    data_vocab_size: int = 32_000  # the tokenizer of the server's data: every id must be below vocab_size
    max_parameters: int = 2_000_000_000
    train_tokens: int = 500 * 10**9  # the server's training split (the handout's DCLM: "up to 500B tokens")
    valid_tokens: int = 1 << 20  # the server's validation split


def parameter_count(arch: ArchitectureConfig) -> int:
    """Parameters of the kit's TransformerLM of this shape: the embedding, per layer attention (q and output over
    heads · head_dim, k and v over kv_heads · head_dim), SwiGLU (3 d d_ff) and two RMSNorm gains, the final RMSNorm,
    the LM head unless tied to the embedding."""
    d, layers = arch.hidden_size, arch.num_hidden_layers
    attention = 2 * d * arch.head_dim * (arch.num_attention_heads + arch.num_key_value_heads)
    embeddings = (1 if arch.tie_word_embeddings else 2) * arch.vocab_size * d
    return embeddings + layers * (attention + 3 * d * arch.intermediate_size + 2 * d) + d


def steps_of(config: TrainingConfig, limits: Limits) -> int:
    return config.total_train_tokens // (limits.seq_len * config.train_batch_size)


def rule_errors(config: TrainingConfig, limits: Limits) -> list[tuple[tuple[str, ...], str]]:
    """Every rule between fields that ``config`` breaks: (location of the field, message naming it)."""
    arch, opt = config.architecture_config, config.optimizer_config
    a, o = ("architecture_config",), ("optimizer_config",)
    errors = []

    def check(holds: bool, loc: tuple[str, ...], message: str) -> None:
        if not holds:
            errors.append((loc, f"{'.'.join(loc)}: {message}"))

    check(arch.hidden_size == arch.num_attention_heads * arch.head_dim, (*a, "hidden_size"),
          f"{arch.hidden_size} must equal num_attention_heads * head_dim = {arch.num_attention_heads} * "
          f"{arch.head_dim} = {arch.num_attention_heads * arch.head_dim}")
    check(arch.num_attention_heads % arch.num_key_value_heads == 0, (*a, "num_key_value_heads"),
          f"{arch.num_key_value_heads} must divide num_attention_heads={arch.num_attention_heads}")
    tokens_per_step = limits.seq_len * config.train_batch_size
    check(config.total_train_tokens % tokens_per_step == 0, ("total_train_tokens",),
          f"{config.total_train_tokens} must be divisible by seq_len * train_batch_size = {limits.seq_len} * "
          f"{config.train_batch_size} = {tokens_per_step}")
    steps = steps_of(config, limits)
    check(steps >= config.n_evals and steps % config.n_evals == 0, ("n_evals",),
          f"{config.n_evals} must divide the number of steps, total_train_tokens / (seq_len * train_batch_size) = "
          f"{steps} (each chunk is a whole number of steps)")
    check(arch.vocab_size >= limits.data_vocab_size, (*a, "vocab_size"),
          f"{arch.vocab_size} is smaller than this server's tokenizer ({limits.data_vocab_size} tokens)")
    check(arch.head_dim % 2 == 0, (*a, "head_dim"), f"{arch.head_dim} must be even (RoPE rotates pairs)")
    n_params = parameter_count(arch)
    check(n_params <= limits.max_parameters, (*a,),
          f"the model has {n_params:,} parameters, more than this server's limit of {limits.max_parameters:,}")
    check(config.total_train_tokens + 1 <= limits.train_tokens, ("total_train_tokens",),
          f"{config.total_train_tokens:,} (+1 for the last target) is more than this server's training split holds "
          f"({limits.train_tokens:,} tokens; no token is used twice)")
    tokens_per_evaluation_batch = config.val_batch_size * limits.seq_len
    validation_tokens = eval_batches(config, limits) * tokens_per_evaluation_batch
    check(validation_tokens + 1 <= limits.valid_tokens, ("val_batch_size",),
          f"{config.val_batch_size}: the {limits.n_validation_tokens:,} validation tokens are read in whole batches "
          f"of val_batch_size * seq_len = {tokens_per_evaluation_batch:,}, {validation_tokens:,} in all, more than "
          f"this server's validation split holds ({limits.valid_tokens:,})")
    check(opt.lr_scheduler.init_value <= opt.lr_scheduler.peak_value, (*o, "lr_scheduler", "init_value"),
          f"{opt.lr_scheduler.init_value:g} must be at most peak_value={opt.lr_scheduler.peak_value:g} (the warm-up "
          f"rises from it)")
    check(not arch.attention_bias, (*a, "attention_bias"),
          "true: attention projections with a bias are not supported by the kit's model yet")
    if not errors:  # the rules above imply the train program's own; checked anyway, so a run never fails on them
        try:
            check_config(TrainConfig(**train_settings(config, limits, "", "", "")))
        except ConfigError as error:
            errors.append((("body",), f"the train program refuses these settings: {error}"))
    return errors


def train_settings(config: TrainingConfig, limits: Limits, train_data: str, valid_data: str, out_dir: str) -> dict:
    """The ``train`` program's settings (TrainConfig fields) of the experiment: chunks of ``steps / n_evals`` steps,
    each ended by a validation loss and a checkpoint; the trainer itself stops at ``max_runtime_seconds`` of its
    own clock (which excludes start-up), with a checkpoint."""
    arch, opt, schedule = config.architecture_config, config.optimizer_config, config.optimizer_config.lr_scheduler
    steps = steps_of(config, limits)
    chunk = max(1, steps // config.n_evals)
    return dict(
        train_data=train_data, valid_data=valid_data, out_dir=out_dir,
        vocab_size=arch.vocab_size, context_length=limits.seq_len, d_model=arch.hidden_size,
        num_layers=arch.num_hidden_layers, num_heads=arch.num_attention_heads, d_ff=arch.intermediate_size,
        rope_theta=float(arch.rope_theta), num_kv_heads=arch.num_key_value_heads, head_dim=arch.head_dim,
        tie_embeddings=arch.tie_word_embeddings, norm_eps=arch.rms_norm_eps,
        max_steps=steps, batch_size=config.train_batch_size, lr_max=schedule.peak_value,
        lr_min=schedule.peak_value * schedule.final_lr_frac, warmup_steps=round(schedule.warmup_frac * steps),
        lr_init=schedule.init_value, weight_decay=opt.weight_decay, beta1=opt.beta1, beta2=opt.beta2, eps=opt.eps,
        eps_root=opt.eps_root, grad_clip=opt.grad_clip_norm, data_order="sequential",
        log_interval=chunk, eval_interval=chunk, checkpoint_interval=chunk,
        eval_batches=eval_batches(config, limits), eval_batch_size=config.val_batch_size,
        max_minutes=config.max_runtime_seconds / 60, seed=config.model_seed,
        precision="bf16" if arch.dtype == "bfloat16" else "fp32",
    )


def eval_batches(config: TrainingConfig, limits: Limits) -> int:
    """The validation split's first n_validation_tokens, in whole batches of val_batch_size (rounded up)."""
    return max(1, math.ceil(limits.n_validation_tokens / (config.val_batch_size * limits.seq_len)))


def canonical(config: TrainingConfig) -> str:
    """One JSON text per configuration, whatever the key order or spelling of the numbers in the request."""
    return json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


def duplicate_key(config: TrainingConfig) -> str:
    """What makes two submissions "the same training configuration" (409): every field but max_runtime_seconds,
    which changes how long the run may take, not what it computes."""
    fields = config.model_dump(mode="json", exclude={"max_runtime_seconds"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def example_config(limits: Limits, **changes) -> dict:
    """A configuration this server accepts: the handout's example with a small model and a token count that fits
    ``limits``; ``changes`` replace top-level fields."""
    tokens_per_step = limits.seq_len * 8
    config = {
        "architecture_config": {
            "attention_bias": False, "head_dim": 16, "hidden_size": 64, "intermediate_size": 192,
            "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 4,
            "rms_norm_eps": 1e-6, "rope_theta": 10_000, "tie_word_embeddings": False,
            "dtype": "float32", "vocab_size": limits.data_vocab_size,
        },
        "optimizer_config": {
            "lr_scheduler": {"peak_value": 3e-3, "final_lr_frac": 0.1, "warmup_frac": 0.05, "init_value": 0.0},
            "weight_decay": 1e-2, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "eps_root": 1e-8, "grad_clip_norm": 1.0,
        },
        "train_batch_size": 8, "val_batch_size": 8, "n_evals": 4, "total_train_tokens": 40 * tokens_per_step,
        "max_runtime_seconds": 60.0, "model_seed": 0,
    }
    return config | changes
