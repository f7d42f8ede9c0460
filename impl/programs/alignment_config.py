"""Settings of the alignment programs (``sft``, ``grpo``, ``evaluate``): one dataclass each, sharing the fields of
``PolicyRunConfig``. The defaults are the small CPU runs (the kit's tiny policy on the arithmetic task, a minute
or two); the GPU runs on SmolLM2 and GSM8K set them in impl/programs/configs/*.toml. The GRPO names and meanings
are the handout's (A5 §7.4)."""

from __future__ import annotations

from dataclasses import dataclass

from impl.programs.alignment_tasks import PROMPTS, TASKS
from impl.programs.policies import BACKENDS, ROLLOUT_CACHES, ROLLOUT_DTYPES
from impl.programs.settings import ConfigError, check_field_types, check_rules, setting

# impl.alignment.grpo.LOSS_TYPES, spelled out so that reading the settings (and --help) does not import torch;
# tests/programs/test_alignment_programs.py checks that the two agree.
LOSS_TYPES = ("no_baseline", "reinforce_with_baseline", "grpo_clip")
OPTIMIZERS = ("adamw", "rmsprop")


@dataclass
class EvaluateConfig:
    policy: str = setting("kit-tiny", "kit-tiny, smollm2, a Hugging Face model directory, or an sft / grpo / dpo out_dir")
    task: str = setting("arithmetic", "problems: arithmetic (a+b=) or gsm8k", TASKS)
    prompt: str = setting("bare", "prompt template: bare (the question), r1_zero, question_only or alpaca", PROMPTS)
    backend: str = setting("auto", "rollout backend (auto: kit for kit-tiny, else vllm where installed, else "
                                   "transformers)", BACKENDS)
    rollout_dtype: str = setting("float32", "the rollout backend's copy of the weights (transformers, vllm); the "
                                            "policy trains in float32 either way", ROLLOUT_DTYPES)
    rollout_cache: str = setting("dynamic", "transformers backend: static keeps a fixed-size KV cache, compiled with "
                                            "CUDA graphs on a GPU", ROLLOUT_CACHES)
    max_tokens: int = setting(32, "new tokens per completion")
    eval_examples: int = setting(100, "test problems evaluated (the first ones; 0: all)")
    eval_temperature: float = setting(0.0, "sampling temperature of the evaluation (0: greedy)")
    device: str = setting("auto", "cpu, cuda or cuda:N (auto: cuda when available)")
    seed: int = setting(0, "seed of the initialisation and of sampling")
    out_dir: str = setting("runs/evaluate", "where results.json, the completions and the plots go")
    reward_timeout_s: float = setting(10.0, "seconds one response may take to score (math-verify); then reward 0")


@dataclass
class PolicyRunConfig(EvaluateConfig):
    steps: int = setting(40, "optimizer steps")
    optimizer: str = setting("adamw", "adamw (A5 §7.4: no weight decay, betas 0.9 / 0.95) or rmsprop (the "
                                      "supplement's for DPO, §5.4, as the DPO paper)", OPTIMIZERS)
    learning_rate: float = setting(2e-3, "the optimizer's learning rate (constant)")
    max_grad_norm: float = setting(1.0, "gradient clipping (L2 norm)")
    gradient_accumulation_steps: int = setting(1, "microbatches per optimizer step")
    eval_interval: int = setting(10, "steps between evaluations (and at the first and last step)")
    eval_first: bool = setting(True, "evaluate before the first step (the summary's 'before'); false where that "
                                     "policy's evaluation is known already")
    checkpoint_interval: int = setting(10, "steps between checkpoints (and at the last step)")
    max_minutes: float = setting(0.0, "> 0: stop with a checkpoint once this process has run this long (--resume "
                                      "goes on)")
    max_calculations: int = setting(0, "gsm8k: train only on the problems whose worked solution takes at most this "
                                       "many calculator steps (easier ones: a weak policy's GRPO groups then see right "
                                       "answers); 0: all. The evaluation keeps every test problem")


@dataclass
class SFTConfig(PolicyRunConfig):
    out_dir: str = setting("runs/sft", "where the checkpoint, metrics.jsonl and plots go")
    steps: int = setting(400, "optimizer steps")
    learning_rate: float = setting(5e-3, "the optimizer's learning rate (constant)")
    eval_interval: int = setting(100, "steps between evaluations (and at the first and last step)")
    checkpoint_interval: int = setting(100, "steps between checkpoints (and at the last step)")
    batch_size: int = setting(32, "SFT examples per optimizer step")
    arithmetic_correct_fraction: float = setting(0.5, "arithmetic task: the share of SFT examples with the right "
                                                      "answer (the rest a random sum): a policy GRPO can improve")


@dataclass
class GRPOConfig(PolicyRunConfig):
    policy: str = setting("runs/sft", "kit-tiny, smollm2, a Hugging Face model directory, or an sft / grpo / dpo out_dir")
    out_dir: str = setting("runs/grpo", "where the checkpoint, metrics.jsonl and plots go")
    rollout_batch_size: int = setting(128, "rollouts per step: rollout_batch_size / group_size questions")
    group_size: int = setting(8, "rollouts per question, normalized together")
    sampling_temperature: float = setting(1.0, "rollout sampling temperature")
    epochs_per_rollout_batch: int = setting(1, "passes over each rollout batch (> 1: off-policy, use grpo_clip)")
    train_batch_size: int = setting(128, "rollouts per optimizer step (divides rollout_batch_size)")
    loss_type: str = setting("reinforce_with_baseline", "policy-gradient loss", LOSS_TYPES)
    use_std_normalization: bool = setting(True, "divide each group's advantages by its std + advantage_eps")
    advantage_eps: float = setting(1e-6, "added to the group's std")
    cliprange: float = setting(0.2, "grpo_clip's epsilon")


def check_evaluate(cfg: EvaluateConfig) -> None:
    check_field_types(cfg)
    check_rules([
        (cfg.max_tokens >= 1, f"max_tokens={cfg.max_tokens} must be >= 1"),
        (cfg.eval_examples >= 0, f"eval_examples={cfg.eval_examples} must be >= 0 (0: all)"),
        (cfg.eval_temperature >= 0, f"eval_temperature={cfg.eval_temperature} must be >= 0"),
        (cfg.task == "gsm8k" or cfg.prompt in ("bare", "alpaca"),
         f"the arithmetic task uses the bare or the alpaca prompt, not {cfg.prompt}"),
        (cfg.reward_timeout_s > 0, f"reward_timeout_s={cfg.reward_timeout_s} must be > 0"),
    ])


def check_policy_run(cfg: PolicyRunConfig) -> None:
    check_evaluate(cfg)
    not_positive = [f"{name}={getattr(cfg, name)}" for name in ("steps", "learning_rate", "max_grad_norm",
                                                                "gradient_accumulation_steps", "eval_interval",
                                                                "checkpoint_interval")
                    if getattr(cfg, name) <= 0]
    if not_positive:
        raise ConfigError(f"these settings must be > 0: {', '.join(not_positive)}")
    check_rules([(cfg.max_minutes >= 0, f"max_minutes={cfg.max_minutes} must be >= 0 (0: no limit)"),
                 (cfg.max_calculations >= 0, f"max_calculations={cfg.max_calculations} must be >= 0 (0: all)"),
                 (cfg.max_calculations == 0 or cfg.task == "gsm8k",
                  f"max_calculations={cfg.max_calculations}: only GSM8K's solutions have calculator steps")])


def microbatches_divide(cfg) -> tuple[bool, str]:
    return (cfg.batch_size >= 1 and cfg.batch_size % cfg.gradient_accumulation_steps == 0,
            f"batch_size={cfg.batch_size} must be a positive multiple of gradient_accumulation_steps="
            f"{cfg.gradient_accumulation_steps}")


def check_sft(cfg: SFTConfig) -> None:
    check_policy_run(cfg)
    check_rules([
        microbatches_divide(cfg),
        (0 <= cfg.arithmetic_correct_fraction <= 1,
         f"arithmetic_correct_fraction={cfg.arithmetic_correct_fraction} must lie in [0, 1]"),
    ])


def check_grpo(cfg: GRPOConfig) -> None:
    """The handout's assertions (A5 §7.4), each a ConfigError naming the settings."""
    check_policy_run(cfg)
    check_rules([
        (cfg.group_size >= 2, f"group_size={cfg.group_size} must be >= 2 (advantages compare a group's rollouts)"),
        (cfg.rollout_batch_size >= 1 and cfg.rollout_batch_size % cfg.group_size == 0,
         f"rollout_batch_size={cfg.rollout_batch_size} must be a positive multiple of group_size={cfg.group_size}"),
        (cfg.train_batch_size >= 1 and cfg.rollout_batch_size % cfg.train_batch_size == 0,
         f"train_batch_size={cfg.train_batch_size} must divide rollout_batch_size={cfg.rollout_batch_size}"),
        (cfg.train_batch_size % cfg.gradient_accumulation_steps == 0,
         f"train_batch_size={cfg.train_batch_size} must be a multiple of gradient_accumulation_steps="
         f"{cfg.gradient_accumulation_steps}"),
        (cfg.epochs_per_rollout_batch >= 1, f"epochs_per_rollout_batch={cfg.epochs_per_rollout_batch} must be >= 1"),
        (cfg.sampling_temperature > 0, f"sampling_temperature={cfg.sampling_temperature} must be > 0 (a group of "
                                       "greedy rollouts is one rollout repeated)"),
        (cfg.advantage_eps > 0, f"advantage_eps={cfg.advantage_eps} must be > 0"),
        (0 < cfg.cliprange < 1, f"cliprange={cfg.cliprange} must lie in (0, 1)"),
    ])


@dataclass
class DPOConfig(PolicyRunConfig):
    policy: str = setting("runs/sft-alpaca", "the policy to improve, also the frozen reference: kit-tiny, smollm2, a "
                                             "Hugging Face model directory, or an sft / grpo / dpo out_dir")
    prompt: str = setting("alpaca", "the DPO loss formats pairs with the Alpaca template (supplement §5.3)",
                          ("alpaca",))
    out_dir: str = setting("runs/dpo", "where the checkpoint, metrics.jsonl and plots go")
    optimizer: str = setting("rmsprop", "adamw (A5 §7.4: no weight decay, betas 0.9 / 0.95) or rmsprop (the "
                                        "supplement's for DPO, §5.4, as the DPO paper)", OPTIMIZERS)
    steps: int = setting(60, "optimizer steps")
    # The defaults are the tiny policy's (the supplement's, for an 8B model on HH: lr 1e-6, beta 0.1). Measured on
    # it over 60 steps: a larger step (3e-4 with RMSprop, 5e-4 to 1e-3 with AdamW) lowers the likelihood of both
    # responses until the format breaks (greedy output "</</<answe..."), once the margin passes ~2; beta 0.1 learns
    # the preference more slowly (0.5 -> 0.69-0.74 of the pairs, against 0.77-0.82 with beta 1).
    learning_rate: float = setting(1e-4, "the optimizer's learning rate (constant)")
    batch_size: int = setting(16, "preference pairs per optimizer step")
    beta: float = setting(1.0, "DPO's beta: how far from the reference the policy may move")
    nll_weight: float = setting(0.0, "> 0: add this times the chosen responses' token NLL to the DPO loss (RPO, "
                                     "Pang et al. 2024), which keeps their likelihood from falling; 0: the "
                                     "supplement's DPO")


def check_dpo(cfg: DPOConfig) -> None:
    check_policy_run(cfg)
    check_rules([
        microbatches_divide(cfg),
        (cfg.beta > 0, f"beta={cfg.beta} must be > 0"),
        (cfg.nll_weight >= 0, f"nll_weight={cfg.nll_weight} must be >= 0"),
    ])
