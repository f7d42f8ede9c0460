"""The ``evaluate`` program: a policy's accuracy on a task's test problems, with 95% intervals (A5 §3, the
supplement's §2.2): the zero-shot baseline of a model, or where an sft / grpo run got to.

    evaluate                                          # the tiny untrained policy on a+b= (accuracy 0: a floor)
    evaluate --policy smollm2 --task gsm8k --prompt r1_zero --max-tokens 512 --eval-examples 500
    evaluate --policy runs/grpo --task arithmetic

Writes results.json (accuracy, format and mean reward with their 95% Wilson intervals, mean response length,
the settings), completions.jsonl (every prompt, completion and reward) and results.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from impl.programs.cli import ArgumentParser, run
from impl.programs.settings import add_setting_flags, given_settings


def build_parser() -> ArgumentParser:
    parser = ArgumentParser("evaluate", "A policy's test accuracy with 95% intervals (A5 §3). Every setting is a "
                                        "flag and a key of the --config file.")
    from impl.programs.alignment_config import EvaluateConfig

    add_setting_flags(parser, EvaluateConfig)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run(build_parser(), argv, evaluate)


def plot_results(summary: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from impl.programs.files import atomic_write

    names = ["accuracy", "format", "reward"]
    values = [summary[f"eval_{n}"] for n in names]
    low = [max(0.0, v - summary[f"eval_{n}_ci95"][0]) for n, v in zip(names, values)]  # >= 0 despite rounding
    high = [max(0.0, summary[f"eval_{n}_ci95"][1] - v) for n, v in zip(names, values)]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(names, values, yerr=[low, high], capsize=6, color=["tab:blue", "tab:gray", "tab:green"])
    ax.set_ylim(0, 1)
    ax.set_ylabel(f"mean over {summary['eval_examples']} problems (95% interval)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_write(out) as file:
        fig.savefig(file, format="png", dpi=110)
    plt.close(fig)


def evaluate(args: argparse.Namespace) -> int:
    from impl.programs.alignment_config import EvaluateConfig, check_evaluate

    cfg = EvaluateConfig(**given_settings(args, EvaluateConfig, "evaluate"))
    check_evaluate(cfg)

    from impl.programs.alignment_run import evaluate_policy
    from impl.programs.alignment_tasks import problems, prompt_template, prompt_text, reward_function
    from impl.programs.config import resolve_device
    from impl.programs.files import atomic_write_text
    from impl.programs.policies import load_policy, make_backend
    from impl.programs.reward_scoring import RewardScorer

    device = resolve_device(cfg.device)
    policy, _ = load_policy(cfg.policy, device, cfg.seed)
    template = prompt_template(cfg.prompt)
    tests = problems(cfg.task, "test")
    tests = tests[:cfg.eval_examples] if cfg.eval_examples else tests
    policy.check_prompts_fit([prompt_text(template, p) for p in tests], "test problem")
    backend = make_backend(policy, cfg.backend, cfg.rollout_dtype, cfg.rollout_cache)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scorer = RewardScorer(reward_function(cfg.prompt), cfg.reward_timeout_s)
    try:
        summary, rows = evaluate_policy(backend, scorer, tests, template, cfg.prompt, cfg.max_tokens,
                                        cfg.eval_temperature, cfg.seed, policy.tokenizer)
    finally:
        scorer.close()
    results = {**summary, "settings": dataclasses.asdict(cfg)}
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(out_dir / "completions.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    plot_results(summary, out_dir / "results.png", f"{cfg.policy} on {cfg.task} ({cfg.prompt} prompt)")
    low, high = summary["eval_accuracy_ci95"]
    print(f"evaluate: accuracy {summary['eval_accuracy']:.3f} (95% interval {low:.3f}-{high:.3f}) over "
          f"{summary['eval_examples']} {cfg.task} test problems, format {summary['eval_format']:.3f}, mean response "
          f"{summary['eval_response_tokens']:.1f} tokens; wrote {out_dir}/{{results.json,completions.jsonl,results.png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
