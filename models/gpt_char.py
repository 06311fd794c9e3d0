"""A small character-level GPT: token and position embeddings, causal self-attention, LayerNorm, MLP.

The output layer is tied to the token embedding (``lm_head.weight`` is
``tok_emb.weight``), as in GPT-2. Input: ``(B, T)`` int64 character ids with
``T <= block_size``; output: ``(B, T, num_classes)`` next-character logits.
``num_classes`` is the vocabulary size (filled from a ``text:PATH`` data spec).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .registry import register


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal mask; one packed q/k/v Linear and an output Linear."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd {n_embd} is not a multiple of n_head {n_head}")
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    """Pre-LayerNorm transformer block: attention then a 4x GELU MLP, each residual."""

    def __init__(self, n_embd: int, n_head: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln2 = nn.LayerNorm(n_embd)
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.out = nn.Linear(4 * n_embd, n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPTChar(nn.Module):
    """A GPT over characters with the output layer tied to the token embedding."""

    def __init__(self, num_classes: int = 65, block_size: int = 128, n_layer: int = 4, n_embd: int = 128,
                 n_head: int = 4) -> None:
        super().__init__()
        self.block_size = block_size
        self.tok_emb = nn.Embedding(num_classes, n_embd)
        self.pos_emb = nn.Embedding(block_size, n_embd)
        self.blocks = nn.Sequential(*(Block(n_embd, n_head) for _ in range(n_layer)))
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, num_classes, bias=False)
        self.lm_head.weight = self.tok_emb.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
        for name, p in self.named_parameters():  # GPT-2: residual projections scaled by depth
            if name.endswith(("attn.proj.weight", "out.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = idx.long()
        t = idx.shape[1]
        if t > self.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {self.block_size}")
        pos = torch.arange(t, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)[None]
        return self.lm_head(self.ln_f(self.blocks(x)))


@register("gpt_char")
def gpt_char(num_classes: int = 65, block_size: int = 128, n_layer: int = 4, n_embd: int = 128,
             n_head: int = 4) -> GPTChar:
    """A small character-level GPT (tied token embedding / output layer)."""
    return GPTChar(num_classes, block_size, n_layer, n_embd, n_head)
