"""Correct variants: the reference with one component written another way that the course accepts.

The mirror image of the mutants (tests/kit/mutants/): each is code a student may rightly write, and which the
suite once failed. tests/kit/test_false_alarms.py runs the suite on each and requires no FAIL of it::

    python -m pytest tests/conformance --impl tests.kit.correct_variants:get_batch_to_device --component get_batch
"""

from __future__ import annotations

import torch

import impl as reference
from spec import COMPONENTS, Implementation
from tests.kit.mutants.common import reference_with
from tests.kit.mutants.scaling import power_law_curve_fit


def _get_batch_to_device(dataset, batch_size: int, context_length: int, device: str, rng=None):
    """No device check of its own: ``.to("cuda:99")`` raises AssertionError on a torch built without CUDA."""
    inputs, targets = reference.get_batch(dataset, batch_size, context_length, "cpu", rng)
    return inputs.to(device), targets.to(device)


def _get_batch_string_device(dataset, batch_size: int, context_length: int, device: str, rng=None):
    """nanoGPT's way: the device is the course's ``device: str`` and is read as one."""
    pinned = device.startswith("cuda")
    inputs, targets = reference.get_batch(dataset, batch_size, context_length, "cpu", rng)
    if pinned:
        inputs, targets = inputs.pin_memory(), targets.pin_memory()
    return inputs.to(device, non_blocking=pinned), targets.to(device, non_blocking=pinned)


class _DDPBucketedFloatLimit(reference.DDPBucketed):
    """The course's signature, ``bucket_size_mb: float``: None (the spec's "one bucket") is a TypeError."""

    def __init__(self, module: torch.nn.Module, bucket_size_mb: float):
        super().__init__(module, float(bucket_size_mb))


get_batch_to_device: Implementation = reference_with("get_batch", _get_batch_to_device, "variant get_batch_to_device")
get_batch_string_device: Implementation = reference_with("get_batch", _get_batch_string_device,
                                                         "variant get_batch_string_device")
ddp_bucketed_float_limit: Implementation = reference_with("DDPBucketed", _DDPBucketedFloatLimit,
                                                          "variant ddp_bucketed_float_limit")


class _TransformerLMCourseSignature(reference.TransformerLM):
    """The course's constructor: none of the A3 training API's model options (num_kv_heads, head_dim,
    tie_embeddings), which the kit's strict tests ask of TransformerLM."""

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int, rope_theta: float = 10000.0, device=None, dtype=None):
        super().__init__(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta, device=device,
                         dtype=dtype)


transformer_lm_course_signature: Implementation = reference_with("TransformerLM", _TransformerLMCourseSignature,
                                                                 "variant transformer_lm_course_signature")


# --------------------------------------------------------------------------------------------- data (A4)
# What a course participant typically writes for each filter: the plain patterns, the handout's own suggestions
# (detect_encoding without the meta tag, nltk-style tokens), and unseeded randomness. The course level must pass them.


def _extract_course_style(html_bytes: bytes) -> str | None:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    try:
        html = html_bytes.decode("utf-8")
    except UnicodeDecodeError:
        html = bytes_to_str(html_bytes, detect_encoding(html_bytes))
    return extract_plain_text(html) or None


def _language_course_style(text: str):
    """fastText's raw top-1 probability (it can exceed 1 by 1e-5) and a numpy score."""
    from impl.data.fasttext_model import model_at
    from impl.data.langid import default_language_model

    labels, scores = model_at(default_language_model()).model.predict(text.replace("\n", " "))
    return labels[0].replace("__label__", ""), scores[0]


def _classifier_course_style(task: str):
    """fastText loaded by path as the handout's models are, newlines replaced, the prefix stripped, fastText's numpy
    score as it comes (up to 1e-5 above 1)."""
    models = {}

    def classify(text: str):
        import fasttext

        from impl.data.classifiers import default_model

        if task not in models:
            models[task] = fasttext.load_model(str(default_model(task)))
        model = models[task]
        labels, scores = model.predict(text.replace("\n", " "))
        return labels[0].replace("__label__", ""), scores[0]

    return classify


def _subn(pattern: str, mask: str):
    import re

    return lambda text: re.subn(pattern, mask, text)


def _gopher_nltk_style(text: str) -> bool:
    """Words as nltk.word_tokenize gives them: punctuation and ellipses split off as tokens of their own."""
    import regex

    words = regex.findall(r"\.\.\.|\w+(?:'\w+)?|[^\w\s]", text)
    lines = text.splitlines()
    if not 50 <= len(words) <= 100_000:
        return False
    if not 3 <= sum(len(w) for w in words) / len(words) <= 10:
        return False
    if sum(line.endswith("...") for line in lines) > 0.3 * len(lines):
        return False
    return sum(any(c.isalpha() for c in w) for w in words) >= 0.8 * len(words)


def _exact_course_style(input_files, output_directory) -> None:
    """Text mode, lines compared with their newline, counts keyed by Python's hash()."""
    import collections
    import os

    counts = collections.Counter()
    for path in input_files:
        with open(path, encoding="utf-8") as f:
            counts.update(hash(line) for line in f)
    os.makedirs(output_directory, exist_ok=True)
    for path in input_files:
        with open(path, encoding="utf-8") as f, open(os.path.join(output_directory, os.path.basename(path)), "w",
                                                      encoding="utf-8") as out:
            out.writelines(line for line in f if counts[hash(line)] == 1)


def _minhash_course_style(input_files, num_hashes, num_bands, ngrams, jaccard_threshold, output_directory, *,
                          seed=None):
    """mmh3 with one seed per hash function, punctuation replaced by spaces, an unseeded random survivor."""
    import os
    import random
    import shutil
    import unicodedata

    import mmh3
    import regex

    def grams(path):
        with open(path, encoding="utf-8") as f:
            text = unicodedata.normalize("NFD", f.read().lower())
        text = regex.sub(r"\p{Mn}", "", regex.sub(r"\p{P}", " ", text))
        words = text.split()
        return {" ".join(words[i:i + ngrams]) for i in range(len(words) - ngrams + 1)} or ({" ".join(words)} - {""})

    sets = [grams(path) for path in input_files]
    signatures = [[min(mmh3.hash(g, k) for g in s) if s else k for k in range(num_hashes)] for s in sets]
    rows = num_hashes // num_bands
    parent = list(range(len(sets)))

    def find(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for band in range(num_bands):
        buckets = {}
        for i, signature in enumerate(signatures):
            buckets.setdefault(tuple(signature[band * rows:(band + 1) * rows]), []).append(i)
        for docs in buckets.values():
            for a in docs:
                for b in docs:
                    union = sets[a] | sets[b]
                    if a < b and union and len(sets[a] & sets[b]) / len(union) >= jaccard_threshold:
                        parent[find(a)] = find(b)
    clusters = {}
    for i in range(len(sets)):
        clusters.setdefault(find(i), []).append(i)
    keep = {random.choice(members) for members in clusters.values()}
    os.makedirs(output_directory, exist_ok=True)
    for i in keep:
        shutil.copyfile(input_files[i], os.path.join(output_directory, os.path.basename(input_files[i])))


COURSE_STYLE_DATA: dict[str, object] = {
    "extract_text_from_html_bytes": _extract_course_style,
    "identify_language": _language_course_style,
    "mask_emails": _subn(r"[\w.+-]+@[\w-]+\.[\w.-]+", "|||EMAIL_ADDRESS|||"),
    "mask_phone_numbers": _subn(r"\(?\d{3}\)?[-.\s]?\d{3}[-.\s]?\d{4}", "|||PHONE_NUMBER|||"),
    "mask_ips": _subn(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b", "|||IP_ADDRESS|||"),
    "classify_nsfw": _classifier_course_style("nsfw"),
    "classify_toxic_speech": _classifier_course_style("toxic"),
    "gopher_quality_filter": _gopher_nltk_style,
    "classify_quality": _classifier_course_style("quality"),
    "exact_line_deduplication": _exact_course_style,
    "minhash_deduplication": _minhash_course_style,
}
course_style_data: Implementation = Implementation(
    name="variant course_style_data", version=reference.__version__,
    members={name: getattr(reference, name) for name in COMPONENTS} | COURSE_STYLE_DATA)


# --------------------------------------------------------------------------------------------- alignment (A5)
# What a course participant typically writes: tensor · mask, a 0/1 integer mask, cross-entropy for the log-probs,
# the handout's assertions, tensors in the metadata, integers-only GSM8K parsing, N // m packed sequences, batches
# from a plain generator, DPO scored on the response tokens only (the prompt's share cancels). The course level must
# pass them.


def _tokenize_course_style(prompt_strs, output_strs, tokenizer):
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p in prompt_strs]
    outputs = [tokenizer.encode(o, add_special_tokens=False) for o in output_strs]
    length = max(len(p) + len(o) for p, o in zip(prompts, outputs))
    ids, mask = [], []
    for p, o in zip(prompts, outputs):
        pad = length - len(p) - len(o)
        ids.append(p + o + [tokenizer.pad_token_id] * pad)
        mask.append([0] * len(p) + [1] * len(o) + [0] * pad)
    ids, mask = torch.tensor(ids), torch.tensor(mask)
    return {"input_ids": ids[:, :-1], "labels": ids[:, 1:], "response_mask": mask[:, 1:]}  # an integer mask


def _entropy_course_style(logits):
    return -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)


def _log_probs_course_style(model, input_ids, labels, return_token_entropy=False):
    logits = model(input_ids).logits
    log_probs = -torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
    return {"log_probs": log_probs, "token_entropy": _entropy_course_style(logits) if return_token_entropy else None}


def _masked_mean_course_style(tensor, mask, dim=None):
    return (tensor * mask).sum(dim=dim) / mask.sum(dim=dim) if dim is not None else (tensor * mask).sum() / mask.sum()


def _masked_normalize_course_style(tensor, mask, normalize_constant=1.0, dim=None):
    return ((tensor * mask).sum(dim=dim) if dim is not None else (tensor * mask).sum()) / normalize_constant


def _sft_step_course_style(policy_log_probs, response_mask, gradient_accumulation_steps, normalize_constant=1.0):
    loss = -_masked_normalize_course_style(policy_log_probs, response_mask, normalize_constant, -1).mean()
    loss = loss / gradient_accumulation_steps
    loss.backward()
    return loss, {"loss": loss.detach()}


def _group_rewards_course_style(reward_fn, rollout_responses, repeated_ground_truths, group_size, advantage_eps,
                                normalize_by_std):
    raw = torch.tensor([reward_fn(r, g)["reward"] for r, g in zip(rollout_responses, repeated_ground_truths)])
    grouped = raw.reshape(-1, group_size)
    advantages = grouped - grouped.mean(-1, keepdim=True)
    if normalize_by_std:
        advantages = advantages / (grouped.std(-1, keepdim=True) + advantage_eps)
    return advantages.flatten(), raw, {"mean": raw.mean(), "std": raw.std()}  # tensors, not floats


def _grpo_clip_course_style(advantages, policy_log_probs, old_log_probs, cliprange):
    ratio = (policy_log_probs - old_log_probs).exp()
    lhs, rhs = ratio * advantages, ratio.clamp(1 - cliprange, 1 + cliprange) * advantages
    return -torch.min(lhs, rhs), {"clip_frac": (rhs < lhs).float().mean()}


def _policy_loss_course_style(policy_log_probs, loss_type, raw_rewards=None, advantages=None, old_log_probs=None,
                              cliprange=None):
    if loss_type == "no_baseline":
        assert raw_rewards is not None
        return -raw_rewards * policy_log_probs, {}
    if loss_type == "reinforce_with_baseline":
        assert advantages is not None
        return -advantages * policy_log_probs, {}
    assert loss_type == "grpo_clip" and advantages is not None and old_log_probs is not None and cliprange is not None
    return _grpo_clip_course_style(advantages, policy_log_probs, old_log_probs, cliprange)


def _grpo_step_course_style(policy_log_probs, response_mask, gradient_accumulation_steps, loss_type, raw_rewards=None,
                            advantages=None, old_log_probs=None, cliprange=None):
    per_token, metadata = _policy_loss_course_style(policy_log_probs, loss_type, raw_rewards, advantages,
                                                    old_log_probs, cliprange)
    loss = _masked_mean_course_style(per_token, response_mask, -1).mean() / gradient_accumulation_steps
    loss.backward()
    return loss, metadata


def _gsm8k_course_style(model_output):
    import re

    numbers = re.findall(r"\d+", model_output)
    return numbers[-1] if numbers else None


def _mmlu_course_style(mmlu_example, model_output):
    import re

    match = re.search(r"The correct answer is ([A-D])\b", model_output)
    return match.group(1) if match else None


class _PackedCourseStyle(torch.utils.data.Dataset):
    def __init__(self, tokenizer, dataset_path, seq_length, shuffle):
        import json
        import random

        with open(dataset_path) as f:
            docs = [json.loads(line) for line in f]
        if shuffle:
            random.shuffle(docs)
        template = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                    "the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n{response}")
        ids = []
        for doc in docs:
            ids += tokenizer.encode(template.format(**doc)) + [tokenizer.eos_token_id]
        self.ids, self.seq_length = torch.tensor(ids), seq_length

    def __len__(self):
        return len(self.ids) // self.seq_length

    def __getitem__(self, i):
        start = i * self.seq_length
        return {"input_ids": self.ids[start:start + self.seq_length],
                "labels": self.ids[start + 1:start + self.seq_length + 1]}


def _batches_course_style(dataset, batch_size, shuffle):
    import random

    order = list(range(len(dataset)))
    if shuffle:
        random.shuffle(order)
    for start in range(0, len(order), batch_size):
        items = [dataset[i] for i in order[start:start + batch_size]]
        yield {key: torch.stack([item[key] for item in items]) for key in items[0]}


def _dpo_course_style(lm, lm_ref, tokenizer, beta, prompt, response_chosen, response_rejected):
    """Scores only the response tokens (and the EOS): the prompt's log-probability cancels in the differences."""
    template = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
                "request.\n\n### Instruction:\n{prompt}\n\n### Response:\n")
    head = tokenizer.encode(template.format(prompt=prompt))

    def response_log_prob(model, response):
        ids = tokenizer.encode(template.format(prompt=prompt) + response) + [tokenizer.eos_token_id]
        x = torch.tensor([ids], device=next(model.parameters()).device)
        log_probs = torch.log_softmax(model(x).logits[0, :-1], -1).gather(-1, x[0, 1:, None]).squeeze(-1)
        return log_probs[len(head) - 1:].sum()

    with torch.no_grad():
        ref = response_log_prob(lm_ref, response_chosen) - response_log_prob(lm_ref, response_rejected)
    policy = response_log_prob(lm, response_chosen) - response_log_prob(lm, response_rejected)
    return -torch.nn.functional.logsigmoid(beta * (policy - ref.to(policy.device)))


COURSE_STYLE_ALIGNMENT: dict[str, object] = {
    "tokenize_prompt_and_output": _tokenize_course_style,
    "compute_entropy": _entropy_course_style,
    "get_response_log_probs": _log_probs_course_style,
    "masked_mean": _masked_mean_course_style,
    "masked_normalize": _masked_normalize_course_style,
    "sft_microbatch_train_step": _sft_step_course_style,
    "compute_group_normalized_rewards": _group_rewards_course_style,
    "compute_grpo_clip_loss": _grpo_clip_course_style,
    "compute_policy_gradient_loss": _policy_loss_course_style,
    "grpo_microbatch_train_step": _grpo_step_course_style,
    "parse_gsm8k_response": _gsm8k_course_style,
    "parse_mmlu_response": _mmlu_course_style,
    "PackedSFTDataset": _PackedCourseStyle,
    "iterate_batches": _batches_course_style,
    "compute_per_instance_dpo_loss": _dpo_course_style,
}
course_style_alignment: Implementation = Implementation(
    name="variant course_style_alignment", version=reference.__version__,
    members={name: getattr(reference, name) for name in COMPONENTS} | COURSE_STYLE_ALIGNMENT)


# --------------------------------------------------------------------------------------------- scaling (A3)
# The handout's problem as course participants write it: minima found with a dict of profiles, the power law fitted
# with scipy's curve_fit on N itself ("any curve fitting method you'd like"). The course level must pass them.


def _minima_course_style(runs, method="argmin"):
    import numpy as np

    profiles: dict[float, list[dict]] = {}
    for run in runs:
        profiles.setdefault(run["compute_budget"], []).append(run)
    budgets = sorted(profiles)
    n_opt = [min(profiles[c], key=lambda run: run["final_loss"])["parameters"] for c in budgets]
    return np.array(budgets), np.array(n_opt), np.array([c / (6 * n) for c, n in zip(budgets, n_opt)])


# curve_fit on N itself is a mutant at the strict level (tests/kit/mutants/scaling.py) and right at the course's.
COURSE_STYLE_SCALING: dict[str, object] = {"isoflop_minima": _minima_course_style,
                                           "fit_power_law": power_law_curve_fit}
course_style_scaling: Implementation = Implementation(
    name="variant course_style_scaling", version=reference.__version__,
    members={name: getattr(reference, name) for name in COMPONENTS} | COURSE_STYLE_SCALING)
