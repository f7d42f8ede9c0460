"""Decoding's mutants (spec/decode.py): temperature and top-p sampling, the generation loop.
"""

from __future__ import annotations

from functools import partial

import torch

import impl as reference
from tests.kit.mutants.common import Mutant


def _sample_variant(logits, temperature, top_p, generator=None, *, multiply=False, strict=False, tail_floor=0.0,
                    filter_untempered=False, ties_to_higher_id=False, input_dtype=False):
    """sample_next_token written out plainly from the spec, with knobs; each mutant below turns exactly one."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    v = logits if input_dtype else logits.float()
    if temperature == 0:
        return v.argmax(dim=-1)
    probs = reference.softmax(v * temperature if multiply else v / temperature, dim=-1)
    if top_p < 1:
        ranked = reference.softmax(v, dim=-1) if filter_untempered else probs  # V(p) chosen on these
        if ties_to_higher_id:  # sort the reversed vocabulary: among equal probabilities the higher id comes first
            sorted_probs, reversed_order = torch.sort(ranked.flip(-1), dim=-1, descending=True, stable=True)
            order = ranked.shape[-1] - 1 - reversed_order
        else:
            sorted_probs, order = torch.sort(ranked, dim=-1, descending=True, stable=True)
        total = sorted_probs.cumsum(dim=-1)
        before = torch.cat([torch.zeros_like(total[..., :1]), total[..., :-1]], dim=-1)
        keep_sorted = before < top_p
        if strict:  # only tokens whose running total stays below p, and the top one
            keep_sorted = total < top_p
            keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        probs = torch.where(keep, probs, tail_floor * probs)
    rows = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(rows, num_samples=1, generator=generator).reshape(probs.shape[:-1])


@torch.no_grad()
def _decode_variant(model, prompt, max_new_tokens, temperature=1.0, top_p=1.0, end_of_text_id=None, generator=None,
                    *, stop_at_end=True, keep_end=True, first_window=False, first_position=False, with_prompt=False,
                    eval_mode=True, restore=True):
    """decode written out plainly from the spec, with knobs; each mutant below turns exactly one."""
    if prompt.dim() != 1 or prompt.numel() == 0:
        raise ValueError(f"prompt must be a non-empty 1-D tensor, got shape {tuple(prompt.shape)}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must lie in (0, 1], got {top_p}")
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        ids = prompt.long()
        for _ in range(max_new_tokens):
            window = ids[:model.context_length] if first_window else ids[-model.context_length:]
            logits = model(window.unsqueeze(0))[0, 0 if first_position else -1]
            next_id = reference.sample_next_token(logits, temperature, top_p, generator).reshape(1)
            if end_of_text_id is not None and int(next_id) == end_of_text_id and stop_at_end:
                if keep_end:
                    ids = torch.cat([ids, next_id])
                break
            ids = torch.cat([ids, next_id])
        return ids if with_prompt else ids[len(prompt):]
    finally:
        if restore:
            model.train(was_training)


_sample_temperature_multiplies = partial(_sample_variant, multiply=True)
_sample_top_p_excludes_crossing_token = partial(_sample_variant, strict=True)
_sample_top_p_tail_floor = partial(_sample_variant, tail_floor=0.02)
_sample_top_p_before_temperature = partial(_sample_variant, filter_untempered=True)
_sample_ties_to_higher_id = partial(_sample_variant, ties_to_higher_id=True)
_sample_in_input_dtype = partial(_sample_variant, input_dtype=True)
_decode_ignores_end_of_text = partial(_decode_variant, stop_at_end=False)
_decode_drops_end_of_text = partial(_decode_variant, keep_end=False)
_decode_first_window = partial(_decode_variant, first_window=True)
_decode_first_position_logits = partial(_decode_variant, first_position=True)
_decode_returns_prompt = partial(_decode_variant, with_prompt=True)
_decode_in_train_mode = partial(_decode_variant, eval_mode=False)
_decode_leaves_eval_mode = partial(_decode_variant, restore=False)


MUTANTS: list[Mutant] = [
    Mutant("sample_temperature_multiplies", "sample_next_token", "softmax(v·τ) instead of softmax(v/τ)",
           _sample_temperature_multiplies),
    Mutant("sample_top_p_excludes_crossing_token", "sample_next_token", "V(p) stops before the token whose running "
           "total crosses p (only the top token is always kept)", _sample_top_p_excludes_crossing_token),
    Mutant("sample_top_p_tail_floor", "sample_next_token", "tokens outside V(p) keep 2% of their probability instead "
           "of 0, renormalized over the whole vocabulary", _sample_top_p_tail_floor),
    Mutant("sample_top_p_before_temperature", "sample_next_token", "V(p) chosen on softmax(v), not on the tempered "
           "softmax(v/τ) it samples from", _sample_top_p_before_temperature),
    Mutant("sample_ties_to_higher_id", "sample_next_token", "equal probabilities ranked higher id first when cutting "
           "V(p)", _sample_ties_to_higher_id),
    # strict: float32 sampling of 16-bit logits is the kit's convention
    Mutant("sample_in_input_dtype", "sample_next_token", "computed in the logits' dtype: fp16 v/τ overflows",
           _sample_in_input_dtype, level="strict"),
    Mutant("decode_ignores_end_of_text", "decode", "keeps generating after end_of_text_id", _decode_ignores_end_of_text),
    Mutant("decode_drops_end_of_text", "decode", "stops at end_of_text_id but leaves it out of the output",
           _decode_drops_end_of_text),
    Mutant("decode_first_window", "decode", "feeds the first context_length ids instead of the last",
           _decode_first_window),
    Mutant("decode_first_position_logits", "decode", "samples from the first position's logits, not the last's",
           _decode_first_position_logits),
    Mutant("decode_returns_prompt", "decode", "returns the prompt followed by the new ids", _decode_returns_prompt),
    # strict: eval mode under no_grad during decoding is the kit's convention
    Mutant("decode_in_train_mode", "decode", "runs the model in training mode (no eval())", _decode_in_train_mode, level="strict"),
    # strict: restoring model.training is the kit's convention
    Mutant("decode_leaves_eval_mode", "decode", "leaves the model in eval mode instead of restoring model.training",
           _decode_leaves_eval_mode, level="strict"),
]
