"""What the bridge's tests share (tests/kit/bridge/): the course-style adapters files they load or write, and a call
that uses each component (a stub file's must report it missing)."""

import ast
import inspect
from pathlib import Path

import numpy as np
import torch

KIT = Path(__file__).resolve().parents[1]
# Routes every course adapter to the reference: through the bridge it must behave exactly like the reference.
REFERENCE_ADAPTERS = KIT / "adapters_reference.py"
# Lacks one function and stubs another, which must come out *missing*, never failed.
PARTIAL_ADAPTERS = KIT / "adapters_partial.py"
BYTES_VOCAB = {i: bytes([i]) for i in range(256)}

# The current (2026) A2 adapters: those the 2025 ones (adapters_reference.py) lack or spell differently, with the
# course's signatures, routed to the reference.
A2_2026_CHANGED = """
def get_ddp(module: torch.nn.Module) -> torch.nn.Module:
    return impl.DDPIndividualParameters(module)


def ddp_on_after_backward(ddp_model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    ddp_model.finish_gradient_synchronization()


def get_fsdp(module: torch.nn.Module, compute_dtype: torch.dtype | None) -> torch.nn.Module:
    return impl.FSDP(module, compute_dtype)


def get_sharded_optimizer(params, optimizer_cls: type[torch.optim.Optimizer]) -> torch.optim.Optimizer:
    return impl.ShardedOptimizer(params, optimizer_cls)
"""
# ... and those it keeps from adapters_reference.py as they are.
A2_2026_KEPT = ("get_flashattention_autograd_function_pytorch", "get_flashattention_autograd_function_triton",
                "fsdp_on_after_backward", "fsdp_gather_full_params")
A2_2026_FUNCTIONS = (*A2_2026_KEPT, "get_ddp", "ddp_on_after_backward", "get_fsdp", "get_sharded_optimizer")


def a2_2026_adapters() -> str:
    """The source of a 2026 A2 adapters file (exactly A2_2026_FUNCTIONS) routed to the reference."""
    import tests.kit.adapters_reference as reference

    kept = "\n\n".join(inspect.getsource(getattr(reference, name)) for name in A2_2026_KEPT)
    imports = "from __future__ import annotations\n\nimport torch\n\nimport impl\n"
    return f"{imports}\n\n{kept}\n{A2_2026_CHANGED}"


def write_adapters(path: Path, source: str, stubs: tuple[str, ...] = ()) -> Path:
    """``source`` as an adapters file at ``path``, the functions named in ``stubs`` with the course stub's body."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in stubs:
            node.body = ast.parse("raise NotImplementedError").body
    path.write_text(ast.unparse(tree) + "\n")
    return path


STUB_CALLS = {  # component -> a call through the bridged bundle
    "train_bpe": lambda b: b.train_bpe("unused.txt", 300, ["<|endoftext|>"]),
    "Tokenizer": lambda b: b.Tokenizer(BYTES_VOCAB, []).encode("unused"),
    "Linear": lambda b: b.Linear(4, 3)(torch.randn(2, 4)),
    "Embedding": lambda b: b.Embedding(10, 4)(torch.tensor([1, 2])),
    "RMSNorm": lambda b: b.RMSNorm(4)(torch.randn(2, 4)),
    "silu": lambda b: b.silu(torch.randn(3)),
    "SwiGLU": lambda b: b.SwiGLU(4, 8)(torch.randn(2, 4)),
    "RotaryEmbedding": lambda b: b.RotaryEmbedding(1e4, 4, 8)(torch.randn(3, 4), torch.arange(3)),
    "softmax": lambda b: b.softmax(torch.randn(3), 0),
    "scaled_dot_product_attention": lambda b: b.scaled_dot_product_attention(*torch.randn(3, 2, 5, 4)),
    "MultiHeadSelfAttention": lambda b: b.MultiHeadSelfAttention(8, 2)(torch.randn(1, 3, 8)),
    "TransformerBlock": lambda b: b.TransformerBlock(8, 2, 16, b.RotaryEmbedding(1e4, 4, 8))(torch.randn(1, 3, 8)),
    "TransformerLM": lambda b: b.TransformerLM(10, 8, 8, 1, 2, 16)(torch.tensor([[1, 2, 3]])),
    "cross_entropy": lambda b: b.cross_entropy(torch.randn(2, 5), torch.tensor([0, 4])),
    "AdamW": lambda b: b.AdamW([torch.nn.Parameter(torch.zeros(2))]),
    "lr_cosine_schedule": lambda b: b.lr_cosine_schedule(3, 1.0, 0.1, 2, 10),
    "clip_gradients": lambda b: b.clip_gradients([], 1.0),
    "get_batch": lambda b: b.get_batch(np.arange(20), 2, 4, "cpu"),
    "save_checkpoint": lambda b: b.save_checkpoint(torch.nn.Linear(2, 2), None, 0, "unused.pt"),
    "load_checkpoint": lambda b: b.load_checkpoint("unused.pt", torch.nn.Linear(2, 2), None),
    "FlashAttentionPyTorch": lambda b: b.FlashAttentionPyTorch.apply(*torch.randn(3, 1, 16, 16)),
    "FlashAttentionTriton": lambda b: b.FlashAttentionTriton.apply(*torch.randn(3, 1, 16, 16)),
    "FSDP": lambda b: b.FSDP(torch.nn.Linear(2, 2)),
    "DDPIndividualParameters": lambda b: b.DDPIndividualParameters(torch.nn.Linear(2, 2)),
    "DDPBucketed": lambda b: b.DDPBucketed(torch.nn.Linear(2, 2), 1.0),
    "ShardedOptimizer": lambda b: b.ShardedOptimizer([torch.nn.Parameter(torch.zeros(2))], torch.optim.SGD, lr=0.1),
    "extract_text_from_html_bytes": lambda b: b.extract_text_from_html_bytes(b"<p>unused</p>"),
    "identify_language": lambda b: b.identify_language("unused"),
    "mask_emails": lambda b: b.mask_emails("unused"),
    "mask_phone_numbers": lambda b: b.mask_phone_numbers("unused"),
    "mask_ips": lambda b: b.mask_ips("unused"),
    "classify_nsfw": lambda b: b.classify_nsfw("unused"),
    "classify_toxic_speech": lambda b: b.classify_toxic_speech("unused"),
    "gopher_quality_filter": lambda b: b.gopher_quality_filter("unused"),
    "classify_quality": lambda b: b.classify_quality("unused"),
    "exact_line_deduplication": lambda b: b.exact_line_deduplication(["unused.txt"], "unused"),
    "minhash_deduplication": lambda b: b.minhash_deduplication(["unused.txt"], 10, 5, 2, 0.8, "unused"),
    "tokenize_prompt_and_output": lambda b: b.tokenize_prompt_and_output(["a"], ["b"], None),
    "compute_entropy": lambda b: b.compute_entropy(torch.randn(2, 3, 5)),
    "get_response_log_probs": lambda b: b.get_response_log_probs(None, torch.zeros(1, 2, dtype=torch.long),
                                                                 torch.zeros(1, 2, dtype=torch.long)),
    "masked_mean": lambda b: b.masked_mean(torch.randn(2, 3), torch.ones(2, 3, dtype=torch.bool)),
    "masked_normalize": lambda b: b.masked_normalize(torch.randn(2, 3), torch.ones(2, 3, dtype=torch.bool), 2.0),
    "sft_microbatch_train_step": lambda b: b.sft_microbatch_train_step(torch.randn(2, 3), torch.ones(2, 3), 1),
    "compute_group_normalized_rewards": lambda b: b.compute_group_normalized_rewards(
        lambda r, g: {"reward": 1.0}, ["a", "b"], ["x", "x"], 2, 1e-6, True),
    "compute_naive_policy_gradient_loss": lambda b: b.compute_naive_policy_gradient_loss(torch.ones(2, 1),
                                                                                         torch.randn(2, 3)),
    "compute_grpo_clip_loss": lambda b: b.compute_grpo_clip_loss(torch.ones(2, 1), torch.randn(2, 3),
                                                                 torch.randn(2, 3), 0.2),
    "compute_policy_gradient_loss": lambda b: b.compute_policy_gradient_loss(torch.randn(2, 3), "no_baseline",
                                                                             torch.ones(2, 1)),
    "grpo_microbatch_train_step": lambda b: b.grpo_microbatch_train_step(torch.randn(2, 3), torch.ones(2, 3), 1,
                                                                         "no_baseline", torch.ones(2, 1)),
    "parse_gsm8k_response": lambda b: b.parse_gsm8k_response("unused 1"),
    "parse_mmlu_response": lambda b: b.parse_mmlu_response({}, "The correct answer is A"),
    "PackedSFTDataset": lambda b: b.PackedSFTDataset(None, "unused.jsonl", 8, False),
    "iterate_batches": lambda b: b.iterate_batches([], 2, False),
    "compute_per_instance_dpo_loss": lambda b: b.compute_per_instance_dpo_loss(None, None, None, 0.1, "p", "c", "r"),
}
