"""The LM head and the cross-entropy as one operation that never holds the (tokens × vocabulary) logits.

cross_entropy(lm_head(h), targets) keeps the logits of every token for the backward: at GPT-2 small's batch (32 ×
1024 tokens, 50,257 words) that is 3.3 GB in bfloat16, and the loss reads and writes them several times more in
float32. ``linear_cross_entropy`` goes through the tokens in chunks, as Liger-Kernel's fused linear cross-entropy
does: each chunk's logits (h_c Wᵀ), their log-sum-exp and loss, and at once the gradient of the mean loss with
respect to them, (softmax − one-hot) / N, which gives the chunk's dh and its share of dW; then the chunk's logits
are gone. The backward only scales the gradients the forward computed. The arithmetic is cross_entropy's
(impl.train: a max-shifted log-sum-exp in float32) and, under autocast, the matmuls' precision is the LM head's.
Under torch.compile each chunk's softmax and gradient fuse into a few passes over the chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

CHUNK_ELEMENTS = 2**28  # logits per chunk: 1 GiB in float32, whatever the vocabulary


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, chunk_rows: int) -> Tensor:
        rows = hidden.shape[0]
        wants_gradients = any(ctx.needs_input_grad[:2])  # not under no_grad (evaluation): the loss alone
        compute_dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(
            hidden.device.type) else hidden.dtype
        # The matmuls below run outside autocast in its dtype, as the LM head's would under it.
        with torch.autocast(hidden.device.type, enabled=False):
            h, w = hidden.to(compute_dtype), weight.to(compute_dtype)
            grad_hidden = torch.empty_like(h)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            loss = torch.zeros((), dtype=torch.float32, device=hidden.device)
            for start in range(0, rows, chunk_rows):
                h_c, t_c = h[start:start + chunk_rows], targets[start:start + chunk_rows]
                logits = (h_c @ w.T).float()  # (chunk, vocab)
                shifted = logits - logits.amax(dim=-1, keepdim=True)
                log_normalizer = torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))
                loss += (log_normalizer.squeeze(-1) - shifted.gather(-1, t_c[:, None]).squeeze(-1)).sum()
                if not wants_gradients:
                    continue
                # d(mean loss)/d logits = (softmax − one-hot) / N
                grad_logits = torch.exp(shifted - log_normalizer)
                grad_logits.scatter_add_(-1, t_c[:, None], torch.full_like(t_c[:, None], -1, dtype=torch.float32))
                grad_logits = (grad_logits / rows).to(compute_dtype)
                grad_hidden[start:start + chunk_rows] = grad_logits @ w
                grad_weight += (grad_logits.T @ h_c).float()
        ctx.save_for_backward(grad_hidden, grad_weight)
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
    chunk_rows = chunk_rows or max(1, CHUNK_ELEMENTS // weight.shape[0])
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
