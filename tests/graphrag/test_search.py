"""GraphRetriever: the vector modes are inherited, the graph modes return hits of the same shape with the
subgraph that produced them, and answers can be made from them."""

import pytest

from graphrag import GRAPH_MODES, GraphHit
from rag.answering import answer
from rag.retriever import Hit, Retriever

FIELDS = set(Hit.__dataclass_fields__)


def test_modes_are_the_vector_ones_plus_the_graph_ones(graph_retriever):
    assert graph_retriever.modes == ("dense", "bm25", "hybrid", *GRAPH_MODES)
    plain = graph_retriever.search("What is the SVD?", k=3, mode="hybrid")
    assert plain == Retriever(graph_retriever.index, graph_retriever.settings).search("What is the SVD?", k=3)


@pytest.mark.parametrize("mode", GRAPH_MODES)
def test_graph_hits_have_the_retrievers_fields_and_a_subgraph_in_the_graph(graph_retriever, mode):
    hits = graph_retriever.search("How is PCA computed with the singular value decomposition?", k=5, mode=mode)
    assert len(hits) == 5 and len({h.chunk_id for h in hits}) == 5
    g = graph_retriever.data.graph
    for hit in hits:
        assert isinstance(hit, GraphHit) and set(hit.to_dict()) >= FIELDS
        assert hit.text and hit.source.startswith("corpus/") and hit.heading.startswith(hit.title)
        assert hit.subgraph["nodes"] and hit.chunk_id in hit.subgraph["nodes"]
        assert all(n in g for n in hit.subgraph["nodes"])
        for u, v, kind in hit.subgraph["edges"]:
            assert kind == "part_of" or g.has_edge(u, v, key=kind), (u, v, kind)
    assert {h.source for h in hits} & {"corpus/linear_algebra/pca.md", "corpus/linear_algebra/svd.md"}
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_local_search_starts_from_the_concepts_named_in_the_question(graph_retriever):
    seeds = graph_retriever.find_concepts("Why does softmax use the log-sum-exp trick in attention?")
    named = {s.concept for s in seeds if s.how == "name"}
    assert {"note:softmax_logsumexp", "note:scaled_dot_product_attention"} <= named
    hits = graph_retriever.search("What are left singular vectors?", k=3, mode="local")
    assert hits[0].source == "corpus/linear_algebra/svd.md"
    assert "term:left-singular-vectors" in hits[0].subgraph["nodes"]


def test_a_question_with_no_concept_gives_no_local_hits_and_says_why(graph_retriever):
    hits = graph_retriever.search("zxqv wombat plugh", k=5, mode="graph-local")
    assert hits == [] and "no concept" in hits.message
    assert graph_retriever.search("zxqv wombat plugh", k=5, mode="graph-hybrid")  # the vector side still answers


def test_global_search_names_the_community_each_point_came_from(graph_retriever):
    hits = graph_retriever.search("an overview of matrix decompositions", k=4, mode="global")
    ids = {c.id for c in graph_retriever.data.communities}
    assert hits and all(h.subgraph["community"] in ids for h in hits)


def test_bad_mode_and_k_are_clear_errors(graph_retriever):
    with pytest.raises(ValueError, match="unknown mode 'graphy'"):
        graph_retriever.search("x", mode="graphy")
    with pytest.raises(ValueError, match="k must be"):
        graph_retriever.search("x", k=0, mode="graph-local")


def test_an_answer_can_be_made_from_graph_hits(graph_retriever):
    reply = answer("How is PCA related to the SVD?", retriever=graph_retriever, mode="graph-hybrid",
                   generator="extractive")
    assert reply.covered and reply.citations
    assert {c.source for c in reply.citations} & {"corpus/linear_algebra/pca.md", "corpus/linear_algebra/svd.md"}


def test_graph_hybrid_spreads_over_notes_only_when_the_question_spans_them(graph_retriever):
    """A one-note question keeps hybrid's ranking (its note's passages on top); a question that names two
    notes' concepts and asks two things gets passages from both."""
    single = "What is the singular value decomposition of a matrix?"
    assert not graph_retriever.spans_notes(single, graph_retriever.find_concepts(single))
    hits = graph_retriever.search(single, k=5, mode="graph-hybrid")
    assert [h.chunk_id for h in hits] == [h.chunk_id for h in graph_retriever.search(single, k=5, mode="hybrid")]
    assert all(isinstance(h, GraphHit) and h.subgraph["nodes"] for h in hits)
    multi = "Why are principal components eigenvectors of the covariance matrix, and how does the SVD compute them?"
    assert graph_retriever.spans_notes(multi, graph_retriever.find_concepts(multi))
    sources = {h.source for h in graph_retriever.search(multi, k=5, mode="graph-hybrid")}
    assert "corpus/linear_algebra/pca.md" in sources and len(sources) >= 2
    # a question, then a second request after it: two parts, so both notes
    second = "Why are principal components orthogonal? Connect it to the eigenvectors of a symmetric matrix."
    assert graph_retriever.spans_notes(second, graph_retriever.find_concepts(second))
    assert {h.source for h in graph_retriever.search(second, k=5, mode="graph-hybrid")} >= {
        "corpus/linear_algebra/pca.md", "corpus/linear_algebra/eigenvalues_eigenvectors.md"}


@pytest.mark.parametrize("mode", ["graph-hybrid", "graph-local", "graph-global"])
def test_a_graph_answer_embeds_the_question_once(graph_retriever, embedded_texts, mode):
    question = "Why divide attention scores by the square root of d_k?"
    asked = embedded_texts(question)
    reply = answer(question, retriever=graph_retriever, mode=mode)
    assert reply.done and reply.covered and reply.citations
    assert asked == [question]
