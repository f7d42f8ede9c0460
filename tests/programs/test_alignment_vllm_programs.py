"""The alignment programs with ``--backend vllm``: grpo on SmolLM2 samples its rollouts and evaluations from vLLM
(the CPU build), and every weight update reaches the engine. Run by nox -s alignment_vllm in a pytest process of
its own: the backend tests' engine lives for their module, and two engines in one process are not supported."""

from __future__ import annotations

import json
import os

import pytest
import torch

pytest.importorskip("vllm", reason="vLLM is not installed here: nox -s alignment_vllm runs these tests in its own "
                                   "environment")

from impl.alignment import smollm2  # noqa: E402 (after the skip: without vLLM nothing below applies)
from impl.alignment.vllm_backend import VLLMBackend  # noqa: E402
from impl.programs import alignment_run, grpo  # noqa: E402
from impl.programs.checkpoints import load_policy_checkpoint  # noqa: E402
from tests.programs import alignment_rewards  # noqa: E402


def test_grpo_samples_with_vllm_and_sends_it_the_trained_weights(tmp_path, monkeypatch):
    if smollm2.missing_packages():
        pytest.skip(f"SmolLM2's conversion needs {', '.join(smollm2.missing_packages())} ({smollm2.INSTALL})")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: plenty for these short sequences
    loaded = []
    load_weights = VLLMBackend.load_weights

    def recording(self, state_dict):
        loaded.append({name: tensor.detach().clone() for name, tensor in state_dict.items()})
        load_weights(self, state_dict)

    monkeypatch.setattr(VLLMBackend, "load_weights", recording)
    # SmolLM2 answers no GSM8K problem in 12 tokens: with the r1_zero reward every advantage would be 0 and no step
    # would change a weight.
    monkeypatch.setattr(alignment_run, "reward_function", lambda prompt: alignment_rewards.longer_is_better)
    out = tmp_path / "grpo"
    assert grpo.main(["--policy", "smollm2", "--task", "gsm8k", "--prompt", "r1_zero", "--backend", "vllm",
                      "--device", "cpu", "--steps", "2", "--rollout-batch-size", "4", "--group-size", "2",
                      "--train-batch-size", "4", "--max-tokens", "12", "--eval-examples", "2",
                      "--learning-rate", "1e-4", "--out-dir", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "reward" in r] == [1, 2]
    assert all(r["response_tokens"] > 0 for r in rows if "reward" in r)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] and summary["after"]["eval_examples"] == 2
    # The engine got the policy's weights before each sampling: at the start, after step 1, and after step 2 for
    # the last evaluation, which samples the trained policy the checkpoint holds.
    trained = load_policy_checkpoint(out / "checkpoint.pt")["model"]
    assert len(loaded) >= 3
    assert all(torch.equal(loaded[-1][name], trained[name]) for name in trained)
    assert not all(torch.equal(loaded[0][name], trained[name]) for name in trained), "the steps changed nothing"
