"""Search: three modes, fusion, diversity, and clear errors for bad input."""

import pytest

from rag import Retriever
from rag.retriever import MODES, RRF_K


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "query,source",
    [
        ("What is the derivative of tanh?", "corpus/neural_networks/activation_functions.md"),
        ("why are attention scores divided by the square root of the key dimension",
         "corpus/transformers_genai/scaled_dot_product_attention.md"),
        ("bias correction of the moving averages in the Adam optimizer", "corpus/optimization/adam.md"),
        ("probability of having the disease after a positive test", "corpus/probability_statistics/bayes_theorem.md"),
    ],
)
def test_each_mode_finds_the_right_note(small_retriever, mode, query, source):
    hits = small_retriever.search(query, k=3, mode=mode)
    assert hits and hits[0].source == source
    for h in hits:
        assert h.text and h.heading.startswith(h.title) and h.chunk_id.startswith(h.source)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_hybrid_is_reciprocal_rank_fusion(small_retriever):
    q = "singular values and low-rank approximation"
    dense = [h.chunk_id for h in small_retriever.search(q, k=100, mode="dense")]
    bm25 = [h.chunk_id for h in small_retriever.search(q, k=100, mode="bm25")]
    expected = {}
    for ranking in (dense[:20], bm25[:20]):
        for rank, cid in enumerate(ranking, start=1):
            expected[cid] = expected.get(cid, 0) + 1 / (RRF_K + rank)
    hybrid = small_retriever.search(q, k=5, mode="hybrid", fetch_k=20)
    best = sorted(expected.items(), key=lambda kv: -kv[1])[:5]
    assert [h.chunk_id for h in hybrid] == [cid for cid, _ in best]
    assert [round(h.score, 9) for h in hybrid] == [round(s, 9) for _, s in best]


def test_mmr_diversifies(small_retriever):
    q = "gradient"
    plain = small_retriever.search(q, k=5, mode="dense")
    diverse = small_retriever.search(q, k=5, mode="dense", mmr=True, mmr_lambda=0.3)
    assert len(diverse) == 5
    assert len({h.source for h in diverse}) >= len({h.source for h in plain})
    assert [h.chunk_id for h in diverse] != [h.chunk_id for h in plain]


def test_similarity_is_reported_for_dense_and_hybrid(small_retriever):
    for mode in ("dense", "hybrid"):
        hits = small_retriever.search("eigenvalues of A transpose A", k=3, mode=mode)
        assert all(h.similarity is not None and -1 <= h.similarity <= 1 for h in hits)
    hits = small_retriever.search("singular values of a matrix", k=3, mode="bm25")
    assert hits and all(h.similarity is None for h in hits)
    sims = small_retriever.similarity("singular values of a matrix", hits)
    assert len(sims) == len(hits) == 3 and all(0 < s <= 1 for s in sims)


def test_a_single_known_word_is_searchable(small_retriever):
    hits = small_retriever.search("eigenvalues", k=3, mode="bm25")
    assert hits and "eigenvalue" in hits[0].text.lower()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"k": 0}, "k must be from 1 to 100, not 0"),
        ({"k": -3}, "k must be from 1 to 100"),
        ({"k": 10**9}, "k must be from 1 to 100"),
        ({"k": "5"}, "k must be a whole number"),
        ({"mode": "semantic"}, "unknown mode 'semantic'; choose one of dense, bm25, hybrid"),
    ],
)
def test_bad_arguments_are_clear_errors(small_retriever, kwargs, message):
    with pytest.raises(ValueError, match=message):
        small_retriever.search("eigenvalues", **kwargs)


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01\n\t"])
def test_empty_questions_are_refused(small_retriever, query):
    with pytest.raises(ValueError, match="the question is empty"):
        small_retriever.search(query)


@pytest.mark.parametrize(
    "query",
    ["a" * 100_000, "tanh \x00\x07 derivative", "\udcff\udcfe tanh", "🙂 ∂f/∂x 導数", "%%%%&&&&****", "zzqx"],
)
def test_odd_questions_never_crash(small_retriever, query):
    for mode in MODES:
        hits = small_retriever.search(query, k=3, mode=mode)
        assert len(hits) <= 3


def test_more_k_than_chunks_returns_everything(small_retriever):
    n = len(small_retriever.index)
    assert len(small_retriever.search("matrix", k=100, mode="dense")) == min(100, n)


def test_public_import():
    assert Retriever.__module__ == "rag.retriever"


def test_spread_over_notes_lets_notes_take_turns():
    from rag.retriever import spread_over_notes

    ranked = [(1.0, "a1"), (0.95, "a2"), (0.9, "b1"), (0.5, "c1")]
    picked = spread_over_notes(ranked, 3, score=lambda r: r[0], note=lambda r: r[1][0], factor=0.85)
    assert [item[1] for item, _ in picked] == ["a1", "b1", "a2"]  # a2 counts 0.95 * 0.85 = 0.8075 < 0.9
    assert [round(s, 4) for _, s in picked] == [1.0, 0.9, 0.8075]


def test_spread_over_notes_equals_the_greedy_rule_on_random_rankings():
    """Each pick is the item with the best score * factor^(items already taken from its note)."""
    import random

    from rag.retriever import spread_over_notes

    def greedy(ranked, k, factor=0.85):
        taken, rest, out = {}, list(ranked), []
        while rest and len(out) < k:
            best = max(range(len(rest)), key=lambda i: rest[i][0] * factor ** taken.get(rest[i][1], 0))
            item = rest.pop(best)
            out.append((item, item[0] * factor ** taken.get(item[1], 0)))
            taken[item[1]] = taken.get(item[1], 0) + 1
        return out

    rng = random.Random(0)
    for _ in range(200):
        scores = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]  # few values: ties are common
        ranked = [(rng.choice(scores), rng.choice("abcd"), j) for j in range(rng.randint(0, 30))]
        k = rng.randint(1, 12)
        assert spread_over_notes(ranked, k, score=lambda r: r[0], note=lambda r: r[1]) == greedy(ranked, k)


def test_search_with_spread_keeps_the_best_hit_and_covers_more_notes(small_retriever):
    query = "How does the softmax in attention relate to Bayes' theorem?"
    plain = small_retriever.search(query, k=5, mode="hybrid")
    spread = small_retriever.search(query, k=5, mode="hybrid", spread=True)
    assert spread[0].chunk_id == plain[0].chunk_id
    assert len({h.source for h in spread}) >= len({h.source for h in plain})
    assert [h.score for h in spread] == sorted((h.score for h in spread), reverse=True)
