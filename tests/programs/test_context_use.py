"""bench.scaling.context_use's measures against what they must be: the loss by position averages to the windows'
cross-entropy, and a model that copies perfectly scores ~0 on a random sequence's second copy, ln V on its first."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from bench.scaling.context_use import copy_losses, position_losses
from impl.nn import TransformerLM

VOCAB, HALF = 50, 12


class PerfectCopier(torch.nn.Module):
    """Predicts, past the first copy, the token ``HALF`` positions back; uniform before it."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*ids.shape, VOCAB)
        # position p predicts token p + 1, which in the second copy is token p + 1 - HALF
        logits[:, HALF - 1:] = 40.0 * F.one_hot(ids[:, :ids.shape[1] - HALF + 1], VOCAB).float()
        return logits


def test_a_perfect_copier_scores_zero_on_the_second_copy_and_ln_vocab_on_the_first():
    first, second = copy_losses(PerfectCopier(), VOCAB, HALF, sequences=6, device="cpu")
    assert first == pytest.approx(math.log(VOCAB), abs=1e-5) and second < 1e-6


def test_the_loss_by_position_averages_to_the_cross_entropy_of_the_windows():
    torch.manual_seed(0)
    model = TransformerLM(VOCAB, 16, 32, 2, 4, 64, 10_000.0).eval()
    windows = torch.randint(0, VOCAB, (20, 17))  # 20 windows: the 16-window batches leave a remainder
    losses = position_losses(model, windows)
    with torch.no_grad():
        logits = model(windows[:, :-1])
    expected = F.cross_entropy(logits.transpose(1, 2), windows[:, 1:], reduction="none").mean(0)
    torch.testing.assert_close(losses, expected, atol=1e-5, rtol=0)
