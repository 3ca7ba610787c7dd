"""Fixtures for the retrieval tests: a small copy of the real corpus with its own data directory."""

import shutil
from pathlib import Path

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


def make_corpus(folder: Path, notes=SMALL) -> Path:
    corpus = folder / "corpus"
    for rel in notes:
        target = corpus / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "corpus" / rel, target)
    return corpus


@pytest.fixture
def small_settings(tmp_path) -> Settings:
    """A fresh five-note corpus and an empty MATHRAG_HOME, per test."""
    return Settings(home=tmp_path / "home", corpus_dir=make_corpus(tmp_path))


@pytest.fixture(scope="module")
def small_retriever(tmp_path_factory):
    """One retriever over the five-note corpus, shared by a module's read-only tests."""
    from rag.retriever import Retriever

    root = tmp_path_factory.mktemp("small")
    settings = Settings(home=root / "home", corpus_dir=make_corpus(root))
    return Retriever.load(settings, progress=False)


@pytest.fixture(scope="session")
def full_retriever():
    """The retriever over the whole corpus, in the session's private MATHRAG_HOME."""
    from rag.retriever import Retriever

    return Retriever.load(Settings(corpus_dir=REPO_ROOT / "corpus"), progress=False)
