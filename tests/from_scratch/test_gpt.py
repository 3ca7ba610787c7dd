"""from_scratch.gpt: SmolLM2 from its GGUF file against transformers, generation, sampling, a tiny GPT training."""

import math
import shutil
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from from_scratch.gguf_weights import GGUFError
from from_scratch.gpt import GPT, ContextOverflowError, GPTConfig, from_smollm2, sample_next_token, smollm2_gguf_path

NOTE = ("Scaled dot-product attention computes softmax(QK^T/sqrt(d_k))V, a soft dictionary lookup in which every "
        "query takes a similarity-weighted average of the values, with masks to hide future or padded positions "
        "and a 1/sqrt(d_k) factor that keeps the scores at unit variance. Without the factor, scores for d_k = 64 "
        "would have standard deviation 8, and the softmax of numbers that far apart is nearly one-hot.")
PROMPTS = [
    [{"role": "user", "content": "What is a gradient? Explain in detail."}],
    [{"role": "user", "content": f"Context:\n[1] {NOTE}\n\nQuestion: why divide the scores by sqrt(d_k)?"}],
    [{"role": "system", "content": "You answer questions about linear algebra."},
     {"role": "user", "content": "What is an eigenvector?"},
     {"role": "assistant", "content": "A vector that a matrix only stretches: A v = lambda v."},
     {"role": "user", "content": "Give an example with a 2x2 matrix."}],
]


# --------------------------------------------------------------------------- fixtures: both models, loaded once


@pytest.fixture(scope="module")
def hf_dir():
    from rag.generators import ensure_smollm2

    return ensure_smollm2()


@pytest.fixture(scope="module")
def tokenizer(hf_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(hf_dir))


@pytest.fixture(scope="module")
def hf_model(hf_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def model():
    return from_smollm2()


def chat_ids(tokenizer, messages) -> torch.Tensor:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    return out["input_ids"]  # (1, T)


def tiny_llama(seed=0, dtype=torch.float64) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig.llama(vocab_size=61, context_length=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                             d_ff=48, rope_theta=10000.0)
    model = GPT(config).to(dtype).eval()
    with torch.no_grad():  # larger weights than the 0.02 init, so that every piece matters in the logits
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.3)
    return model


# --------------------------------------------------------------------------- SmolLM2 against transformers


@pytest.mark.slow
def test_config_read_from_gguf_metadata(model, hf_model):
    c, h = model.config, hf_model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_ff) == (30, 576, 9, 3, 1536)
    assert (c.vocab_size, c.context_length, c.rope_theta) == (49152, 8192, 100000.0)
    assert (c.norm, c.mlp, c.positions, c.bias, c.tie_embeddings) == ("rmsnorm", "swiglu", "rope", False, True)
    assert c.norm_eps == pytest.approx(h.rms_norm_eps)
    assert (c.n_layers, c.n_heads, c.n_kv_heads) == (h.num_hidden_layers, h.num_attention_heads,
                                                     h.num_key_value_heads)
    assert model.n_params == 134_515_008  # the count worked out in corpus/transformers_genai/gpt_architecture.md
    assert model.lm_head is model.tok_emb


@pytest.mark.slow
def test_logits_match_transformers(model, hf_model, tokenizer):
    worst = 0.0
    for messages in PROMPTS:
        ids = chat_ids(tokenizer, messages)
        assert 20 <= ids.shape[1] <= 200
        with torch.inference_mode():
            ours, _ = model(ids)
            theirs = hf_model(ids).logits
        assert ours.shape == theirs.shape == (1, ids.shape[1], 49152)
        worst = max(worst, (ours - theirs).abs().max().item())
    print(f"max abs logit difference vs transformers: {worst:.3g}")
    assert worst <= 1e-4


@pytest.mark.slow
def test_greedy_generation_matches_transformers(model, hf_model, tokenizer):
    for messages in PROMPTS[:2]:
        ids = chat_ids(tokenizer, messages)
        with torch.inference_mode():
            out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=50, do_sample=False)
        theirs = out[0, ids.shape[1]:].tolist()
        stream = model.generate(ids[0], max_new_tokens=50, temperature=0.0, stop_ids=[tokenizer.eos_token_id])
        assert isinstance(stream, Iterator)
        ours = list(stream)
        assert len(theirs) >= 30  # a real answer, not an immediate stop
        assert ours == theirs, (tokenizer.decode(ours), tokenizer.decode(theirs))


@pytest.mark.slow
def test_kv_cache_generation_equals_full_recompute(model, tokenizer):
    ids = chat_ids(tokenizer, PROMPTS[2])[0].tolist()
    cached = list(model.generate(ids, max_new_tokens=12))
    seq, recomputed = list(ids), []
    with torch.inference_mode():
        for _ in range(12):  # no cache: the whole sequence again for every token
            logits, _ = model(torch.tensor([seq]))
            recomputed.append(int(logits[0, -1].argmax()))
            seq.append(recomputed[-1])
        full, _ = model(torch.tensor([seq[:-1]]))  # (1, T + 11, V)
        caches = model.new_caches(1, len(seq))
        steps = [model(torch.tensor([ids]), caches=caches, last_only=True)[0][0, -1]]
        for i, token in enumerate(cached[:-1]):
            steps.append(model(torch.tensor([[token]]), caches=caches, start=len(ids) + i, last_only=True)[0][0, -1])
    assert cached == recomputed
    # A one-token step multiplies a vector, the full pass a matrix: float32 rounding differs, nothing more.
    assert (torch.stack(steps) - full[0, len(ids) - 1:]).abs().max().item() < 1e-3


@pytest.mark.slow
def test_sampling_stays_inside_top_k_and_top_p(model, tokenizer):
    ids = chat_ids(tokenizer, PROMPTS[0])[0].tolist()
    for kwargs in ({"top_k": 5}, {"top_p": 0.5}):
        tokens = list(model.generate(ids, max_new_tokens=15, temperature=1.5, seed=3, **kwargs))
        with torch.inference_mode():
            logits, _ = model(torch.tensor([ids + tokens[:-1]]))
        for step, token in enumerate(tokens):
            z = logits[0, len(ids) - 1 + step] / 1.5
            rank = int((z > z[token]).sum())
            if "top_k" in kwargs:
                assert rank < 5
            else:  # the tokens ranked above it carry less than p of the probability
                probs = torch.softmax(z, -1)
                assert probs[probs > probs[token]].sum().item() < 0.5 + 1e-4


@pytest.mark.slow
def test_fixed_seed_is_reproducible(model, tokenizer):
    ids = chat_ids(tokenizer, PROMPTS[0])[0].tolist()

    def draw(seed):
        return list(model.generate(ids, max_new_tokens=20, temperature=0.9, top_p=0.95, seed=seed))

    first = draw(7)
    assert draw(7) == first
    assert draw(8) != first


@pytest.mark.slow
def test_attention_maps_match_transformers_eager(model, hf_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    eager = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32, attn_implementation="eager")
    ids = chat_ids(tokenizer, PROMPTS[1])
    with torch.inference_mode():
        theirs = eager(ids, output_attentions=True).attentions
    for layer in (0, 17, 29):
        maps = model.attention_maps(ids[0], layer)
        T = ids.shape[1]
        assert maps.shape == (9, T, T)
        assert torch.allclose(maps.sum(-1), torch.ones(9, T), atol=1e-5) and (maps.triu(1) == 0).all()
        assert torch.allclose(maps, theirs[layer][0], atol=1e-4)


@pytest.mark.slow
def test_context_overflow_is_a_clear_error(model):
    with pytest.raises(ContextOverflowError, match="8195 tokens exceeds the model's context of 8192"):
        model.generate([1] * 8190, max_new_tokens=5)  # raised at the call, before any work
    with pytest.raises(ContextOverflowError, match="context of 8192"):
        model(torch.ones(1, 8193, dtype=torch.long))


# --------------------------------------------------------------------------- the GGUF file


def test_missing_corrupt_or_truncated_gguf_names_the_file(tmp_path):
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(GGUFError, match="nowhere.gguf"):
        from_smollm2(missing)
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a GGUF file\n" * 1000)
    with pytest.raises(GGUFError, match=r"garbage\.gguf.*truncated or corrupt"):
        from_smollm2(garbage)
    real = smollm2_gguf_path()
    for fraction in (0.01, 0.9):
        cut = tmp_path / f"cut-{fraction}.gguf"
        with real.open("rb") as src, cut.open("wb") as dst:
            shutil.copyfileobj(src, dst)
            dst.truncate(int(real.stat().st_size * fraction))
        with pytest.raises(GGUFError, match=rf"cut-{fraction}\.gguf.*truncated or corrupt"):
            from_smollm2(cut)


# --------------------------------------------------------------------------- small models, exact arithmetic


def test_kv_cache_steps_equal_full_pass_exactly():
    model = tiny_llama()
    ids = torch.randint(0, 61, (1, 12))
    with torch.inference_mode():
        full, _ = model(ids)  # (1, 12, 61)
        caches = model.new_caches(1, 12)
        parts = [model(ids[:, :5], caches=caches)[0]]
        for t in range(5, 12):
            parts.append(model(ids[:, t:t + 1], caches=caches, start=t)[0])
    assert torch.allclose(torch.cat(parts, dim=1), full, atol=1e-10)
    # the cache is what makes steps agree: without it the one-token steps see no past
    with torch.inference_mode():
        alone, _ = model(ids[:, 5:6], start=5)
    assert not torch.allclose(alone[0, 0], full[0, 5], atol=1e-3)


def test_generate_streams_greedy_and_stops():
    model = tiny_llama()
    prompt = [3, 1, 4, 1, 5]
    tokens = list(model.generate(prompt, max_new_tokens=10))
    seq = list(prompt)
    with torch.inference_mode():
        for _ in range(10):
            seq.append(int(model(torch.tensor([seq]))[0][0, -1].argmax()))
    assert tokens == seq[len(prompt):]
    assert list(model.generate(prompt, max_new_tokens=10, stop_ids=[tokens[2]])) == tokens[:3]
    stream = model.generate(prompt, max_new_tokens=3)
    assert next(stream) == tokens[0]  # one token at a time, as produced


def test_context_overflow_tiny_model():
    model = tiny_llama()
    with pytest.raises(ContextOverflowError, match="exceeds the model's context of 40 tokens"):
        model.generate(list(range(30)), max_new_tokens=11)
    assert len(list(model.generate(list(range(30)), max_new_tokens=10))) == 10  # exactly fills the context
    with pytest.raises(ContextOverflowError):
        model(torch.zeros(1, 41, dtype=torch.long))


def test_sample_next_token_top_k_top_p_and_temperature():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, generator=gen) * 2
    order = logits.argsort(descending=True).tolist()
    draws = [sample_next_token(logits, 1.0, top_k=4, generator=gen) for _ in range(2000)]
    assert set(draws) == set(order[:4])  # never outside the top 4, and all of them drawn
    probs = torch.softmax(logits, -1)
    cum = probs[order].cumsum(0)
    nucleus = set(order[:int((cum < 0.7).sum()) + 1])  # smallest prefix reaching 0.7, the crossing token included
    draws = [sample_next_token(logits, 1.0, top_p=0.7, generator=gen) for _ in range(2000)]
    assert set(draws) == nucleus
    # the draws follow the renormalised probabilities (loosely: 2000 draws)
    kept = torch.tensor(sorted(nucleus))
    expected = probs[kept] / probs[kept].sum()
    observed = torch.tensor([draws.count(int(i)) for i in kept]) / len(draws)
    assert torch.allclose(observed, expected, atol=0.05)
    assert sample_next_token(logits, 0.0) == order[0]  # temperature 0: greedy
    low = [sample_next_token(logits, 0.05, generator=gen) for _ in range(200)]
    assert low.count(order[0]) > 190  # low temperature: nearly greedy


def test_tiny_gpt_trains():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=97, context_length=32, d_model=32, n_layers=2, n_heads=4)
    assert (config.positions, config.norm, config.mlp, config.bias) == ("learned", "layernorm", "gelu", True)
    model = GPT(config)
    assert isinstance(model.blocks[0].norm1, nn.LayerNorm) and model.pos_emb.shape == (32, 32)
    ids = torch.randint(0, 97, (8, 17))
    x, y = ids[:, :-1], ids[:, 1:]  # targets: the next token
    logits, loss = model(x, y)
    assert logits.shape == (8, 16, 97)
    manual = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    assert loss.item() == pytest.approx(math.log(97), abs=0.3)  # a fresh model guesses about uniformly
    assert model(x)[1] is None
    # causal: changing later tokens leaves the earlier logits alone
    x2 = x.clone()
    x2[:, 10:] = (x2[:, 10:] + 1) % 97
    assert torch.allclose(model(x2)[0][:, :10], logits[:, :10], atol=1e-6)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model.pos_emb.grad.abs().sum() > 0  # the learned positions are in use
    assert losses[-1] < losses[0] - 1.0 and losses[-1] < min(losses[:10])
