"""The ``sft`` program: supervised fine-tuning on (prompt, response) pairs (A5 §4): the response's log-likelihood,
summed over its tokens, averaged over the batch, through ``sft_microbatch_train_step``.

    sft                                              # the small default: the tiny policy learns a+b= (CPU, ~1 min)
    sft --config impl/programs/configs/sft_gsm8k_gpu.toml --out-dir runs/sft-smollm2
    sft --out-dir runs/sft --resume

The responses are the task's: GSM8K's worked solutions ending in the prompt's answer format; for the arithmetic
task, the format with the right sum for ``arithmetic_correct_fraction`` of the examples and a random one for the
rest (a policy that is right sometimes: what the ``grpo`` program's default then improves).
"""

from __future__ import annotations

import sys

from impl.programs.alignment_config import SFTConfig, check_sft
from impl.programs.policy_program import policy_program

PANELS = [("loss", "response NLL (nats / example)"), ("eval_accuracy", "test accuracy"),
          ("eval_format", "test format reward"), ("eval_response_tokens", "test response length (tokens)")]


def sft_step(runner) -> dict:
    from impl.alignment import get_response_log_probs, sft_microbatch_train_step, tokenize_prompt_and_output
    from impl.programs.alignment_tasks import noisy_arithmetic_targets, prompt_text, sft_target

    cfg = runner.cfg
    examples = runner.rng.sample(runner.train_problems, cfg.batch_size) \
        if cfg.batch_size <= len(runner.train_problems) else runner.rng.choices(runner.train_problems, k=cfg.batch_size)
    if cfg.task == "arithmetic":
        examples = noisy_arithmetic_targets(examples, cfg.arithmetic_correct_fraction, runner.rng.randrange(2 ** 31))
    batch = tokenize_prompt_and_output([prompt_text(runner.template, p) for p in examples],
                                       [sft_target(p, cfg.prompt) for p in examples], runner.tokenizer)
    batch = {name: tensor.to(runner.device) for name, tensor in batch.items()}
    micro = cfg.batch_size // cfg.gradient_accumulation_steps
    loss = 0.0
    for start in range(0, cfg.batch_size, micro):
        rows = slice(start, start + micro)
        log_probs = get_response_log_probs(runner.model, batch["input_ids"][rows], batch["labels"][rows])["log_probs"]
        _, metadata = sft_microbatch_train_step(log_probs, batch["response_mask"][rows],
                                                cfg.gradient_accumulation_steps)
        loss += metadata["nll"].item() / cfg.gradient_accumulation_steps
    grad_norm = runner.optimizer_step()
    return {"loss": loss, "grad_norm": grad_norm, "response_tokens": batch["response_mask"].sum().item() / cfg.batch_size}


def title(cfg) -> str:
    return f"SFT: {cfg.policy} on {cfg.task} ({cfg.prompt}), batch {cfg.batch_size}, lr {cfg.learning_rate:g}"


main = policy_program("sft", "Supervised fine-tuning of a policy (A5 §4).", SFTConfig, check_sft, sft_step, PANELS,
                      title)

if __name__ == "__main__":
    sys.exit(main())
