"""The run configuration of the programs and the model it describes: ``TrainConfig`` and ``build_model``.

``train`` reads it from a TOML file and flags (each field's help text is its ``--flag``'s) and saves it in every
checkpoint; ``generate`` rebuilds the model from the checkpoint's copy; the benchmarks build the same models from
it. ``check_config`` refuses a wrong type or value before any work, naming the field; ``TRAJECTORY_FIELDS`` are
those a resumed run may not change without changing what it computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from impl.programs.settings import ConfigError, check_field_types, check_rules, setting

if TYPE_CHECKING:
    from impl.nn import TransformerLM

# The `kernels` setting: none, all (the fused kernels), or some of KERNELS, comma-separated. cudagraphs is named on
# its own: it needs compile and a single process, which `all` alone does not ask for.
FUSED_KERNELS = ("attention", "rmsnorm", "adamw", "lm_head")
KERNELS = (*FUSED_KERNELS, "cudagraphs")
PRECISION_CHOICES = ("auto", "fp32", "bf16")
PARALLEL_CHOICES = ("none", "ddp", "ddp_bucketed", "sharded_optimizer", "fsdp")
DATA_ORDERS = ("random", "sequential")


@dataclass
class TrainConfig:
    # Data: uint16 .npy token arrays from `tokenize` (a sidecar .json beside them gives vocab_size).
    train_data: str = setting("runs/prose_train.npy", "training tokens: a uint16 .npy written by `tokenize`")
    valid_data: str = setting("runs/prose_valid.npy", "validation tokens, the same kind of file")
    tokenizer_dir: str = setting("", "the tokenizer `generate` decodes with ('': the one the train data's sidecar "
                                     "names)")
    # Model (A1 §3; defaults: the handout's TinyStories configuration, ~17M non-embedding parameters).
    vocab_size: int = setting(0, "vocabulary size (0: from the train data's sidecar .json)")
    context_length: int = setting(256, "tokens per training sequence, and the model's longest input")
    d_model: int = setting(512, "model width")
    num_layers: int = setting(4, "Transformer blocks")
    num_heads: int = setting(16, "attention heads (must divide d_model unless head_dim is given; the head width "
                                 "even for RoPE)")
    d_ff: int = setting(1344, "SwiGLU inner width")
    rope_theta: float = setting(10000.0, "RoPE base")
    # The A3 training API's model options (Llama's); the defaults are the course's model.
    num_kv_heads: int = setting(0, "key/value heads, grouped-query attention (0: num_heads; must divide num_heads)")
    head_dim: int = setting(0, "width of each attention head (0: d_model / num_heads)")
    tie_embeddings: bool = setting(False, "the LM head shares the token embedding's weight")
    norm_eps: float = setting(1e-5, "the RMSNorms' epsilon (the API's rms_norm_eps)")
    # Optimizer and schedule (A1 §4): cosine from lr_max to lr_min over max_steps after warmup_steps.
    max_steps: int = setting(5000, "optimizer steps (the cosine schedule ends here)")
    batch_size: int = setting(32, "sequences per step, the global batch: under torchrun each of N ranks trains on "
                                  "batch_size / N of them")
    lr_max: float = setting(1e-3, "peak learning rate, reached after warmup_steps")
    lr_min: float = setting(1e-4, "learning rate at max_steps")
    warmup_steps: int = setting(200, "linear warm-up steps")
    lr_init: float = setting(0.0, "learning rate at step 0, where the warm-up starts (the API's init_value)")
    weight_decay: float = setting(0.1, "AdamW's decoupled weight decay")
    beta1: float = setting(0.9, "AdamW's first-moment decay")
    beta2: float = setting(0.95, "AdamW's second-moment decay")
    eps: float = setting(1e-8, "AdamW's epsilon")
    eps_root: float = setting(0.0, "AdamW's epsilon under the square root, as optax's (the API's eps_root)")
    grad_clip: float = setting(1.0, "largest gradient L2 norm (clipped above)")
    data_order: str = setting("random", "random: each batch's windows drawn anywhere in the data, by seed (A1's "
                                        "get_batch); sequential: consecutive windows from the start, no token seen "
                                        "twice, the same for every seed (the A3 training API's fixed order)",
                              DATA_ORDERS)
    # Bookkeeping.
    log_interval: int = setting(10, "steps between metrics rows (mean train loss over the interval)")
    eval_interval: int = setting(250, "steps between validation losses (and at the last step)")
    eval_batches: int = setting(20, "validation batches, the same ones at every evaluation")
    eval_batch_size: int = setting(0, "sequences per validation batch (0: batch_size); under torchrun split over "
                                      "the ranks as batch_size is")
    checkpoint_interval: int = setting(1000, "steps between checkpoints (and at the last step)")
    max_minutes: float = setting(0.0, "> 0: stop with a checkpoint once this much wall-clock has passed")
    out_dir: str = setting("runs/lm", "directory of the checkpoint, metrics.jsonl, loss.png and summary.json")
    seed: int = setting(0, "seed of the initialization, and of the batch sampler where data_order is random")
    # Execution.
    device: str = setting("auto", "cpu, cuda or cuda:N (auto: cuda when available, else cpu)")
    precision: str = setting("auto", "fp32 or bf16 autocast with fp32 master weights (auto: bf16 on cuda, fp32 "
                                     "on cpu)", PRECISION_CHOICES)
    compile: bool = setting(False, "torch.compile the model and the loss")
    kernels: str = setting("none", "fused kernels: none, all (the first four), or a comma-separated list of "
                                   "attention (Triton FlashAttention-2), rmsnorm (Triton, CUDA only), adamw (the "
                                   "update compiled), lm_head (the LM head and the loss in chunks, no logits kept), "
                                   "cudagraphs (the compiled forward and backward replayed as CUDA graphs; compile, "
                                   "CUDA and parallel none only)")
    # Data parallel (A2 §5-§7; impl/programs/launch.py). Anything but none runs under torchrun, one process per device.
    parallel: str = setting("none", "data parallelism under torchrun (sharded_optimizer: with bucketed DDP)",
                            PARALLEL_CHOICES)
    bucket_size_mb: float = setting(25.0, "ddp_bucketed, sharded_optimizer: the largest gradient bucket (MiB)")
    dist_timeout_minutes: float = setting(10.0, "a collective waiting longer (a rank lost) ends the job instead of "
                                                "hanging")


MODEL_FIELDS = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff", "rope_theta",
                "num_kv_heads", "head_dim", "tie_embeddings")
# What a step computes: a resumed run that changed one of these would no longer continue the same run. The rest
# (where it runs, how often it logs, evaluates and saves) may change on a resume.
TRAJECTORY_FIELDS = (*MODEL_FIELDS, "norm_eps", "train_data", "max_steps", "batch_size", "lr_max", "lr_min",
                     "warmup_steps", "lr_init", "weight_decay", "beta1", "beta2", "eps", "eps_root", "grad_clip",
                     "data_order", "seed", "precision")
# How the processes were launched: a resume takes them from its own command line (torchrun and --parallel, or a
# plain process), never from the checkpoint.
LAUNCH_FIELDS = ("parallel", "bucket_size_mb", "dist_timeout_minutes")
POSITIVE_FIELDS = ("context_length", "d_model", "num_layers", "num_heads", "d_ff", "max_steps", "batch_size",
                   "log_interval", "eval_interval", "eval_batches", "checkpoint_interval")


def kernel_set(kernels: str) -> frozenset[str]:
    """The kernels a ``kernels`` setting names; ValueError for a name not in KERNELS."""
    if kernels in ("none", "all"):
        return frozenset(FUSED_KERNELS if kernels == "all" else ())
    names = frozenset(name.strip() for name in kernels.split(","))
    unknown = sorted(names - set(KERNELS))
    if unknown:
        raise ValueError(f"kernels={kernels!r}: unknown {', '.join(map(repr, unknown))}; give none, all, or a "
                         f"comma-separated list of {', '.join(KERNELS)}")
    return names


def check_config(cfg: TrainConfig) -> None:
    """Types, ranges and choices of every field, and the rules between fields: before any work starts."""
    check_field_types(cfg)
    try:
        kernel_set(cfg.kernels)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    not_positive = [f"{name}={getattr(cfg, name)}" for name in POSITIVE_FIELDS if getattr(cfg, name) < 1]
    not_positive += [f"{name}={getattr(cfg, name)}" for name in ("lr_max", "eps", "grad_clip", "rope_theta", "norm_eps",
                                                                "bucket_size_mb", "dist_timeout_minutes")
                     if getattr(cfg, name) <= 0]
    if not_positive:
        raise ConfigError(f"these settings must be > 0: {', '.join(not_positive)}")
    check_rules([
        (0 <= cfg.lr_min <= cfg.lr_max, f"lr_min={cfg.lr_min} must lie in [0, lr_max={cfg.lr_max}]"),
        (0 <= cfg.warmup_steps <= cfg.max_steps, f"warmup_steps={cfg.warmup_steps} must lie in [0, max_steps="
                                                 f"{cfg.max_steps}]"),
        (cfg.vocab_size >= 0, f"vocab_size={cfg.vocab_size} must be >= 0 (0: from the data's sidecar)"),
        (cfg.eval_batch_size >= 0, f"eval_batch_size={cfg.eval_batch_size} must be >= 0 (0: batch_size)"),
        (cfg.weight_decay >= 0, f"weight_decay={cfg.weight_decay} must be >= 0"),
        (cfg.eps_root >= 0, f"eps_root={cfg.eps_root} must be >= 0"),
        (0 <= cfg.lr_init <= cfg.lr_max, f"lr_init={cfg.lr_init} must lie in [0, lr_max={cfg.lr_max}]"),
        (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1, f"beta1={cfg.beta1} and beta2={cfg.beta2} must lie in [0, 1)"),
        (cfg.max_minutes >= 0, f"max_minutes={cfg.max_minutes} must be >= 0 (0: no limit)"),
        (cfg.num_kv_heads >= 0 and cfg.head_dim >= 0, f"num_kv_heads={cfg.num_kv_heads} and head_dim={cfg.head_dim} "
                                                      f"must be >= 0 (0: the default)"),
        (cfg.num_kv_heads < 1 or cfg.num_heads % cfg.num_kv_heads == 0,
         f"num_kv_heads={cfg.num_kv_heads} does not divide num_heads={cfg.num_heads}"),
    ])
    if cfg.head_dim == 0:
        check_rules([
            (cfg.d_model % cfg.num_heads == 0, f"num_heads={cfg.num_heads} does not divide d_model={cfg.d_model} "
                                               f"(or give head_dim)"),
            ((cfg.d_model // cfg.num_heads) % 2 == 0, f"the head size d_model / num_heads = "
                                                      f"{cfg.d_model // cfg.num_heads} must be even (RoPE rotates pairs)"),
        ])
    else:
        check_rules([(cfg.head_dim % 2 == 0, f"head_dim={cfg.head_dim} must be even (RoPE rotates pairs)")])


def eval_batch_size(cfg: TrainConfig) -> int:
    return cfg.eval_batch_size or cfg.batch_size


def batch_sizes(cfg: TrainConfig) -> dict[str, int]:
    """The global batch sizes the ranks split (launch.check_launch, DataParallel)."""
    return {"batch_size": cfg.batch_size, "eval_batch_size": eval_batch_size(cfg)}


def resolve_device(device: str) -> str:
    """``device`` with "auto" made cuda or cpu; a device this machine does not have is a ConfigError, before
    anything is allocated on it."""
    import torch  # here, not above: the config is read (and --help shown) without importing torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r} is not a device name (cpu, cuda, cuda:N or auto)") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}, but torch finds no CUDA GPU on this machine: use --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def build_model(cfg: TrainConfig) -> TransformerLM:
    # Imported here (as torch in resolve_device): see above.
    from impl.kernels.fast_lm import use_kernels
    from impl.nn import TransformerLM

    model = TransformerLM(cfg.vocab_size, cfg.context_length, cfg.d_model, cfg.num_layers, cfg.num_heads, cfg.d_ff,
                          cfg.rope_theta, num_kv_heads=cfg.num_kv_heads or None, head_dim=cfg.head_dim or None,
                          tie_embeddings=cfg.tie_embeddings, norm_eps=cfg.norm_eps, device=cfg.device)
    kernels = kernel_set(cfg.kernels)
    return use_kernels(model, attention="attention" in kernels, rmsnorm="rmsnorm" in kernels)
