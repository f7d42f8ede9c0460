"""The LM head and the cross-entropy as one operation that never holds the (tokens × vocabulary) logits.

cross_entropy(lm_head(h), targets) keeps the logits of every token for the backward: at GPT-2 small's batch (32 ×
1024 tokens, 50,257 words) that is 3.3 GB in bfloat16, and the loss reads and writes them several times more in
float32. ``linear_cross_entropy`` goes through the tokens in chunks, as Liger-Kernel's fused linear cross-entropy
does: each chunk's logits (h_c Wᵀ), their log-sum-exp and loss, and at once the gradient of the mean loss with
respect to them, (softmax − one-hot) / N, which gives the chunk's dh and its share of dW; then the chunk's logits
are gone. The backward only scales the gradients the forward computed. The arithmetic is cross_entropy's
(impl.train: a max-shifted log-sum-exp in float32) and, under autocast, the matmuls' precision is the LM head's.
On a GPU (or under TRITON_INTERPRET=1, for the CPU tests) a Triton kernel takes each chunk's logits row by row:
one pass for the log-sum-exp (online, a block at a time, as FlashAttention's softmax) and one that writes the
gradient over the logits in place, two reads and one write of the chunk in its compute dtype. Elsewhere the same
arithmetic in PyTorch, which torch.compile fuses into a few passes over the chunk.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor, nn

CHUNK_ELEMENTS = 2**28  # logits per chunk at most: 1 GiB in float32, whatever the vocabulary
VOCAB_ALIGNMENT = 64  # words: 128 bytes of a logit row in bfloat16
LOG2E = tl.constexpr(1.4426950408889634)  # the kernel's exponentials are exp2: exp(x) = 2^(x log₂e)
LANE = tl.constexpr(8)  # consecutive words a lane of the kernel takes: 16 bytes in bfloat16


def default_chunk_rows(vocab_size: int) -> int:
    """The largest power of two of rows whose logits fit in CHUNK_ELEMENTS. A power of two, not the quotient itself:
    at GPT-2's vocabulary the quotient, 5341 rows, sent each chunk's product to a slower sm80 GEMM on an H200 (0.90
    ms against 0.62 for 4096 rows), and a power of two divides the usual token counts into equal chunks."""
    return 1 << max(0, (CHUNK_ELEMENTS // vocab_size).bit_length() - 1)


@triton.jit
def softmax_gradient_kernel(LOGITS, TARGETS, LOSSES, n_words, width, row_stride, scale, WRITE_GRADIENT: tl.constexpr,
                            BLOCK: tl.constexpr, N_FULL: tl.constexpr, N_BLOCKS: tl.constexpr):
    """Row r of LOGITS, its first n_words entries (the rest, to width, are padding words outside the softmax):
    LOSSES[r] = logsumexp − logit of the target, in float32; with WRITE_GRADIENT the row overwritten by
    (softmax − one-hot) · scale, 0 at the padding. A block of BLOCK words is taken as (BLOCK / LANE, LANE): LANE
    consecutive words a lane. Blocks 0 … N_FULL − 1 hold only words, so they go unmasked; N_BLOCKS (width / BLOCK,
    rounded up) counts the rest. Both are compile-time constants: Triton 3.6's interpreter cannot loop to a runtime
    bound under numpy ≥ 2.4."""
    row = tl.program_id(0)
    logits = LOGITS + row.to(tl.int64) * row_stride
    offsets = tl.arange(0, BLOCK // LANE)[:, None] * LANE + tl.arange(0, LANE)[None, :]
    # Pass 1: per lane, the running max m and the sum s of exp(x − m) (online softmax); the sum is rescaled once a
    # block, after the lane's max over its LANE words: one exponential a word. exp(y) as exp2(y log₂e), y first.
    m = tl.full([BLOCK // LANE], float("-inf"), dtype=tl.float32)
    s = tl.zeros([BLOCK // LANE], dtype=tl.float32)
    for i in range(N_BLOCKS):
        x = load_block(logits, i * BLOCK + offsets, n_words, width, i < N_FULL)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        # A lane that has seen only padding has m = −inf and s = 0; it rescales by a finite stand-in, since
        # −inf − (−inf) is nan.
        m_finite = tl.where(m_new == float("-inf"), 0.0, m_new)
        s = s * tl.math.exp2((m - m_finite) * LOG2E) + tl.sum(tl.math.exp2((x - m_finite[:, None]) * LOG2E), axis=1)
        m = m_new
    row_max = tl.max(m, axis=0)  # finite: word 0 is a real word
    # log Σ exp(x − max), kept apart from the max: x − max is exact where x − (max + log Σ) would round at |x| ≫ 1
    log_normalizer = tl.log(tl.sum(s * tl.math.exp2((m - row_max) * LOG2E), axis=0))
    target = tl.load(TARGETS + row)
    tl.store(LOSSES + row, log_normalizer - (tl.load(logits + target).to(tl.float32) - row_max))
    if WRITE_GRADIENT:  # pass 2, after the target's logit is read
        log2_normalizer = log_normalizer * LOG2E
        for i in range(N_BLOCKS):
            offs = i * BLOCK + offsets
            x = load_block(logits, offs, n_words, width, i < N_FULL)
            softmax = tl.math.exp2(tl.fma(x - row_max, LOG2E, -log2_normalizer))  # 0 at the padding
            grad = tl.fma(softmax, scale, -tl.where(offs == target, scale, 0.0))  # (softmax − one-hot) · scale
            tl.store(logits + offs, grad.to(LOGITS.dtype.element_ty), mask=offs < width)


@triton.jit
def load_block(logits, offs, n_words, width, ONLY_WORDS):
    """The logits at offs in float32, −inf at the padding words. A block of ONLY_WORDS loads
    unmasked; otherwise masked to the row's width, a multiple of 16 words, and only then to its words: a mask at
    n_words (GPT-2's 50,257) makes every load a single 16-bit one (tests/programs/test_hopper_compile.py)."""
    if ONLY_WORDS:
        x = tl.load(logits + offs).to(tl.float32)
    else:
        x = tl.load(logits + offs, mask=offs < width, other=float("-inf")).to(tl.float32)
        x = tl.where(offs < n_words, x, float("-inf"))
    return x


INTERPRETED = not isinstance(softmax_gradient_kernel, triton.runtime.JITFunction)  # TRITON_INTERPRET=1 at import
INTERPRETED_BLOCK_WORDS = 128  # so that the CPU tests see 1-3 blocks a row


def block_and_warps(width: int) -> tuple[int, int]:
    """A program's block of a row, in words, and its warps. At GPT-2's (4096, 50304) bfloat16 chunk on an H200, 8192
    words on 16 warps (16 words a thread) took 273 µs, 4.5 TB/s for two reads and one write; 2048 on 8 warps took 339
    and 4096 on 16 took 290 (bench/results/h200-lm-step-mfu45.md). Rows of fewer than 4 such blocks (TinyStories'
    10,000 words) keep the 2048 on 8 warps that were timed there: a last block mostly padding was not."""
    if INTERPRETED:
        return INTERPRETED_BLOCK_WORDS, 1  # warps mean nothing to the interpreter
    return (8192, 16) if width >= 4 * 8192 else (2048, 8)


@torch.library.custom_op("cs336::softmax_cross_entropy_gradient_", mutates_args=("logits",))
def softmax_gradient_(logits: Tensor, targets: Tensor, n_words: int, scale: float, write_gradient: bool) -> Tensor:
    """Each row's loss (float32, (rows,)); with write_gradient, ``logits`` (rows, width ≥ n_words) overwritten by
    the gradient of scale × the summed loss with respect to them. One Triton program a row (softmax_gradient_kernel)."""
    rows, width = logits.shape
    losses = torch.empty(rows, dtype=torch.float32, device=logits.device)
    block, warps = block_and_warps(width)
    softmax_gradient_kernel[(rows,)](logits, targets, losses, n_words, width, logits.stride(0), scale,
                                     WRITE_GRADIENT=write_gradient, BLOCK=block, N_FULL=n_words // block,
                                     N_BLOCKS=triton.cdiv(width, block), num_warps=warps)
    return losses


@softmax_gradient_.register_fake
def _(logits, targets, n_words, scale, write_gradient):
    return logits.new_empty(logits.shape[0], dtype=torch.float32)


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, chunk_rows: int) -> Tensor:
        rows = hidden.shape[0]
        wants_gradients = any(ctx.needs_input_grad[:2])  # not under no_grad (evaluation): the loss alone
        compute_dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(
            hidden.device.type) else hidden.dtype
        # The matmuls below run outside autocast in its dtype, as the LM head's would under it.
        with torch.autocast(hidden.device.type, enabled=False):
            vocab = weight.shape[0]
            # The vocabulary padded with zero rows to a multiple of VOCAB_ALIGNMENT, their logits masked to −∞ (so
            # their softmax and gradients are 0): with GPT-2's 50,257 words the rows of the logits and of their
            # gradients are not 16-byte aligned, and torch.compile then copied each chunk's gradients into an aligned
            # buffer before the dW product (0.22 ms a chunk on an H200).
            # An aligned vocabulary (the leaderboard's 151,936 words) is used as it is: no copy of the weight, no mask.
            padding = -vocab % VOCAB_ALIGNMENT
            h, w = hidden.to(compute_dtype), weight.to(compute_dtype)
            if padding:
                w = nn.functional.pad(w, (0, 0, 0, padding))
                padded_word = torch.arange(w.shape[0], device=w.device) >= vocab  # the PyTorch path masks them
            grad_hidden = torch.empty_like(h)
            grad_weight = torch.zeros(w.shape, dtype=torch.float32, device=weight.device)
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            in_triton = h.device.type == "cuda" or INTERPRETED
            for start in range(0, rows, chunk_rows):
                h_c, t_c = h[start:start + chunk_rows], targets[start:start + chunk_rows]
                if in_triton:  # the chunk's logits become their gradient in place
                    grad_logits = h_c @ w.T
                    loss += softmax_gradient_(grad_logits, t_c, vocab, 1 / rows, wants_gradients).sum()
                else:
                    logits = (h_c @ w.T).float()  # (chunk, padded vocab)
                    if padding:
                        logits = logits.masked_fill(padded_word, -torch.inf)
                    shifted = logits - logits.amax(dim=-1, keepdim=True)
                    log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
                    loss += (log_normalizer.squeeze(-1) - shifted.gather(-1, t_c[:, None]).squeeze(-1)).sum()
                    if wants_gradients:
                        # d(mean loss)/d logits = (softmax − one-hot) / N. The one-hot as a comparison, not an
                        # in-place scatter: the whole expression is then elementwise, and torch.compile computes it
                        # in one pass from the chunk's logits in the compute dtype without storing any float32
                        # (chunk, vocab) tensor.
                        one_hot = torch.arange(logits.shape[-1], device=logits.device) == t_c[:, None]
                        grad_logits = ((torch.exp(shifted - log_normalizer) - one_hot.float()) / rows).to(
                            compute_dtype)
                if not wants_gradients:
                    continue
                grad_hidden[start:start + chunk_rows] = grad_logits @ w
                grad_weight += (grad_logits.T @ h_c).float()
        ctx.save_for_backward(grad_hidden, grad_weight[:vocab])
        ctx.dtypes = hidden.dtype, weight.dtype
        return loss / rows

    @staticmethod
    def backward(ctx, grad_loss: Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.dtypes
        return (grad_hidden * grad_loss).to(hidden_dtype), (grad_weight * grad_loss).to(weight_dtype), None, None


def linear_cross_entropy(hidden: Tensor, weight: Tensor, targets: Tensor, chunk_rows: int | None = None) -> Tensor:
    """cross_entropy(hidden @ weightᵀ, targets), the mean over every leading dim, without keeping the logits:
    hidden (..., d), weight (vocab, d), targets (...) of class indices."""
    if hidden.shape[:-1] != targets.shape or hidden.shape[-1] != weight.shape[-1]:
        raise ValueError(f"hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)} and targets "
                         f"{tuple(targets.shape)} disagree: expected (..., d), (vocab, d) and (...)")
    chunk_rows = chunk_rows or default_chunk_rows(weight.shape[0])
    return LinearCrossEntropy.apply(hidden.reshape(-1, hidden.shape[-1]), weight, targets.reshape(-1), chunk_rows)


class LanguageModelLoss(nn.Module):
    """A TransformerLM and its mean loss through ``linear_cross_entropy`` as one module, (tokens, targets) -> loss.
    The LM head's weight is then read inside the module's forward, where a data-parallel wrapper around it has every
    weight at hand: FSDP gathers a sharded weight only there, and would otherwise hand the loss its shard."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, targets: Tensor) -> Tensor:
        return linear_cross_entropy(self.model(tokens, return_hidden=True), self.model.lm_head.weight, targets)
