"""The run configuration of the programs and the model it describes: ``TrainConfig`` and ``build_model``.

``train`` reads it from a TOML file and flags and saves it in every checkpoint; ``generate`` rebuilds
the model from the checkpoint's copy; the benchmarks build the same models from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from impl.kernels.fast_lm import use_kernels
from impl.nn import TransformerLM


@dataclass
class TrainConfig:
    # Data: uint16 .npy token arrays from `tokenize` (a sidecar .json beside them gives vocab_size).
    train_data: str = "runs/prose_train.npy"
    valid_data: str = "runs/prose_valid.npy"
    tokenizer_dir: str = ""  # "": the one the train data's sidecar names (`generate` reads it from the checkpoint)
    # Model (A1 §3; defaults: the handout's TinyStories configuration, ~17M non-embedding parameters).
    vocab_size: int = 0  # 0: read from the train data's sidecar .json
    context_length: int = 256
    d_model: int = 512
    num_layers: int = 4
    num_heads: int = 16
    d_ff: int = 1344
    rope_theta: float = 10000.0
    # Optimizer and schedule (A1 §4): cosine from lr_max to lr_min over max_steps after warmup_steps.
    max_steps: int = 5000
    batch_size: int = 32  # the global batch: under torchrun each of N ranks trains on batch_size / N of its rows
    lr_max: float = 1e-3
    lr_min: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    # Bookkeeping.
    log_interval: int = 10  # steps between metrics rows (mean train loss over the interval)
    eval_interval: int = 250  # steps between validation losses (and at the last step)
    eval_batches: int = 20  # validation batches, the same ones at every evaluation
    checkpoint_interval: int = 1000  # steps between checkpoints (and at the last step)
    max_minutes: float = 0.0  # > 0: stop (with a checkpoint) once this much wall-clock has passed
    out_dir: str = "runs/lm"
    seed: int = 0
    # Execution.
    device: str = "auto"  # auto: cuda when available, else cpu
    precision: str = "auto"  # fp32 | bf16 (autocast; fp32 master weights); auto: bf16 on cuda, fp32 on cpu
    compile: bool = False  # torch.compile the model
    kernels: str = "none"  # none | attention | rmsnorm | all: Triton FlashAttention-2 / fused RMSNorm (CUDA)
    # Data parallel (A2 §5-§7; impl/programs/launch.py). Anything but none runs under torchrun, one process per device.
    parallel: str = "none"  # none | ddp | ddp_bucketed | sharded_optimizer (+ bucketed DDP) | fsdp
    bucket_size_mb: float = 25.0  # ddp_bucketed, sharded_optimizer: the largest gradient bucket (MiB)
    dist_timeout_minutes: float = 10.0  # a collective waiting longer (a rank lost) ends the job instead of hanging


KERNEL_CHOICES = ("none", "attention", "rmsnorm", "all")


def build_model(cfg: TrainConfig) -> TransformerLM:
    model = TransformerLM(cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.d_ff,
                          cfg.rope_theta, device=cfg.device)
    return use_kernels(model, attention=cfg.kernels in ("attention", "all"), rmsnorm=cfg.kernels in ("rmsnorm", "all"))


MODEL_FIELDS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "rope_theta")
