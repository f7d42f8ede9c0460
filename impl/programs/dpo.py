"""The ``dpo`` program: Direct Preference Optimization (A5 supplement §5): the policy learns to prefer the chosen
response of each pair over the rejected one, relative to a frozen reference (the policy it starts from), through
the per-instance DPO loss (``compute_per_instance_dpo_loss``, Alpaca-formatted, §5.3), with RMSprop as §5.4 says.

    sft --prompt alpaca --out-dir runs/sft-alpaca && dpo      # the small default: the tiny policy on a+b= (CPU)
    dpo --policy runs/sft-smollm2-alpaca --task gsm8k --out-dir runs/dpo-smollm2
    dpo --out-dir runs/dpo --resume

The pairs are the task's own: chosen = the right answer in the r1_zero format (GSM8K: after its worked
solution), rejected = the same with a wrong answer. metrics.jsonl logs the loss, the preference accuracy (the
share of pairs whose log-ratio the policy raised above the reference's) and the implicit reward margin
β((log π − log π_ref)(chosen) − (log π − log π_ref)(rejected)).

DPO alone can lower the likelihood of both responses of a pair, the chosen one too: on the tiny policy the greedy
format broke in some seeds ("</</<answe..."). ``nll_weight`` adds the chosen responses' token NLL to the loss (RPO,
Pang et al. 2024), which kept it in every seed tried; 0, the default, is the supplement's DPO.
"""

from __future__ import annotations

import math
import sys

from impl.programs.alignment_config import DPOConfig, check_dpo
from impl.programs.policy_program import policy_program

PANELS = [("loss", "DPO loss"), ("preference_accuracy", "pairs preferred over the reference"),
          ("reward_margin", "implicit reward margin"), ("eval_accuracy", "test accuracy")]


def dpo_step(runner) -> dict:
    from impl.alignment import compute_per_instance_dpo_loss, get_response_log_probs, tokenize_prompt_and_output
    from impl.programs.alignment_tasks import prompt_text, sft_target, with_wrong_answer

    cfg = runner.cfg
    if runner.reference is None:  # the frozen start: the policy the run began from, on a resume too
        runner.reference = runner.load_reference()
    examples = runner.rng.sample(runner.train_problems, min(cfg.batch_size, len(runner.train_problems)))
    examples += runner.rng.choices(runner.train_problems, k=cfg.batch_size - len(examples))
    losses = []
    for i, problem in enumerate(examples):
        rejected = with_wrong_answer(problem, runner.rng)
        loss = compute_per_instance_dpo_loss(runner.model, runner.reference, runner.tokenizer, cfg.beta,
                                             problem.question, sft_target(problem, cfg.prompt),
                                             sft_target(rejected, cfg.prompt))
        (loss / cfg.batch_size).backward()  # the batch mean, accumulated pair by pair
        losses.append(loss.item())
    row = {}
    if cfg.nll_weight > 0:  # the chosen responses' mean token NLL, as SFT computes it: the anchor of RPO
        batch = tokenize_prompt_and_output([prompt_text(runner.template, p) for p in examples],
                                           [sft_target(p, cfg.prompt) for p in examples], runner.tokenizer)
        batch = {name: tensor.to(runner.device) for name, tensor in batch.items()}
        log_probs = get_response_log_probs(runner.model, batch["input_ids"], batch["labels"])["log_probs"]
        nll = -(log_probs * batch["response_mask"]).sum() / batch["response_mask"].sum()
        (cfg.nll_weight * nll).backward()
        row["chosen_nll"] = nll.item()
    grad_norm = runner.optimizer_step()
    # loss = −log σ(margin): the margin is recovered from it, and a pair is preferred where the margin is > 0.
    margins = [-math.log(math.expm1(loss)) if loss > 1e-12 else 30.0 for loss in losses]
    return {**row, "loss": sum(losses) / len(losses), "grad_norm": grad_norm,
            "preference_accuracy": sum(m > 0 for m in margins) / len(margins),
            "reward_margin": sum(margins) / len(margins)}


def title(cfg) -> str:
    return f"DPO: {cfg.policy} on {cfg.task}, beta {cfg.beta:g}, batch {cfg.batch_size}, lr {cfg.learning_rate:g}"


main = policy_program("dpo", "Direct Preference Optimization of a policy (A5 supplement §5).", DPOConfig, check_dpo,
                      dpo_step, PANELS, title)

if __name__ == "__main__":
    sys.exit(main())
