"""TRL as an independent oracle (spec/alignment.py; handout A5 §7.2–§7.3, supplement §5.3): the quantities that TRL's
DPOTrainer and GRPOTrainer compute the same way as the handout, computed by TRL on the same inputs.

TRL 1.x has no free loss functions: each loss is written inside its trainer. So each test builds a trainer on a tiny
model (nothing is trained) and calls the trainer's own method that computes the quantity.

Which TRL setting is which of ours:

- DPO (compute_per_instance_dpo_loss): ``DPOTrainer.compute_loss`` with ``loss_type=["sigmoid"]`` and the defaults
  that make it eq. 3 (``f_divergence_type="reverse_kl"``, ``label_smoothing=0``, ``ld_alpha=None``,
  ``use_weighting=False``, the reference model computed on the fly); ``beta`` is β. TRL sums each sequence's
  log-probs over its completion mask, here the response and its EOS, as TRL's collator marks them; the spec sums
  every token after the first, and the prompt's share cancels in the differences (the same prompt tokens start
  both sequences). ``bf16=False``: TRL's configs default to bf16 autocast, which moves the log-probs by ~1e-3.
- Group-normalized advantages (compute_group_normalized_rewards): ``GRPOTrainer._generate_and_score_completions``
  with ``scale_rewards="group"`` for ``normalize_by_std=True`` and ``"none"`` for False, ``num_generations`` = G
  (TRL's groups are contiguous too), ``advantage_eps=1e-4`` (TRL's constant), one reward function that returns
  the rewards given; TRL's std is the unbiased one, like ours.
- GRPO-Clip (compute_grpo_clip_loss, grpo_microbatch_train_step with ``"grpo_clip"``): ``GRPOTrainer.compute_loss``
  with ``loss_type="grpo"`` (per-sequence masked mean, batch mean, divided by the accumulation steps),
  ``epsilon`` = cliprange (``epsilon_high`` defaults to it; ``delta=None``: no second clip),
  ``importance_sampling_level="token"``, ``beta=0.0`` (the handout's GRPO has no KL term), no entropy bonus or
  mask, ``use_vllm=False`` (no importance-sampling correction). ``clip_ratio/region_mean`` is our clip fraction.

Not the same quantity, hence not tested here: ``scale_rewards="batch"`` (one std over the whole batch),
``loss_type`` "bnpo" / "dr_grpo" / "dapo" (the mean over the batch's tokens, or a constant length), TRL's
NaN-aware rewards, a KL term (``beta > 0``); and our naive losses (TRL always uses a ratio: with
``num_iterations=1`` the ratio is 1, so its loss is −A, not −A·log p, though the gradients agree).
"""

from __future__ import annotations

import pytest
import torch

from spec.alignment import ALPACA_TEMPLATE
from tests.conformance.alignment.hf import gpt2_tokenizer, tiny_llama
from tests.conformance.alignment.rewards_table import rewards_case
from tests.harness.helpers import randn
from tests.harness.oracles import oracle

TRL_EPS = 1e-4  # the constant TRL adds to the group std


@pytest.fixture(scope="module")
def trl():
    return pytest.importorskip("trl", reason="TRL is an oracle of the DPO and GRPO losses "
                                             "(pip install 'cs336-spec-kit[oracles]')")


def common_args(tmp_path) -> dict:
    # bf16=False: TRL's default autocast would put TRL's arithmetic in another precision than the implementation's
    return {"output_dir": str(tmp_path / "trl"), "report_to": "none", "use_cpu": True, "bf16": False}


# --------------------------------------------------------------------------------------------- DPO

# Responses of different lengths: TRL's padding of the shorter one is part of what is checked.
DPO_PAIR = ("What is 2 + 3? Answer with a number.", "5.", "The answer is 6, I am quite sure of it.")


def trl_dpo_loss(trl, tmp_path, beta: float, prompt: str, chosen: str, rejected: str) -> torch.Tensor:
    """TRL's sigmoid DPO loss of the policy tiny_llama(0) against the reference tiny_llama(1) on the spec's
    sequences (Alpaca template, EOS), right-padded into one batch [chosen, rejected] as TRL's collator makes it,
    the completion mask on the response and its EOS."""
    from datasets import Dataset

    tokenizer = gpt2_tokenizer()
    args = trl.DPOConfig(beta=beta, loss_type=["sigmoid"], **common_args(tmp_path))
    # The dataset is only what the constructor requires; the batch below is built from the spec's sequences.
    dataset = Dataset.from_list([{"prompt": prompt, "chosen": chosen, "rejected": rejected}])
    trainer = trl.DPOTrainer(model=tiny_llama(0), ref_model=tiny_llama(1), args=args, train_dataset=dataset,
                             processing_class=tokenizer)
    head = tokenizer.encode(ALPACA_TEMPLATE.format(prompt=prompt, response=""))
    ids = [tokenizer.encode(ALPACA_TEMPLATE.format(prompt=prompt, response=r)) + [tokenizer.eos_token_id]
           for r in (chosen, rejected)]
    # The prompt's share of the spec's sum cancels only if both sequences start with the same prompt tokens.
    assert all(x[:len(head)] == head for x in ids), "the template's tokens change at the response"
    length = max(len(x) for x in ids)
    input_ids = torch.full((2, length), tokenizer.pad_token_id)
    attention_mask = torch.zeros((2, length), dtype=torch.long)
    completion_mask = torch.zeros((2, length), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, :len(x)], attention_mask[row, :len(x)] = torch.tensor(x), 1
        completion_mask[row, len(head):len(x)] = 1
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, {"input_ids": input_ids, "attention_mask": attention_mask,
                                                    "completion_mask": completion_mask})


@pytest.mark.component("compute_per_instance_dpo_loss")
@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_per_instance_dpo_loss_matches_trl(impl, trl, tmp_path, beta):
    """The per-instance DPO loss equals TRL's DPOTrainer loss (loss_type "sigmoid") on the same models and the same
    Alpaca-formatted sequences with EOS: −log σ(β((log π(y_w) − log π(y_l)) − (log π_ref(y_w) − log π_ref(y_l))))."""
    with oracle("TRL's DPOTrainer loss"):
        expected = trl_dpo_loss(trl, tmp_path, beta, *DPO_PAIR).double()
    got = impl.compute_per_instance_dpo_loss(tiny_llama(0), tiny_llama(1), gpt2_tokenizer(), beta, *DPO_PAIR)
    assert got.numel() == 1
    # A float32 sum of ~60 log-probs near −11 is good to ~1e-4: atol follows β, which scales the sums' errors.
    torch.testing.assert_close(got.detach().double().reshape(()), expected.reshape(()), rtol=1e-4, atol=1e-4 * beta)


# --------------------------------------------------------------------------------------------- GRPO


def given_rewards(prompts, completions, reward, **kwargs):
    """A TRL reward function: each rollout's reward is the dataset column "reward" of its row."""
    return reward


def grpo_trainer(trl, tmp_path, batch: int, group_size: int, **config):
    """A GRPOTrainer on tiny_llama(0) whose batch is ``batch`` rollouts in groups of ``group_size``, in train mode
    (TRL then normalizes over ``num_generations`` and divides by the accumulation steps)."""
    from datasets import Dataset

    args = trl.GRPOConfig(num_generations=group_size, per_device_train_batch_size=batch, max_completion_length=2,
                          beta=0.0, loss_type="grpo", importance_sampling_level="token", **config,
                          **common_args(tmp_path))
    trainer = trl.GRPOTrainer(model=tiny_llama(0), reward_funcs=given_rewards, args=args,
                              train_dataset=Dataset.from_list([{"prompt": "q", "reward": 0.0}]),
                              processing_class=gpt2_tokenizer())
    trainer.model.train()
    return trainer


def trl_advantages(trl, tmp_path, rewards: list[float], group_size: int, normalize_by_std: bool) -> torch.Tensor:
    """The advantages TRL computes for rollouts whose rewards are ``rewards``: one row per rollout, each group's rows
    sharing a prompt and contiguous, as TRL's sampler repeats them. TRL generates completions for them (two tokens);
    the reward function ignores them."""
    trainer = grpo_trainer(trl, tmp_path, len(rewards), group_size,
                           scale_rewards="group" if normalize_by_std else "none")
    rows = [{"prompt": f"question {i // group_size}", "reward": r} for i, r in enumerate(rewards)]
    return trainer._generate_and_score_completions(rows)["advantages"]


ADVANTAGE_CASES = {  # name -> (rewards, group size)
    "two-groups": ([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], 4),  # interleaving them would give other numbers
    "pairs": ([0.0, 1.0, 1.0, 1.0, 0.25, 0.0], 2),  # the unbiased std of a pair; a group with std 0
    "partial-rewards": ([0.5, 0.25, 1.0, 0.0, 0.0, 0.75, 1.0, 1.0, 0.5], 3),
}


@pytest.mark.component("compute_group_normalized_rewards")
@pytest.mark.parametrize("case", sorted(ADVANTAGE_CASES))
@pytest.mark.parametrize("normalize_by_std", [True, False])
def test_group_normalized_rewards_match_trl(impl, trl, tmp_path, case, normalize_by_std):
    """The advantages equal GRPOTrainer's on the same rewards (contiguous groups of num_generations, the group mean
    subtracted; divided by the unbiased group std + 1e-4 with scale_rewards="group", not with "none")."""
    rewards, group_size = ADVANTAGE_CASES[case]
    with oracle("TRL's GRPOTrainer advantages"):
        expected = trl_advantages(trl, tmp_path, rewards, group_size, normalize_by_std).double()
    got, _, _ = rewards_case(impl, rewards, group_size, TRL_EPS, normalize_by_std)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def trl_grpo_loss(trainer, log_probs, old_log_probs, advantages, mask, steps: int = 1) -> torch.Tensor:
    """GRPOTrainer's loss for a microbatch whose policy log-probs are ``log_probs`` (B, T).

    TRL computes the policy's log-probs from the model inside its loss: that one method is replaced, on this
    instance only, by one that returns ``log_probs``, so that TRL's own loss arithmetic runs on exactly the tensors
    the implementation gets (the gradient flows back into ``log_probs``)."""
    trainer._get_per_token_logps_and_entropies = lambda *args, **kwargs: (log_probs, torch.zeros_like(log_probs),
                                                                          None)
    trainer.current_gradient_accumulation_steps = steps  # what Trainer.train sets for each accumulation window
    b, t = log_probs.shape
    inputs = {"prompt_ids": torch.zeros((b, 1), dtype=torch.long), "prompt_mask": torch.ones((b, 1), dtype=torch.long),
              "completion_ids": torch.zeros((b, t), dtype=torch.long), "completion_mask": mask.long(),
              "advantages": advantages.reshape(b), "old_per_token_logps": old_log_probs}
    return trainer.compute_loss(trainer.model, inputs)


def trl_per_token_grpo_clip(trainer, advantages, log_probs, old_log_probs):
    """TRL's per-token loss and its gradient with respect to each token's log-prob: one row at a time with a mask
    holding the one token, TRL's masked mean is that token's loss."""
    loss, grad = torch.zeros_like(log_probs), torch.zeros_like(log_probs)
    for i in range(log_probs.shape[0]):
        for t in range(log_probs.shape[1]):
            row = log_probs[i:i + 1].clone().requires_grad_()
            mask = torch.zeros_like(row, dtype=torch.long)
            mask[0, t] = 1
            value = trl_grpo_loss(trainer, row, old_log_probs[i:i + 1], advantages[i:i + 1], mask)
            value.backward()
            loss[i, t], grad[i, t] = value.detach(), row.grad[0, t]
    return loss, grad


# Ratios on both sides of every clip range tested (0.1, 0.2, 0.5) and inside them, none on a boundary; advantages of
# both signs: where the clipped term wins, TRL's gradient is 0, so the clip's side is visible.
RATIOS = torch.tensor([0.4, 0.7, 0.85, 1.0, 1.15, 1.3, 2.0])
CLIP_ADVANTAGES = torch.tensor([[1.0], [-1.0], [0.7], [-0.3]])


def clip_inputs():
    log_probs = -randn(4, 7, seed=30, device="cpu").abs()
    return CLIP_ADVANTAGES, log_probs, log_probs - RATIOS.log()  # ratio = exp(log p − log p_old)


@pytest.mark.component("compute_grpo_clip_loss")
@pytest.mark.parametrize("cliprange", [0.1, 0.2, 0.5])
def test_grpo_clip_loss_matches_trl(impl, trl, tmp_path, cliprange):
    """The per-token GRPO-Clip loss and its gradient equal GRPOTrainer's (loss_type "grpo", epsilon = cliprange):
    −min(ρA, clip(ρ, 1 − ε, 1 + ε)A), no gradient where the clipped term is the minimum."""
    advantages, log_probs, old = clip_inputs()
    with oracle("TRL's GRPOTrainer loss"):
        trainer = grpo_trainer(trl, tmp_path, 4, 2, epsilon=cliprange)
        expected, expected_grad = trl_per_token_grpo_clip(trainer, advantages, log_probs, old)
    policy = log_probs.clone().requires_grad_()
    loss, _ = impl.compute_grpo_clip_loss(advantages, policy, old, cliprange)
    assert loss.shape == (4, 7)
    torch.testing.assert_close(loss.detach().double(), expected.double(), rtol=1e-5, atol=1e-6)
    loss.sum().backward()  # each token's loss depends on its own log-prob only
    torch.testing.assert_close(policy.grad.double(), expected_grad.double(), rtol=1e-5, atol=1e-6)


@pytest.mark.strict
@pytest.mark.component("compute_grpo_clip_loss")
def test_grpo_clip_fraction_matches_trl(impl, trl, tmp_path):
    """(strict) metadata["clip_fraction"] equals GRPOTrainer's clip_ratio/region_mean (the share of tokens whose
    ratio is beyond 1 + ε with A > 0 or below 1 − ε with A < 0) over a batch with every token in the mask."""
    advantages, log_probs, old = clip_inputs()
    with oracle("TRL's GRPOTrainer clip ratio"):
        trainer = grpo_trainer(trl, tmp_path, 4, 2, epsilon=0.2)
        trl_grpo_loss(trainer, log_probs, old, advantages, torch.ones_like(log_probs))
        expected = trainer._metrics["train"]["clip_ratio/region_mean"][-1]
    _, metadata = impl.compute_grpo_clip_loss(advantages, log_probs, old, 0.2)
    assert abs(float(metadata["clip_fraction"]) - expected) < 1e-6, (float(metadata["clip_fraction"]), expected)


# Prompt and padding positions of any shape: a response that starts late, one of a single token.
STEP_MASK = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [0, 1, 0, 0, 0, 0]])


@pytest.mark.component("grpo_microbatch_train_step")
@pytest.mark.parametrize("steps", [1, 3])
def test_grpo_microbatch_train_step_matches_trl(impl, trl, tmp_path, steps):
    """grpo_microbatch_train_step with "grpo_clip" gives GRPOTrainer's loss (loss_type "grpo": each sequence's
    masked mean, the batch mean, divided by the accumulation steps) and the same gradient."""
    advantages = randn(4, 1, seed=40, device="cpu")
    log_probs = -randn(4, 6, seed=41, device="cpu").abs()
    old = log_probs + 0.3 * randn(4, 6, seed=42, device="cpu")
    with oracle("TRL's GRPOTrainer loss"):
        trainer = grpo_trainer(trl, tmp_path, 4, 2, epsilon=0.2)
        reference = log_probs.clone().requires_grad_()
        expected = trl_grpo_loss(trainer, reference, old, advantages, STEP_MASK, steps)
        expected.backward()
    policy = log_probs.clone().requires_grad_()
    loss, _ = impl.grpo_microbatch_train_step(policy, STEP_MASK.bool(), steps, "grpo_clip", None, advantages, old,
                                              0.2)
    torch.testing.assert_close(loss.detach().double().reshape(()), expected.detach().double(), rtol=1e-5, atol=1e-7)
    assert policy.grad is not None, "the step must call loss.backward()"
    torch.testing.assert_close(policy.grad.double(), reference.grad.double(), rtol=1e-5, atol=1e-7)
