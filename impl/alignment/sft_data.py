"""Packed instruction-tuning data (supplement §3.2.1): Alpaca-formatted documents, each with its special tokens and
an EOS, concatenated and cut into consecutive sequences of a fixed length; one epoch of batches over them."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from spec.alignment import ALPACA_TEMPLATE



def read_jsonl(path: str | os.PathLike) -> list[dict]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(Path(path), "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class PackedSFTDataset(Dataset):
    def __init__(self, tokenizer, dataset_path: str | os.PathLike, seq_length: int, shuffle: bool):
        if seq_length < 1:
            raise ValueError(f"seq_length must be positive, got {seq_length}")
        documents = read_jsonl(dataset_path)
        if shuffle:
            random.shuffle(documents)
        tokens: list[int] = []
        for doc in documents:
            tokens += tokenizer.encode(ALPACA_TEMPLATE.format(prompt=doc["prompt"], response=doc["response"]))
            tokens.append(tokenizer.eos_token_id)
        self.tokens = torch.tensor(tokens, dtype=torch.long)
        self.seq_length = seq_length

    def __len__(self) -> int:
        return max(0, (len(self.tokens) - 1) // self.seq_length)  # the labels need one token past the last chunk

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} sequences")
        start = (i % len(self)) * self.seq_length
        return {"input_ids": self.tokens[start:start + self.seq_length],
                "labels": self.tokens[start + 1:start + self.seq_length + 1]}


def iterate_batches(dataset, batch_size: int, shuffle: bool):
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)
