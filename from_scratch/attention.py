r"""Attention, written out: scaled dot-product, masks, multi-head, grouped-query and RoPE.

Scaled dot-product attention
----------------------------
Queries ``Q`` (n x d_k), keys ``K`` (m x d_k) and values ``V`` (m x d_v) give

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k) + M) V

with the softmax over each row (over the keys). ``S = Q K^T / sqrt(d_k)`` holds the
scores, ``A = softmax(S + M)`` the weights (each row a probability distribution over
the keys), and output row i is the weighted average ``sum_j A_ij v_j`` of the values.

Why 1/sqrt(d_k): let the components of a query q and a key k be independent, mean 0,
variance 1. Each product q_i k_i then has mean E[q_i] E[k_i] = 0 and variance
E[q_i^2] E[k_i^2] - 0 = 1, and the d_k products are independent, so

    Var(q . k) = sum_i Var(q_i k_i) = d_k,     Var(q . k / sqrt(d_k)) = 1.

Without the factor the scores of a 64-wide head would have standard deviation 8; the
softmax of numbers that far apart is almost one-hot, its Jacobian
dA_i/dS_j = A_i (delta_ij - A_j) is almost zero, and gradients vanish. The factor keeps
the scores at unit variance whatever the head size.

Masks
-----
``M_ij = -inf`` hides key j from query i (exp(-inf) = 0, so the other weights
renormalise); here a boolean mask says the same thing with True = "may attend".

- causal: query i sees keys j <= i. With a KV cache the n queries are the *last* n
  of m positions, so query i sits at position m - n + i and sees j <= m - n + i.
- padding: key j is hidden from every query when it is a padding token.

A row with every key hidden would be softmax(-inf, ..., -inf) = 0/0 = NaN; causal
masks always keep the diagonal, so only left padding can cause it.

Multi-head and grouped-query attention
--------------------------------------
With h heads of width d_head, ``X W^Q`` (T x h d_head) is reshaped to (h, T, d_head) so
each head attends on its own; the heads are concatenated back and mixed by W^O:
``MHA(X) = [head_1, ..., head_h] W^O``. Grouped-query attention keeps h query heads
but only g key/value heads; query head i uses KV head floor(i / (h/g)), i.e. each KV
head serves r = h/g consecutive query heads. ``repeat_kv`` writes that out by copying
each KV head r times; ``scaled_dot_product_attention`` gets the same result without the
copy by folding the r query heads of a group into the query axis.

The attention layer runs the hand-written function when asked for the weights (heatmaps)
or built with ``fused=False``; otherwise it calls ``torch.nn.functional.
scaled_dot_product_attention``, PyTorch's fused kernel for the same formula (as nanoGPT
does): it works in tiles with a running softmax (FlashAttention), never stores the (T, T)
weights, and is what Hugging Face transformers runs, so a model using it reproduces
transformers' logits bit for bit. The two agree to float32 rounding (about 1e-7 relative
per call); through a 30-layer model that rounding grows to about 1e-4 on the logits,
the same distance each float32 implementation has from a float64 computation.

Rotary position embedding (RoPE), half-split layout
---------------------------------------------------
Pair i of a head (features i and i + d/2, the layout of Llama and SmolLM2) at position
m is rotated by the angle m theta_i, theta_i = base^(-2i/d):

    (a, b) -> (a cos(m theta_i) - b sin(m theta_i),  b cos(m theta_i) + a sin(m theta_i))

which is ``x * cos + rotate_half(x) * sin`` with rotate_half(x1, x2) = (-x2, x1) and
cos/sin holding the d/2 angles twice. Since R(a)^T R(b) = R(b - a), the score between a
query at position m and a key at position n,  (R(m theta) q)^T (R(n theta) k) =
q^T R((n - m) theta) k,  depends on the offset n - m only. Values are not rotated.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- masks


def causal_mask(n_queries: int, n_keys: int | None = None, device: torch.device | str | None = None) -> torch.Tensor:
    """(n_queries, n_keys) bool, True where query i may see key j, i.e. j <= n_keys - n_queries + i."""
    n_keys = n_queries if n_keys is None else n_keys
    ones = torch.ones(n_queries, n_keys, dtype=torch.bool, device=device)
    return ones.tril(diagonal=n_keys - n_queries)


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) with 1 = real token, 0 = padding  ->  (B, 1, 1, T) bool, broadcast over heads and queries."""
    return attention_mask.bool()[:, None, None, :]


# --------------------------------------------------------------------------- scaled dot-product attention


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, g, T, d) -> (B, g * n_rep, T, d): KV head j becomes heads j*n_rep .. j*n_rep + n_rep - 1."""
    if n_rep == 1:
        return x
    B, g, T, d = x.shape
    return x[:, :, None].expand(B, g, n_rep, T, d).reshape(B, g * n_rep, T, d)


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, *,
    causal: bool = False, return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k) + mask) v, by hand.

    q: (B, h, n, d_k); k: (B, g, m, d_k); v: (B, g, m, d_v), with g dividing h (g < h is
    grouped-query attention). mask: bool, True = may attend, broadcastable to (B, h, n, m).
    causal: also hide the future (query i is at position m - n + i).
    Returns out (B, h, n, d_v), and the weights (B, h, n, m) if return_weights.
    """
    B, h, n, d_k = q.shape
    g, m = k.shape[1], k.shape[2]
    r = h // g  # query heads per KV head
    # Fold each group's r query heads into the query axis: (B, h, n, d_k) -> (B, g, r*n, d_k).
    # Head i = j*r + s lands in group j, so the grouping is exactly that of repeat_kv, without copying K and V.
    scores = (q.reshape(B, g, r * n, d_k) @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d_k))  # (B, g, r*n, m)
    scores = scores.view(B, h, n, m)
    if causal:
        scores = scores.masked_fill(~causal_mask(n, m, device=q.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (B, h, n, m), each row sums to 1
    out = (weights.view(B, g, r * n, m) @ v).view(B, h, n, v.shape[-1])  # (B, h, n, d_v)
    return (out, weights) if return_weights else out


# --------------------------------------------------------------------------- rotary position embedding


def rope_cos_sin(d_head: int, max_positions: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin of the angles m * theta_i, each (max_positions, d_head): the d/2 angles written twice (half-split)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))  # (d/2,) theta_i
    angles = torch.arange(max_positions, dtype=torch.int64).float()[:, None] * inv_freq[None, :]  # (P, d/2) m theta_i
    angles = torch.cat((angles, angles), dim=-1)  # (P, d): pair i is (i, i + d/2)
    return angles.cos(), angles.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the last axis, split in halves."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate every pair (x_i, x_{i+d/2}) of x (..., T, d) by its angle; cos, sin: (T, d) for those T positions."""
    return x * cos + rotate_half(x) * sin


# --------------------------------------------------------------------------- KV cache


class KVCache:
    """One layer's keys and values, preallocated for max_len positions: k, v (B, g, max_len, d_head).

    A step with T new tokens at positions start .. start+T-1 writes them in place and gets
    back views of positions 0 .. start+T-1; nothing is reallocated or concatenated.
    """

    def __init__(self, batch: int, n_kv_heads: int, max_len: int, d_head: int,
                 dtype: torch.dtype = torch.float32, device: torch.device | str | None = None):
        self.max_len = max_len
        self.k = torch.zeros(batch, n_kv_heads, max_len, d_head, dtype=dtype, device=device)  # (B, g, max_len, d)
        self.v = torch.zeros(batch, n_kv_heads, max_len, d_head, dtype=dtype, device=device)  # (B, g, max_len, d)

    def update(self, k: torch.Tensor, v: torch.Tensor, start: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, g, T, d) at start .. start+T-1; return all keys, values so far (B, g, start+T, d)."""
        end = start + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; position {end - 1} does not fit")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


# --------------------------------------------------------------------------- the attention layer


class Linear(nn.Module):
    """y = x W + b with W stored (d_in, d_out), the way the math is written (Q = X W^Q).

    Storing W as (d_in, d_out) rather than nn.Linear's (d_out, d_in) also suits generation:
    for one token x is a single row, and x W streams W row by row (y += x_i W_i). On the
    2-core CPU this was written on, that reads the wide matrices of SmolLM2 (QKV, gate/up,
    the 49152-wide output layer) 1.3-1.8x faster than the d_out separate dot products that
    nn.Linear's layout asks for. For many rows (training, prompts) both layouts run the same
    matrix-matrix kernel.
    """

    def __init__(self, d_in: int, d_out: int, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))  # W: (d_in, d_out)
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None  # b: (d_out,)
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_in) -> (..., d_out)
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


class MultiHeadAttention(nn.Module):
    """Causal multi-head self-attention with optional grouped-query heads, RoPE and KV cache.

    One projection makes queries, keys and values in a single matrix product:
    W_qkv = [W^Q | W^K | W^V] is (d_model, (h + 2g) d_head), the columns of the three side by side.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int | None = None, bias: bool = False,
                 fused: bool = True):
        super().__init__()
        self.fused = fused  # PyTorch's fused kernel for the same formula; False: the hand-written one above
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads or n_heads % self.n_kv_heads:
            raise ValueError(f"need n_heads | d_model and n_kv_heads | n_heads, got {d_model}, {n_heads}, "
                             f"{self.n_kv_heads}")
        self.d_head = d_model // n_heads
        self.qkv = Linear(d_model, (n_heads + 2 * self.n_kv_heads) * self.d_head, bias=bias)  # [W^Q | W^K | W^V]
        self.out = Linear(n_heads * self.d_head, d_model, bias=bias)  # W^O

    def forward(
        self, x: torch.Tensor, *, cos: torch.Tensor | None = None, sin: torch.Tensor | None = None,
        cache: KVCache | None = None, start: int = 0, mask: torch.Tensor | None = None, return_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, d_model) at positions start .. start+T-1 -> (B, T, d_model) [, weights (B, h, T, start+T)].

        cos, sin (T, d_head): RoPE angles of these positions (None: no RoPE). cache: keys and
        values of earlier positions, updated in place. mask: extra bool mask (e.g. padding).
        """
        B, T, _ = x.shape
        h, g, d = self.n_heads, self.n_kv_heads, self.d_head
        q, k, v = self.qkv(x).split((h * d, g * d, g * d), dim=-1)  # (B, T, h*d), (B, T, g*d), (B, T, g*d)
        q = q.view(B, T, h, d).transpose(1, 2)  # (B, h, T, d)
        k = k.view(B, T, g, d).transpose(1, 2)  # (B, g, T, d)
        v = v.view(B, T, g, d).transpose(1, 2)  # (B, g, T, d)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # values are not rotated
        if cache is not None:
            k, v = cache.update(k, v, start)  # (B, g, start+T, d)
        # One new token attends to everything before it: only a multi-token step needs the causal mask.
        causal, weights = T > 1, None
        if return_weights or not self.fused:
            y = scaled_dot_product_attention(q, k, v, mask, causal=causal, return_weights=return_weights)
            y, weights = y if return_weights else (y, None)  # (B, h, T, d)
        else:
            if causal and (mask is not None or k.shape[2] != T):  # is_causal covers only the square, unmasked case
                mask = causal_mask(T, k.shape[2], device=x.device) & (True if mask is None else mask)
                causal = False
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        y = self.out(y.transpose(1, 2).reshape(B, T, h * d))  # concatenate the heads, mix: (B, T, d_model)
        return (y, weights) if return_weights else y
