"""Fixtures for the retrieval tests: a small copy of the real corpus with its own data directory."""

import pytest

from rag.settings import REPO_ROOT, Settings

# Five real notes from different areas: enough to tell topics apart, quick to embed.
SMALL = [
    "neural_networks/activation_functions.md",
    "linear_algebra/svd.md",
    "transformers_genai/scaled_dot_product_attention.md",
    "probability_statistics/bayes_theorem.md",
    "optimization/adam.md",
]


@pytest.fixture
def small_settings(tmp_path, copy_notes) -> Settings:
    """A fresh five-note corpus and an empty MATHRAG_HOME, per test."""
    return Settings(home=tmp_path / "home", corpus_dir=copy_notes(tmp_path, SMALL))


@pytest.fixture(scope="module")
def small_retriever(tmp_path_factory, copy_notes):
    """One retriever over the five-note corpus, shared by a module's read-only tests."""
    from rag.retriever import Retriever

    root = tmp_path_factory.mktemp("small")
    settings = Settings(home=root / "home", corpus_dir=copy_notes(root, SMALL))
    return Retriever.load(settings, progress=False)


@pytest.fixture(scope="session")
def full_retriever():
    """The retriever over the whole corpus, in the session's private MATHRAG_HOME."""
    from rag.retriever import Retriever

    return Retriever.load(Settings(corpus_dir=REPO_ROOT / "corpus"), progress=False)
