"""A course-style ``adapters.py`` that routes every function to the reference implementation.

It has the exact signatures of the course's ``tests/adapters.py`` (assignment1-basics, plus
assignment2-systems' two FlashAttention-2 getters and its DDP, sharded-optimizer and FSDP adapters, and
assignment4-data's filtering and deduplication adapters, assignment5-alignment's SFT, GRPO, parsing, packed-data and
DPO adapters) and,
like a student's file, only glue: build the reference module, load the given weights,
call it. The kit's own tests use it to check the adapters bridge
(``--impl adapters:tests/kit/adapters_reference.py`` must pass the conformance suite, less
what adapters cannot show).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import numpy.typing as npt
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

import impl

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def _like(weights: Tensor) -> dict[str, Any]:
    """Build the module on the weights' device and dtype, so that loading them changes neither."""
    return {"device": weights.device, "dtype": weights.dtype}


def run_linear(d_in: int, d_out: int, weights: Float[Tensor, " d_out d_in"],
               in_features: Float[Tensor, " ... d_in"]) -> Float[Tensor, " ... d_out"]:
    linear = impl.Linear(d_in, d_out, **_like(weights))
    linear.load_state_dict({"weight": weights})
    return linear(in_features)


def run_embedding(vocab_size: int, d_model: int, weights: Float[Tensor, " vocab_size d_model"],
                  token_ids: Int[Tensor, " ..."]) -> Float[Tensor, " ... d_model"]:
    embedding = impl.Embedding(vocab_size, d_model, **_like(weights))
    embedding.load_state_dict({"weight": weights})
    return embedding(token_ids)


def run_swiglu(d_model: int, d_ff: int, w1_weight: Float[Tensor, " d_ff d_model"],
               w2_weight: Float[Tensor, " d_model d_ff"], w3_weight: Float[Tensor, " d_ff d_model"],
               in_features: Float[Tensor, " ... d_model"]) -> Float[Tensor, " ... d_model"]:
    swiglu = impl.SwiGLU(d_model, d_ff, **_like(w1_weight))
    swiglu.load_state_dict({"w1.weight": w1_weight, "w2.weight": w2_weight, "w3.weight": w3_weight})
    return swiglu(in_features)


def run_scaled_dot_product_attention(
    Q: Float[Tensor, " ... queries d_k"],
    K: Float[Tensor, " ... keys d_k"],
    V: Float[Tensor, " ... values d_v"],
    mask: Bool[Tensor, " ... queries keys"] | None = None,
) -> Float[Tensor, " ... queries d_v"]:
    return impl.scaled_dot_product_attention(Q, K, V, mask)


def _attention(d_model: int, num_heads: int, rope: impl.RotaryEmbedding | None, q_proj_weight: Tensor,
               k_proj_weight: Tensor, v_proj_weight: Tensor, o_proj_weight: Tensor) -> impl.MultiHeadSelfAttention:
    attention = impl.MultiHeadSelfAttention(d_model, num_heads, rope, **_like(q_proj_weight))
    attention.load_state_dict({"q_proj.weight": q_proj_weight, "k_proj.weight": k_proj_weight,
                               "v_proj.weight": v_proj_weight, "output_proj.weight": o_proj_weight})
    return attention


def run_multihead_self_attention(
    d_model: int,
    num_heads: int,
    q_proj_weight: Float[Tensor, " d_k d_in"],
    k_proj_weight: Float[Tensor, " d_k d_in"],
    v_proj_weight: Float[Tensor, " d_v d_in"],
    o_proj_weight: Float[Tensor, " d_model d_v"],
    in_features: Float[Tensor, " ... sequence_length d_in"],
) -> Float[Tensor, " ... sequence_length d_out"]:
    attention = _attention(d_model, num_heads, None, q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight)
    return attention(in_features)


def run_multihead_self_attention_with_rope(
    d_model: int,
    num_heads: int,
    max_seq_len: int,
    theta: float,
    q_proj_weight: Float[Tensor, " d_k d_in"],
    k_proj_weight: Float[Tensor, " d_k d_in"],
    v_proj_weight: Float[Tensor, " d_v d_in"],
    o_proj_weight: Float[Tensor, " d_model d_v"],
    in_features: Float[Tensor, " ... sequence_length d_in"],
    token_positions: Int[Tensor, " ... sequence_length"] | None = None,
) -> Float[Tensor, " ... sequence_length d_out"]:
    if d_model % num_heads:  # before building RoPE, so that the error names the real cause
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    rope = impl.RotaryEmbedding(theta, d_model // num_heads, max_seq_len, device=in_features.device)
    attention = _attention(d_model, num_heads, rope, q_proj_weight, k_proj_weight, v_proj_weight, o_proj_weight)
    return attention(in_features, token_positions)


def run_rope(d_k: int, theta: float, max_seq_len: int, in_query_or_key: Float[Tensor, " ... sequence_length d_k"],
             token_positions: Int[Tensor, " ... sequence_length"]) -> Float[Tensor, " ... sequence_length d_k"]:
    rope = impl.RotaryEmbedding(theta, d_k, max_seq_len, device=in_query_or_key.device)
    return rope(in_query_or_key, token_positions)


def run_transformer_block(d_model: int, num_heads: int, d_ff: int, max_seq_len: int, theta: float,
                          weights: dict[str, Tensor],
                          in_features: Float[Tensor, " batch sequence_length d_model"],
                          ) -> Float[Tensor, " batch sequence_length d_model"]:
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    weight = weights["attn.q_proj.weight"]
    rope = impl.RotaryEmbedding(theta, d_model // num_heads, max_seq_len, device=weight.device)
    block = impl.TransformerBlock(d_model, num_heads, d_ff, rope, **_like(weight))
    block.load_state_dict(weights)
    return block(in_features)


def run_transformer_lm(vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int, d_ff: int,
                       rope_theta: float, weights: dict[str, Tensor],
                       in_indices: Int[Tensor, " batch_size sequence_length"],
                       ) -> Float[Tensor, " batch_size sequence_length vocab_size"]:
    model = impl.TransformerLM(vocab_size, context_length, d_model, num_layers, num_heads, d_ff, rope_theta,
                               **_like(weights["lm_head.weight"]))
    model.load_state_dict(weights)
    return model(in_indices)


def run_rmsnorm(d_model: int, eps: float, weights: Float[Tensor, " d_model"],
                in_features: Float[Tensor, " ... d_model"]) -> Float[Tensor, " ... d_model"]:
    norm = impl.RMSNorm(d_model, eps, **_like(weights))
    norm.load_state_dict({"weight": weights})
    return norm(in_features)


def run_silu(in_features: Float[Tensor, " ..."]) -> Float[Tensor, " ..."]:
    return impl.silu(in_features)


def run_get_batch(dataset: npt.NDArray, batch_size: int, context_length: int, device: str
                  ) -> tuple[Tensor, Tensor]:
    return impl.get_batch(dataset, batch_size, context_length, device)


def run_softmax(in_features: Float[Tensor, " ..."], dim: int) -> Float[Tensor, " ..."]:
    return impl.softmax(in_features, dim)


def run_cross_entropy(inputs: Float[Tensor, " batch_size vocab_size"], targets: Int[Tensor, " batch_size"]
                      ) -> Float[Tensor, ""]:
    return impl.cross_entropy(inputs, targets)


def run_gradient_clipping(parameters: Iterable[torch.nn.Parameter], max_l2_norm: float) -> None:
    impl.clip_gradients(parameters, max_l2_norm)


def get_adamw_cls() -> type[torch.optim.Optimizer]:
    return impl.AdamW


def run_get_lr_cosine_schedule(it: int, max_learning_rate: float, min_learning_rate: float, warmup_iters: int,
                               cosine_cycle_iters: int):
    return impl.lr_cosine_schedule(it, max_learning_rate, min_learning_rate, warmup_iters, cosine_cycle_iters)


def run_save_checkpoint(model: torch.nn.Module, optimizer: torch.optim.Optimizer, iteration: int,
                        out: str | os.PathLike | BinaryIO | IO[bytes]):
    impl.save_checkpoint(model, optimizer, iteration, out)


def run_load_checkpoint(src: str | os.PathLike | BinaryIO | IO[bytes], model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> int:
    return impl.load_checkpoint(src, model, optimizer)


def get_tokenizer(vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]], special_tokens: list[str] | None = None
                  ) -> Any:
    return impl.Tokenizer(vocab, merges, special_tokens)


def run_train_bpe(input_path: str | os.PathLike, vocab_size: int, special_tokens: list[str], **kwargs
                  ) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    return impl.train_bpe(input_path, vocab_size, special_tokens, **kwargs)


def get_flashattention_autograd_function_pytorch() -> type:
    return impl.FlashAttentionPyTorch


def get_flashattention_autograd_function_triton() -> type:
    return impl.FlashAttentionTriton


def get_ddp_individual_parameters(module: torch.nn.Module) -> torch.nn.Module:
    return impl.DDPIndividualParameters(module)


def ddp_individual_parameters_on_after_backward(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    ddp_model.finish_gradient_synchronization()


def get_ddp_bucketed(module: torch.nn.Module, bucket_size_mb: float) -> torch.nn.Module:
    return impl.DDPBucketed(module, bucket_size_mb)


def ddp_bucketed_on_after_backward(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    ddp_model.finish_gradient_synchronization()


def ddp_bucketed_on_train_batch_start(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer):
    pass  # the reference resets its buckets itself when a step's synchronization finishes


def get_sharded_optimizer(params, optimizer_cls: type[torch.optim.Optimizer], **kwargs) -> torch.optim.Optimizer:
    return impl.ShardedOptimizer(params, optimizer_cls, **kwargs)


def get_fsdp(module: torch.nn.Module, compute_dtype: torch.dtype | None = None) -> torch.nn.Module:
    return impl.FSDP(module, compute_dtype)


def fsdp_on_after_backward(fsdp_model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    fsdp_model.finish_gradient_synchronization()


def fsdp_gather_full_params(fsdp_model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return fsdp_model.full_state_dict()


def run_extract_text_from_html_bytes(html_bytes: bytes) -> str | None:
    return impl.extract_text_from_html_bytes(html_bytes)


def run_identify_language(text: str) -> tuple[Any, float]:
    return impl.identify_language(text)


def run_mask_emails(text: str) -> tuple[str, int]:
    return impl.mask_emails(text)


def run_mask_phone_numbers(text: str) -> tuple[str, int]:
    return impl.mask_phone_numbers(text)


def run_mask_ips(text: str) -> tuple[str, int]:
    return impl.mask_ips(text)


def run_classify_nsfw(text: str) -> tuple[Any, float]:
    return impl.classify_nsfw(text)


def run_classify_toxic_speech(text: str) -> tuple[Any, float]:
    return impl.classify_toxic_speech(text)


def run_classify_quality(text: str) -> tuple[Any, float]:
    return impl.classify_quality(text)


def run_gopher_quality_filter(text: str) -> bool:
    return impl.gopher_quality_filter(text)


def run_exact_line_deduplication(input_files: list[os.PathLike], output_directory: os.PathLike):
    return impl.exact_line_deduplication(input_files, output_directory)


def run_minhash_deduplication(input_files: list[os.PathLike], num_hashes: int, num_bands: int, ngrams: int,
                              jaccard_threshold: float, output_directory: os.PathLike):
    return impl.minhash_deduplication(input_files, num_hashes, num_bands, ngrams, jaccard_threshold, output_directory)


def run_tokenize_prompt_and_output(prompt_strs: list[str], output_strs: list[str],
                                   tokenizer: PreTrainedTokenizerBase) -> dict[str, Tensor]:
    return impl.tokenize_prompt_and_output(prompt_strs, output_strs, tokenizer)


def run_compute_group_normalized_rewards(
    reward_fn: Callable[[str, str], dict[str, float]], rollout_responses: list[str],
    repeated_ground_truths: list[str], group_size: int, advantage_eps: float, normalize_by_std: bool,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    return impl.compute_group_normalized_rewards(reward_fn, rollout_responses, repeated_ground_truths, group_size,
                                                 advantage_eps, normalize_by_std)


def run_compute_entropy(logits: torch.Tensor) -> torch.Tensor:
    return impl.compute_entropy(logits)


def run_get_response_log_probs(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor,
                               return_token_entropy: bool) -> dict[str, torch.Tensor]:
    return impl.get_response_log_probs(model, input_ids, labels, return_token_entropy)


def run_compute_naive_policy_gradient_loss(raw_rewards_or_advantages: torch.Tensor,
                                           policy_log_probs: torch.Tensor) -> torch.Tensor:
    return impl.compute_naive_policy_gradient_loss(raw_rewards_or_advantages, policy_log_probs)


def run_compute_grpo_clip_loss(advantages: torch.Tensor, policy_log_probs: torch.Tensor, old_log_probs: torch.Tensor,
                               cliprange: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return impl.compute_grpo_clip_loss(advantages, policy_log_probs, old_log_probs, cliprange)


def run_compute_policy_gradient_loss(policy_log_probs: torch.Tensor, loss_type: str,
                                     raw_rewards: torch.Tensor | None = None, advantages: torch.Tensor | None = None,
                                     old_log_probs: torch.Tensor | None = None,
                                     cliprange: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return impl.compute_policy_gradient_loss(policy_log_probs, loss_type, raw_rewards, advantages, old_log_probs,
                                             cliprange)


def run_masked_mean(tensor: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return impl.masked_mean(tensor, mask, dim)


def run_sft_microbatch_train_step(policy_log_probs: torch.Tensor, response_mask: torch.Tensor,
                                  gradient_accumulation_steps: int,
                                  normalize_constant: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return impl.sft_microbatch_train_step(policy_log_probs, response_mask, gradient_accumulation_steps,
                                          normalize_constant)


def run_grpo_microbatch_train_step(policy_log_probs: torch.Tensor, response_mask: torch.Tensor,
                                   gradient_accumulation_steps: int, loss_type: str,
                                   raw_rewards: torch.Tensor | None = None, advantages: torch.Tensor | None = None,
                                   old_log_probs: torch.Tensor | None = None,
                                   cliprange: float | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    return impl.grpo_microbatch_train_step(policy_log_probs, response_mask, gradient_accumulation_steps, loss_type,
                                           raw_rewards, advantages, old_log_probs, cliprange)


def run_masked_normalize(tensor: torch.Tensor, mask: torch.Tensor, dim: int | None = None,
                         normalize_constant: float = 1.0) -> torch.Tensor:
    return impl.masked_normalize(tensor, mask, normalize_constant, dim)


def get_packed_sft_dataset(tokenizer: PreTrainedTokenizerBase, dataset_path: str | os.PathLike, seq_length: int,
                           shuffle: bool) -> torch.utils.data.Dataset:
    return impl.PackedSFTDataset(tokenizer, dataset_path, seq_length, shuffle)


def run_iterate_batches(dataset: torch.utils.data.Dataset, batch_size: int, shuffle: bool):
    return impl.iterate_batches(dataset, batch_size, shuffle)


def run_parse_mmlu_response(mmlu_example: dict[str, Any], model_output: str) -> str | None:
    return impl.parse_mmlu_response(mmlu_example, model_output)


def run_parse_gsm8k_response(model_output: str) -> str | None:
    return impl.parse_gsm8k_response(model_output)


def run_compute_per_instance_dpo_loss(lm: torch.nn.Module, lm_ref: torch.nn.Module,
                                      tokenizer: PreTrainedTokenizerBase, beta: float, prompt: str,
                                      response_chosen: str, response_rejected: str) -> torch.Tensor:
    return impl.compute_per_instance_dpo_loss(lm, lm_ref, tokenizer, beta, prompt, response_chosen, response_rejected)
