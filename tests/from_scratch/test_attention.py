"""from_scratch.attention against PyTorch's fused attention and against the formulas written out."""

import math

import pytest
import torch
import torch.nn.functional as F

from from_scratch.attention import (
    KVCache,
    MultiHeadAttention,
    apply_rope,
    causal_mask,
    padding_mask,
    repeat_kv,
    rope_cos_sin,
    rotate_half,
    scaled_dot_product_attention,
)

ATOL = 1e-5


def qkv(B=2, h=4, g=4, n=6, m=6, d=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, h, n, d, generator=gen)
    k = torch.randn(B, g, m, d, generator=gen)
    v = torch.randn(B, g, m, d, generator=gen)
    return q, k, v


def reference_attention(q, k, v, allowed):
    """The definition, one query and one key at a time: softmax over allowed keys of q.k / sqrt(d), then average v."""
    B, h, n, d = q.shape
    r = h // k.shape[1]
    out = torch.zeros(B, h, n, v.shape[-1], dtype=torch.float64)
    for b in range(B):
        for i in range(h):
            j_kv = i // r  # query head i reads KV head floor(i / r)
            for t in range(n):
                js = [j for j in range(k.shape[2]) if allowed[b][t][j]]
                s = [float(q[b, i, t].double() @ k[b, j_kv, j].double()) / math.sqrt(d) for j in js]
                w = [math.exp(x - max(s)) for x in s]
                for wj, j in zip(w, js, strict=True):
                    out[b, i, t] += wj / sum(w) * v[b, j_kv, j].double()
    return out.float()


def test_no_mask_matches_torch_sdpa():
    q, k, v = qkv()
    assert torch.allclose(scaled_dot_product_attention(q, k, v), F.scaled_dot_product_attention(q, k, v), atol=ATOL)


def test_scores_are_divided_by_sqrt_dk():
    q, k, v = qkv(d=16)
    _, w = scaled_dot_product_attention(q, k, v, return_weights=True)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1)
    assert torch.allclose(w, expected, atol=ATOL)
    assert not torch.allclose(w, torch.softmax(q @ k.transpose(-2, -1), dim=-1), atol=1e-3)


def test_causal_matches_torch_sdpa_and_the_definition():
    q, k, v = qkv()
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=ATOL)
    allowed = [[[j <= t for j in range(6)] for t in range(6)]] * 2
    assert torch.allclose(ours, reference_attention(q, k, v, allowed), atol=ATOL)
    # causality: changing future keys and values leaves earlier outputs unchanged
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:] += 1.0
    v2[:, :, 3:] -= 2.0
    assert torch.allclose(scaled_dot_product_attention(q, k2, v2, causal=True)[:, :, :3], ours[:, :, :3], atol=ATOL)


def test_causal_with_fewer_queries_than_keys_sees_the_past():
    """With a KV cache the n queries are the last n of m positions: query i sits at m - n + i."""
    q, k, v = qkv(n=3, m=7)
    allowed = [[[j <= 4 + t for j in range(7)] for t in range(3)]] * 2
    assert causal_mask(3, 7).tolist() == allowed[0]
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    assert torch.allclose(ours, reference_attention(q, k, v, allowed), atol=ATOL)
    torch_mask = torch.tensor(allowed[0])
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=torch_mask), atol=ATOL)


def test_padding_mask_hides_padded_keys():
    q, k, v = qkv()
    lengths = [6, 4]  # second sequence: last two keys are padding
    attention_mask = torch.tensor([[1] * n + [0] * (6 - n) for n in lengths])
    mask = padding_mask(attention_mask)
    assert mask.shape == (2, 1, 1, 6)
    ours, w = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=ATOL)
    allowed = [[[j < n for j in range(6)] for _ in range(6)] for n in lengths]
    assert torch.allclose(ours, reference_attention(q, k, v, allowed), atol=ATOL)
    assert (w[1, :, :, 4:] == 0).all()
    v2 = v.clone()
    v2[1, :, 4:] = 100.0  # whatever the padding holds, it must not leak
    assert torch.allclose(scaled_dot_product_attention(q, k, v2, mask), ours, atol=ATOL)
    # padding and causal masks combine
    both = scaled_dot_product_attention(q, k, v, mask, causal=True)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask & causal_mask(6))
    assert torch.allclose(both, expected, atol=ATOL)


def test_weights_are_row_distributions_and_give_the_output():
    q, k, v = qkv()
    out, w = scaled_dot_product_attention(q, k, v, causal=True, return_weights=True)
    assert w.shape == (2, 4, 6, 6)
    assert torch.allclose(w.sum(-1), torch.ones(2, 4, 6), atol=ATOL)
    assert (w.triu(1) == 0).all()
    assert torch.allclose(w @ v, out, atol=ATOL)


@pytest.mark.parametrize("g", [1, 2, 3, 6])  # MQA, GQA, GQA, MHA
def test_grouped_query_attention(g):
    q, k, v = qkv(h=6, g=g, n=5, m=5)
    ours = scaled_dot_product_attention(q, k, v, causal=True)
    torch_out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    assert torch.allclose(ours, torch_out, atol=ATOL)
    repeated = scaled_dot_product_attention(q, repeat_kv(k, 6 // g), repeat_kv(v, 6 // g), causal=True)
    assert torch.allclose(ours, repeated, atol=ATOL)
    allowed = [[[j <= t for j in range(5)] for t in range(5)]] * 2
    assert torch.allclose(ours, reference_attention(q, k, v, allowed), atol=ATOL)


def test_repeat_kv_maps_query_head_to_kv_head_i_div_r():
    k = torch.arange(3.0).view(1, 3, 1, 1).expand(1, 3, 2, 4)
    heads = repeat_kv(k, 3)[0, :, 0, 0].tolist()
    assert heads == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_rope_rotates_each_half_split_pair_by_m_theta_i():
    d, base = 8, 100000.0
    cos, sin = rope_cos_sin(d, 20, base)
    x = torch.randn(d)
    for m in (0, 1, 7, 19):
        y = apply_rope(x, cos[m], sin[m])
        for i in range(d // 2):
            angle = m * base ** (-2 * i / d)
            a, b = float(x[i]), float(x[i + d // 2])
            assert y[i].item() == pytest.approx(a * math.cos(angle) - b * math.sin(angle), abs=ATOL)
            assert y[i + d // 2].item() == pytest.approx(b * math.cos(angle) + a * math.sin(angle), abs=ATOL)
        assert torch.linalg.norm(y).item() == pytest.approx(torch.linalg.norm(x).item(), rel=1e-5)
    assert rotate_half(torch.tensor([1.0, 2, 3, 4])).tolist() == [-3, -4, 1, 2]


def test_rope_matches_transformers_llama():
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    cos, sin = rope_cos_sin(64, 50, 100000.0)
    q, k = torch.randn(1, 9, 50, 64), torch.randn(1, 3, 50, 64)
    q_hf, k_hf = apply_rotary_pos_emb(q, k, cos[None], sin[None])
    assert torch.allclose(apply_rope(q, cos, sin), q_hf, atol=ATOL)
    assert torch.allclose(apply_rope(k, cos, sin), k_hf, atol=ATOL)


def test_rope_scores_depend_only_on_the_offset():
    d = 64
    cos, sin = rope_cos_sin(d, 2000, 10000.0)
    q, k = torch.randn(d, dtype=torch.float64), torch.randn(d, dtype=torch.float64)
    cos, sin = cos.double(), sin.double()

    def score(m, n):
        return float(apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n]))

    s0 = score(3, 10)
    for shift in (1, 50, 1000):  # the angles m * theta are float32 (as in transformers): ~1e-4 rad off at m = 1000
        assert score(3 + shift, 10 + shift) == pytest.approx(s0, abs=2e-3)
    assert abs(score(3, 11) - s0) > 0.01


def per_head_reference(layer, x, cos=None, sin=None):
    """MultiHeadAttention written head by head from its weight matrices: [head_1..head_h] W^O."""
    B, T, _ = x.shape
    h, g, d = layer.n_heads, layer.n_kv_heads, layer.d_head
    W = layer.qkv.weight  # (d_model, (h + 2g) d)
    heads = []
    for i in range(h):
        j = i // (h // g)
        q = x @ W[:, i * d:(i + 1) * d]
        k = x @ W[:, (h + j) * d:(h + j + 1) * d]
        v = x @ W[:, (h + g + j) * d:(h + g + j + 1) * d]
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d) + torch.full((T, T), float("-inf")).triu(1)
        heads.append(torch.softmax(scores, -1) @ v)
    return torch.cat(heads, dim=-1) @ layer.out.weight


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("rope", [True, False])
def test_multi_head_attention_layer_matches_per_head_reference(fused, rope):
    torch.manual_seed(0)
    layer = MultiHeadAttention(d_model=24, n_heads=6, n_kv_heads=2, fused=fused)
    nn_init = torch.nn.init
    nn_init.normal_(layer.qkv.weight, std=0.3)
    nn_init.normal_(layer.out.weight, std=0.3)
    x = torch.randn(2, 7, 24)
    cos, sin = rope_cos_sin(4, 7, 10000.0) if rope else (None, None)
    assert torch.allclose(layer(x, cos=cos, sin=sin), per_head_reference(layer, x, cos, sin), atol=ATOL)
    out, weights = layer(x, cos=cos, sin=sin, return_weights=True)
    assert weights.shape == (2, 6, 7, 7)
    assert torch.allclose(out, per_head_reference(layer, x, cos, sin), atol=ATOL)


@pytest.mark.parametrize("fused", [True, False])
def test_kv_cache_steps_equal_the_full_pass(fused):
    torch.manual_seed(1)
    layer = MultiHeadAttention(d_model=16, n_heads=4, n_kv_heads=2, fused=fused)
    x = torch.randn(1, 9, 16)
    cos, sin = rope_cos_sin(4, 9, 10000.0)
    full = layer(x, cos=cos, sin=sin)
    cache = KVCache(1, 2, 9, 4)
    parts, start = [], 0
    for n in (4, 1, 3, 1):  # prefill, one token, a chunk of three (needs the offset causal mask), one token
        parts.append(layer(x[:, start:start + n], cos=cos[start:start + n], sin=sin[start:start + n],
                           cache=cache, start=start))
        start += n
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=ATOL)
    with pytest.raises(ValueError, match="KV cache holds 9 positions"):
        cache.update(torch.zeros(1, 2, 1, 4), torch.zeros(1, 2, 1, 4), 9)
