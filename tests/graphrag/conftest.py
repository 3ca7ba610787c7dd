"""Fixtures for the graph tests: the graph of the whole corpus (no embeddings needed), and a small corpus
with its own index and stored graph (real MiniLM embeddings)."""

import pytest

from rag.settings import REPO_ROOT, Settings

SMALL = [
    "linear_algebra/vectors_dot_product.md",
    "linear_algebra/eigenvalues_eigenvectors.md",
    "linear_algebra/projections_orthogonality.md",
    "linear_algebra/svd.md",
    "linear_algebra/pca.md",
    "information_theory/softmax_logsumexp.md",
    "transformers_genai/scaled_dot_product_attention.md",
    "probability_statistics/maximum_likelihood.md",
    "information_theory/cross_entropy_kl.md",
]


@pytest.fixture(scope="session")
def full_graph():
    """(graph, notes, chunks) of the whole corpus: structure only, built in about a second."""
    from graphrag.build import build_graph
    from rag.chunking import chunk_corpus
    from rag.corpus import load_corpus

    notes = load_corpus(REPO_ROOT / "corpus", root=REPO_ROOT)
    chunks = chunk_corpus(notes)
    return build_graph(notes, chunks), notes, chunks


@pytest.fixture(scope="module")
def small_settings(tmp_path_factory, copy_notes) -> Settings:
    root = tmp_path_factory.mktemp("graph_small")
    return Settings(home=root / "home", corpus_dir=copy_notes(root, SMALL))


@pytest.fixture(scope="module")
def graph_retriever(small_settings):
    from graphrag import GraphRetriever

    return GraphRetriever.load(small_settings, progress=False)
