"""The byte-level BPE tokenizer (A1 §2; spec/tokenizer.py): training, encoding, exports to tiktoken and HF."""

from impl.tokenizer.encoding import Tokenizer
from impl.tokenizer.training import train_bpe

__all__ = ["train_bpe", "Tokenizer"]
