"""What the sft and grpo programs share: the policy and its optimizer, the rollout backend, evaluations with 95%
confidence intervals, metrics, plots, atomic checkpoints and an exact resume (A5 §4.3, §7.4).

A run directory holds ``checkpoint.pt`` (weights, optimizer, step, the sampler's state, the settings, the base
policy), ``metrics.jsonl`` (one row per step, evaluation rows with ``eval_*`` keys), ``curves.png`` and
``summary.json``. ``--resume`` continues from the checkpoint with its settings; only ``steps``, ``device`` and the
intervals may change.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from impl.alignment.generation import R1_ZERO_STOP, Sampling
from impl.programs.alignment_tasks import Problem, problems, prompt_template, prompt_text, reward_function
from impl.programs.checkpoints import load_policy_checkpoint
from impl.programs.cli import UserError
from impl.programs.config import resolve_device
from impl.programs.files import atomic_write, atomic_write_text, remove_stale_temps
from impl.programs.policies import build_policy, load_policy, make_backend
from impl.programs.reward_scoring import RewardScorer
from impl.programs.run_log import MetricsLog

# What a resumed run may change: how long it goes on, where it runs, how often it evaluates and saves.
RESUMABLE_FIELDS = ("steps", "device", "eval_interval", "checkpoint_interval", "max_minutes")
Z_95 = 1.959964  # the standard normal's 97.5% quantile


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a rate: sound near 0 and 1, where the normal approximation is not."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    centre = (p + Z_95 ** 2 / (2 * n)) / (1 + Z_95 ** 2 / n)
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95 ** 2 / (4 * n * n)) / (1 + Z_95 ** 2 / n)
    # At 0 or n successes the bound on that side is 0 or 1 exactly, not its value up to rounding.
    return (0.0 if successes == 0 else max(0.0, centre - half), 1.0 if successes == n else min(1.0, centre + half))


def stop_strings(prompt: str) -> tuple[str, ...]:
    return () if prompt == "question_only" else R1_ZERO_STOP


def evaluate_policy(backend, scorer: RewardScorer, tests: list[Problem], template: str, prompt: str,
                    max_tokens: int, temperature: float, seed: int, tokenizer) -> tuple[dict, list[dict]]:
    """Accuracy (answer reward), format reward and mean reward over ``tests`` with their 95% intervals, the mean
    response length in tokens; and each test's prompt, completion and rewards."""
    prompts = [prompt_text(template, p) for p in tests]
    sampling = Sampling(temperature=temperature, max_tokens=max_tokens, stop=stop_strings(prompt), seed=seed)
    completions = backend.generate(prompts, sampling)
    scores, timeouts = scorer.score(completions, [p.answer for p in tests])
    n = len(tests)
    summary = {"eval_examples": n, "eval_reward_timeouts": timeouts,
               "eval_response_tokens": sum(len(tokenizer(c, add_special_tokens=False)["input_ids"])
                                           for c in completions) / max(n, 1)}
    for key, name in (("answer_reward", "accuracy"), ("format_reward", "format"), ("reward", "reward")):
        total = sum(s[key] for s in scores)
        summary[f"eval_{name}"] = total / max(n, 1)
        summary[f"eval_{name}_ci95"] = wilson_interval(total, n)
    rows = [{"question": p.question, "answer": p.answer, "prompt": text, "completion": completion, **score}
            for p, text, completion, score in zip(tests, prompts, completions, scores)]
    return summary, rows


class PolicyRun:
    """One sft, grpo or dpo run, from scratch or resumed: ``step`` optimizer steps done so far."""

    def __init__(self, program: str, cfg, resume: bool, given: dict):
        self.program = program
        self.out_dir = Path(cfg.out_dir)
        self.checkpoint_path = self.out_dir / "checkpoint.pt"
        checkpoint = None
        if resume:
            checkpoint = load_policy_checkpoint(self.checkpoint_path)
            if checkpoint["program"] != program:
                raise UserError(f"{self.checkpoint_path} is a {checkpoint['program']} run, not a {program} run")
            changed = sorted(name for name, value in given.items()
                             if name not in (*RESUMABLE_FIELDS, "out_dir") and checkpoint["config"][name] != value)
            if changed:
                raise UserError(f"--resume continues the run as it was: {', '.join(changed)} cannot change "
                                f"(only {', '.join(RESUMABLE_FIELDS)} may)")
            cfg = type(cfg)(**{**checkpoint["config"], **given, "out_dir": str(self.out_dir)})
        elif self.checkpoint_path.exists():
            raise UserError(f"{self.checkpoint_path} exists: pass --resume to continue it, or choose another out_dir")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if checkpoint is None:
            self.policy, _ = load_policy(cfg.policy, self.device, cfg.seed)
        else:
            self.policy = build_policy(checkpoint["base"], self.device, cfg.seed)
            self.policy.model.load_state_dict(checkpoint["model"])
        self.model, self.tokenizer = self.policy.model, self.policy.tokenizer
        self.reference: torch.nn.Module | None = None  # DPO's, loaded when first needed
        self.model.train()
        if cfg.optimizer == "adamw":  # the handout's for SFT and GRPO: no weight decay, beta2 0.95 (A5 §7.4)
            self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, weight_decay=0.0,
                                               betas=(0.9, 0.95))
        else:  # the supplement's for DPO (§5.4), torch's defaults
            self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=cfg.learning_rate)
        self.rng = random.Random(cfg.seed)  # which training problems each step uses
        self.step, self.elapsed = 0, 0.0
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.step, self.elapsed = checkpoint["iteration"], checkpoint["elapsed_s"]
            self.rng.setstate(checkpoint["rng"])
        self.template = prompt_template(cfg.prompt)
        self.train_problems = [p for p in problems(cfg.task, "train")
                               if not cfg.max_calculations or p.calculations <= cfg.max_calculations]
        tests = problems(cfg.task, "test")
        self.tests = tests[:cfg.eval_examples] if cfg.eval_examples else tests
        self.policy.check_prompts_fit([prompt_text(self.template, p) for p in self.train_problems], "training problem")
        self.policy.check_prompts_fit([prompt_text(self.template, p) for p in self.tests], "test problem")
        self.backend = make_backend(self.policy, cfg.backend, cfg.rollout_dtype, cfg.rollout_cache)
        self.scorer = RewardScorer(reward_function(cfg.prompt), cfg.reward_timeout_s)
        # Only now, every setting and prompt checked, does the run touch its directory.
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoint.pt", "metrics.jsonl", "curves.png", "summary.json", "eval_completions.jsonl"):
            remove_stale_temps(self.out_dir / name)  # what a killed run left half-written goes
        self.metrics = MetricsLog(self.out_dir / "metrics.jsonl",
                                  resume_from_step=self.step if checkpoint is not None else None)
        self.started = time.perf_counter() - self.elapsed

    def close(self) -> None:
        self.scorer.close()

    def load_reference(self) -> torch.nn.Module:
        """A frozen copy of the policy the run started from (``cfg.policy``): DPO's reference model."""
        policy, _ = load_policy(self.cfg.policy, self.device, self.cfg.seed)
        return policy.model.eval().requires_grad_(False)

    def clock(self) -> float:
        self.elapsed = time.perf_counter() - self.started
        return self.elapsed

    def sync_backend(self) -> None:
        """The backend samples from the policy's current weights (A5 §7.4: after every step)."""
        self.backend.load_weights(self.model.state_dict())

    def evaluate(self) -> dict:
        self.sync_backend()
        summary, rows = evaluate_policy(self.backend, self.scorer, self.tests, self.template, self.cfg.prompt,
                                        self.cfg.max_tokens, self.cfg.eval_temperature, self.cfg.seed,
                                        self.tokenizer)
        # The latest evaluation's completions, to read beside the figures.
        atomic_write_text(self.out_dir / "eval_completions.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        return summary

    def optimizer_step(self) -> float:
        """Clip the accumulated gradient, step, zero it; the gradient norm before clipping."""
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        if not torch.isfinite(grad_norm):
            raise UserError(f"the gradient norm is {grad_norm.item()} in step {self.step + 1}; stopped without "
                            f"saving ({self.kept()}). Lower learning_rate.")
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm.item()

    def kept(self) -> str:
        return (f"the last checkpoint {self.checkpoint_path} is intact" if self.checkpoint_path.exists()
                else "no checkpoint was written yet")

    def save(self) -> None:
        checkpoint = {"program": self.program, "base": self.policy.base, "model": self.model.state_dict(),
                      "optimizer": self.optimizer.state_dict(), "iteration": self.step,
                      "config": dataclasses.asdict(self.cfg), "rng": self.rng.getstate(), "elapsed_s": self.clock()}
        with atomic_write(self.checkpoint_path) as file:
            torch.save(checkpoint, file)

    def due(self, interval: int) -> bool:
        return self.step % interval == 0 or self.step == self.cfg.steps

    def log(self, row: dict) -> None:
        self.metrics.append({"step": self.step, "wall_s": round(self.clock(), 3), **row})

    def summarize(self) -> dict:
        """The first and the last evaluation, and the run's length: summary.json."""
        evaluations = [r for r in self.metrics.rows if "eval_accuracy" in r]
        summary = {"program": self.program, "steps": self.step, "finished": self.step >= self.cfg.steps,
                   "wall_s": round(self.clock(), 1)}
        ends = [("before", evaluations[0])] if evaluations and evaluations[0]["step"] == 0 else []  # eval_first
        for name, row in ends + ([("after", evaluations[-1])] if evaluations else []):
            summary[name] = {"step": row["step"], **{k: v for k, v in row.items() if k.startswith("eval_")}}
        atomic_write_text(self.out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        return summary

    def run(self, one_step: Callable[[PolicyRun], dict], panels: list[tuple[str, str]], title: str) -> dict:
        """Steps to ``cfg.steps``: each ``one_step(self)``'s metrics row (plus an evaluation when due) logged, a
        checkpoint and the plots when due; an evaluation first on a fresh run (``eval_first``). Returns ``summarize()``'s."""
        from tqdm import tqdm

        from impl.programs.run_log import plot_metric_panels

        cfg = self.cfg
        session_start = time.perf_counter()
        if self.step == 0 and cfg.eval_first:
            self.log(self.evaluate())
        with tqdm(total=cfg.steps, initial=self.step, desc=self.program, unit="step", dynamic_ncols=True) as bar:
            while self.step < cfg.steps:
                row = one_step(self)
                self.step += 1
                out_of_time = cfg.max_minutes > 0 and time.perf_counter() - session_start > cfg.max_minutes * 60
                if self.due(cfg.eval_interval) or out_of_time:  # a stopped run's summary ends with its state
                    row.update(self.evaluate())
                self.log(row)
                bar.set_postfix({key: f"{row[key]:.3f}" for key in ("loss", "reward", "eval_accuracy") if key in row})
                bar.update(1)
                if self.due(cfg.checkpoint_interval) or out_of_time:
                    self.save()
                    plot_metric_panels(self.metrics.rows, panels, self.out_dir / "curves.png", title)
                if out_of_time:
                    break
        return self.summarize()
