"""The training-throughput peer: our TransformerLM's architecture written nanoGPT-style (A1 §3, §7).

Same function as impl.nn.TransformerLM (pre-norm RMSNorm, RoPE on adjacent pairs, SwiGLU,
untied LM head, no biases; tests/programs/test_lm_bench.py checks equal logits), built the way
a practitioner would for speed: torch.nn layers, one fused QKV projection,
F.scaled_dot_product_attention (flash attention on a GPU), the loss inside the module so that
torch.compile fuses it, torch.optim.AdamW(fused=True) and clip_grad_norm_. It trains with the
optimizer settings, learning-rate schedule and batch sampler of impl.programs.trainer.Trainer,
so both see the same windows in the same order (SameBatches, which also feeds an --impl's model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.common import autocast
from impl.train import lr_cosine_schedule
from impl.programs.config import TrainConfig


class Rotary(nn.Module):
    """RoPE on adjacent pairs (x₂ₖ, x₂ₖ₊₁), angle pos · θ^(−2k/d) (A1 §3.5.3), as in the LLaMA code."""

    def __init__(self, d_head: int, max_seq_len: int, theta: float):
        super().__init__()
        inv_freq = theta ** (-torch.arange(0, d_head, 2, dtype=torch.float64) / d_head)  # (d_head/2,)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float64), inv_freq)  # (max_seq_len, d_head/2)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        T = x.size(-2)
        cos, sin = self.cos[:T], self.sin[:T]  # (T, d_head/2)
        x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, h, T, d_head) -> 2 x (B, h, T, d_head/2)
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.n_head, self.d_head = cfg.num_heads, cfg.d_model // cfg.num_heads
        self.c_attn = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)  # q, k, v stacked along the output
        self.c_proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.rotary = Rotary(self.d_head, cfg.context_length, cfg.rope_theta)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.size()
        qkv = self.c_attn(x).view(B, T, 3, self.n_head, self.d_head)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, h, T, d_head)
        q, k = self.rotary(q), self.rotary(k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, d_head)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.w2 = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)
        self.w3 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.ln_1 = nn.RMSNorm(cfg.d_model, eps=1e-5)  # ours' eps; torch's default is finfo.eps
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.mlp = SwiGLU(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class PeerLM(nn.Module):
    def __init__(self, cfg: TrainConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.ln_f = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for module in self.modules():  # nanoGPT's init; the benchmark overwrites it with ours' weights
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Logits (B, T, vocab) and, given targets, the mean cross-entropy, as nanoGPT's GPT.forward."""
        x = self.wte(idx)  # (B, T) -> (B, T, d_model)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def state_dict_from_ours(ours: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """Map impl.nn.TransformerLM's state dict (the course's keys) onto PeerLM's."""
    peer = {"wte.weight": ours["token_embeddings.weight"], "ln_f.weight": ours["ln_final.weight"],
            "lm_head.weight": ours["lm_head.weight"]}
    for i in range(num_layers):
        o, p = f"layers.{i}.", f"h.{i}."
        peer[p + "attn.c_attn.weight"] = torch.cat([ours[o + f"attn.{n}_proj.weight"] for n in "qkv"])  # (3d, d)
        peer[p + "attn.c_proj.weight"] = ours[o + "attn.output_proj.weight"]
        peer[p + "ln_1.weight"], peer[p + "ln_2.weight"] = ours[o + "ln1.weight"], ours[o + "ln2.weight"]
        for w in ("w1", "w2", "w3"):
            peer[p + f"mlp.{w}.weight"] = ours[o + f"ffn.{w}.weight"]
    return peer


class SameBatches:
    """A training step fed as Trainer.train_step is: its learning-rate schedule, its batch sampler (the same
    windows in the same order), clipping at ``cfg.grad_clip``; the model, optimizer and loss are given.
    ``cfg`` is Trainer's resolved config; ``loss(x, y)`` returns the mean cross-entropy of the batch."""

    def __init__(self, cfg: TrainConfig, tokens: np.ndarray, model: nn.Module, optimizer: torch.optim.Optimizer,
                 loss: Callable[[Tensor, Tensor], Tensor]):
        self.cfg, self.tokens, self.device = cfg, tokens, torch.device(cfg.device)
        self.model, self.optimizer, self.loss = model, optimizer, loss
        self.autocast = autocast(self.device, cfg.precision)
        self.sampler = np.random.default_rng(cfg.seed)  # Trainer's sampler: the same windows in the same order
        self.step = 0

    def batch(self) -> tuple[Tensor, Tensor]:
        T = self.cfg.context_length
        starts = self.sampler.integers(0, len(self.tokens) - T, size=self.cfg.batch_size)
        windows = torch.from_numpy(self.tokens[starts[:, None] + np.arange(T + 1)].astype(np.int64))  # (B, T+1)
        if self.device.type == "cuda":  # pinned, asynchronous copy, as nanoGPT
            windows = windows.pin_memory().to(self.device, non_blocking=True)
        return windows[:, :-1], windows[:, 1:]

    def train_step(self) -> Tensor:
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr_cosine_schedule(self.step, cfg.lr_max, cfg.lr_min, cfg.warmup_steps, cfg.max_steps)
        x, y = self.batch()
        with self.autocast:
            loss = self.loss(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return loss.detach()


class PeerTrainer(SameBatches):
    """train_step() as Trainer.train_step, in torch's own parts, from ``weights`` (our state dict)."""

    def __init__(self, cfg: TrainConfig, tokens: np.ndarray, weights: dict[str, Tensor]):
        device = torch.device(cfg.device)
        with device:
            model = PeerLM(cfg)
        model.load_state_dict(state_dict_from_ours(weights, cfg.num_layers))  # strict: every key, every shape
        ours, peer = sum(w.numel() for w in weights.values()), sum(p.numel() for p in model.parameters())
        if ours != peer:
            raise RuntimeError(f"the peer has {peer} parameters but ours has {ours}: not the same model")
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr_max, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps,
                                      weight_decay=cfg.weight_decay, fused=device.type == "cuda")
        forward = torch.compile(model) if cfg.compile else model
        super().__init__(cfg, tokens, model, optimizer, lambda x, y: forward(x, y)[1])  # the loss inside the module
