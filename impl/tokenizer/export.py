"""Export a Tokenizer to the fast peers: a tiktoken Encoding and an HF ``tokenizer.json``.

Both give the ids our ``encode`` gives (tests/kit/test_tokenizer_export.py checks it on the
embedded corpus and on generated text), so a tokenizer trained here can be used at tiktoken's
or HF tokenizers' speed. Where one special token starts with another, ``encode`` takes the
longest, and so does HF tokenizers (its added tokens match leftmost-longest); tiktoken takes the
first of its alternation, in an order we cannot set, so ``to_tiktoken`` refuses those it gets wrong.
"""

from __future__ import annotations

import json
import os

from impl.tokenizer.encoding import GPT2_PATTERN, Tokenizer, _to_text


def check_ids_follow_merge_order(tokenizer: Tokenizer) -> None:
    """tiktoken ranks tokens by id: exporting is exact only if merged tokens' ids rise with merge order."""
    merged_ids = [tokenizer.id_of[a + b] for a, b in tokenizer.merges]
    if any(later <= earlier for earlier, later in zip(merged_ids, merged_ids[1:])):
        raise ValueError("the vocabulary's ids do not follow the merge order: tiktoken would merge differently")
    if merged_ids and merged_ids[0] <= max(tokenizer.byte_ids):
        raise ValueError("a merged token has an id below a single byte's: tiktoken would merge differently")


def check_longest_special_first(tokenizer: Tokenizer, encoding) -> None:
    """tiktoken matches special tokens with an alternation ordered by its own hash map, not longest first.

    Where several specials start at one place, it takes the first of them in that order; ``encode``
    takes the longest. Each special encoded alone shows whether a shorter one that it starts with
    comes first: if none does for any special, the longest wins everywhere.
    """
    for special, i in tokenizer.special_ids.items():
        ids = encoding.encode(special, allowed_special="all")
        if ids != [i]:
            shorter = encoding.decode(ids[:1])
            raise ValueError(f"the special tokens {shorter!r} and {special!r} overlap, and tiktoken matches "
                             f"{shorter!r} first where encode takes the longer one: the ids would differ "
                             "(tiktoken does not match special tokens longest first; the HF export does)")


def to_tiktoken(tokenizer: Tokenizer, name: str = "cs336"):
    """A ``tiktoken.Encoding`` with our pre-tokenizer, ranks = our ids, and our special tokens.

    ValueError where its ids would differ from ``encode``'s: ids out of merge order, or overlapping
    special tokens that tiktoken does not match longest first.
    """
    import tiktoken

    check_ids_follow_merge_order(tokenizer)
    specials = set(tokenizer.special_ids.values())
    ranks = {token: i for i, token in tokenizer.vocab.items() if i not in specials}
    encoding = tiktoken.Encoding(name, pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                 special_tokens=tokenizer.special_ids)
    check_longest_special_first(tokenizer, encoding)
    return encoding


def write_hf_tokenizer_json(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """An HF ``tokenizer.json``: byte-level BPE with our merges, GPT-2 pre-tokenizer, specials as added tokens."""
    specials = set(tokenizer.special_ids.values())
    document = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": True} for s, i in tokenizer.special_ids.items()
        ],
        "normalizer": None,
        # ByteLevel with use_regex splits with GPT-2's pattern, then maps bytes to GPT-2's alphabet.
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            # Specials stay in the model's vocab too (as in GPT-2's own tokenizer.json): HF reassigns
            # the id of an added token that the model's vocab lacks.
            "vocab": {(token.decode() if i in specials else _to_text(token)): i for i, token in sorted(tokenizer.vocab.items())},
            "merges": [[_to_text(a), _to_text(b)] for a, b in tokenizer.merges],
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False)
