"""Conformance of the supplement's data pieces and DPO loss (spec/alignment.py): PackedSFTDataset and
iterate_batches (supplement §3.2.1), compute_per_instance_dpo_loss (§5.3).

Oracles: the packing written out here (Alpaca template, the tokenizer's ids, EOS, consecutive chunks with labels one
token later), and eq. 3 computed from two tiny randomly initialised Llama models' logits.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from spec.alignment import ALPACA_TEMPLATE
from tests.conformance.alignment.hf import gpt2_tokenizer, tiny_llama

DOCUMENTS = [{"prompt": f"Write number {i} in words.", "response": f"Number {i} is written {'one two three'[:i + 3]}."}
             for i in range(6)]


def write_jsonl(path, documents):
    path.write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    return path


def packed_tokens(documents) -> list[int]:
    tokenizer = gpt2_tokenizer()
    tokens = []
    for doc in documents:
        tokens += tokenizer.encode(ALPACA_TEMPLATE.format(prompt=doc["prompt"], response=doc["response"]))
        tokens.append(tokenizer.eos_token_id)
    return tokens


@pytest.mark.component("PackedSFTDataset")
@pytest.mark.parametrize("seq_length", [7, 16, 33])
def test_packed_sft_dataset(impl, tmp_path, seq_length):
    """Documents as the Alpaca template with an EOS each, concatenated in file order, cut into consecutive chunks;
    labels are the next tokens (across chunk boundaries); the incomplete tail is dropped."""
    tokens = packed_tokens(DOCUMENTS)
    if len(tokens) % seq_length == 0:  # (N − 1) // m and N // m agree: the case the handout defines
        seq_length += 1
    dataset = impl.PackedSFTDataset(gpt2_tokenizer(), write_jsonl(tmp_path / "sft.jsonl", DOCUMENTS), seq_length,
                                    False)
    assert len(dataset) == (len(tokens) - 1) // seq_length
    for i in range(len(dataset)):
        item = dataset[i]
        assert item["input_ids"].tolist() == tokens[i * seq_length:(i + 1) * seq_length], f"input_ids of item {i}"
        assert item["labels"].tolist() == tokens[i * seq_length + 1:(i + 1) * seq_length + 1], f"labels of item {i}"


@pytest.mark.component("PackedSFTDataset")
def test_packed_sft_dataset_shuffles_documents(impl, tmp_path):
    """shuffle=True: the documents are concatenated in another order (20 documents: the file's order by chance
    three times has odds of 1 in 10⁵⁵), and the length is unchanged."""
    documents = [{"prompt": f"Task {i}", "response": f"Answer {i}"} for i in range(20)]
    path = write_jsonl(tmp_path / "sft.jsonl", documents)
    ordered = impl.PackedSFTDataset(gpt2_tokenizer(), path, 8, False)
    first = [ordered[i]["input_ids"].tolist() for i in range(len(ordered))]
    orders = []
    for _ in range(3):
        shuffled = impl.PackedSFTDataset(gpt2_tokenizer(), path, 8, True)
        assert len(shuffled) == len(ordered)
        orders.append([shuffled[i]["input_ids"].tolist() for i in range(len(shuffled))])
    assert any(order != first for order in orders)


@pytest.mark.strict
@pytest.mark.component("PackedSFTDataset")
def test_packed_sft_dataset_types(impl, tmp_path):
    """(strict) int64 tensors of shape (seq_length,); an index past the end raises IndexError."""
    dataset = impl.PackedSFTDataset(gpt2_tokenizer(), write_jsonl(tmp_path / "sft.jsonl", DOCUMENTS), 16, False)
    item = dataset[0]
    assert item["input_ids"].dtype == item["labels"].dtype == torch.int64
    assert item["input_ids"].shape == item["labels"].shape == (16,)
    with pytest.raises(IndexError):
        dataset[len(dataset)]


class Items(torch.utils.data.Dataset):
    """n items, item i holding i everywhere: which items a batch holds is plain."""

    def __init__(self, n: int, m: int = 4):
        self.n, self.m = n, m

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"input_ids": torch.full((self.m,), i), "labels": torch.full((self.m,), i + 1)}


@pytest.mark.component("iterate_batches")
@pytest.mark.parametrize("n, batch_size", [(10, 3), (8, 4), (5, 8)])
def test_iterate_batches_in_order(impl, n, batch_size):
    """shuffle=False: consecutive batches of batch_size stacked items (the last one smaller), one epoch."""
    batches = list(impl.iterate_batches(Items(n), batch_size, False))
    assert len(batches) == math.ceil(n / batch_size)
    seen = []
    for batch in batches:
        assert batch["input_ids"].shape[1:] == (4,) and batch["labels"].shape == batch["input_ids"].shape
        seen += batch["input_ids"][:, 0].tolist()
        assert torch.equal(batch["labels"], batch["input_ids"] + 1)
    assert seen == list(range(n))


@pytest.mark.component("iterate_batches")
def test_iterate_batches_shuffled(impl):
    """shuffle=True: every item exactly once per epoch, in another order (60 items: the same order by chance three
    times is beyond odds)."""
    orders = []
    for _ in range(3):
        seen = [i for batch in impl.iterate_batches(Items(60), 7, True) for i in batch["input_ids"][:, 0].tolist()]
        assert sorted(seen) == list(range(60))
        orders.append(seen)
    assert any(order != list(range(60)) for order in orders)


def sequence_log_prob(model, ids):
    x = torch.tensor([ids])
    with torch.no_grad():
        logits = model(x).logits[0, :-1].double()
    return torch.log_softmax(logits, -1).gather(-1, x[0, 1:, None]).sum()


def dpo_oracle(lm, lm_ref, beta, prompt, chosen, rejected):
    tokenizer = gpt2_tokenizer()
    ids = [tokenizer.encode(ALPACA_TEMPLATE.format(prompt=prompt, response=r)) + [tokenizer.eos_token_id]
           for r in (chosen, rejected)]
    policy = sequence_log_prob(lm, ids[0]) - sequence_log_prob(lm, ids[1])
    reference = sequence_log_prob(lm_ref, ids[0]) - sequence_log_prob(lm_ref, ids[1])
    return -F.logsigmoid(beta * (policy - reference))


PAIR = ("The quick brown fox jumps over", "the lazy dog.", "their crazy frog.")


@pytest.mark.component("compute_per_instance_dpo_loss")
@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_per_instance_dpo_loss(impl, beta):
    """−log σ(β((log π(y_w) − log π(y_l)) − (log π_ref(y_w) − log π_ref(y_l)))) on Alpaca-formatted sequences with
    EOS, log-probs of every token after the first."""
    lm, lm_ref = tiny_llama(0), tiny_llama(1)
    got = impl.compute_per_instance_dpo_loss(lm, lm_ref, gpt2_tokenizer(), beta, *PAIR)
    assert got.numel() == 1
    torch.testing.assert_close(got.detach().double().reshape(()), dpo_oracle(lm, lm_ref, beta, *PAIR), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.component("compute_per_instance_dpo_loss")
def test_per_instance_dpo_loss_same_models(impl):
    """Policy equal to the reference: the margin is 0 and the loss log 2, whatever the responses."""
    got = impl.compute_per_instance_dpo_loss(tiny_llama(3), tiny_llama(3), gpt2_tokenizer(), 0.5, *PAIR).detach()
    assert abs(got.item() - math.log(2)) < 1e-5, got.item()


@pytest.mark.component("compute_per_instance_dpo_loss")
def test_per_instance_dpo_loss_gradient_reaches_the_policy_only(impl):
    """The loss is differentiable in the policy's parameters; the reference model receives no gradient."""
    lm, lm_ref = tiny_llama(0), tiny_llama(1)
    impl.compute_per_instance_dpo_loss(lm, lm_ref, gpt2_tokenizer(), 0.5, *PAIR).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in lm.parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in lm_ref.parameters())
