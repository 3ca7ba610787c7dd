"""Where things live: the repository, the notes, and the data directory.

Everything the project generates (converted model, indexes, graph, adapters,
reports, plots) goes under one directory, ``MATHRAG_HOME`` (default
``.mathrag/`` at the repository root, git-ignored), so deleting it resets the
project to a fresh clone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The names a user may choose from, here so that a command line can list them without loading FAISS.
MODES = ("dense", "bm25", "hybrid")  # retrieval modes (the graph adds its own: graphrag.GRAPH_MODES)
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")  # FAISS index kinds; "auto" is flat below FLAT_LIMIT chunks


def _home_from_env() -> Path:
    value = os.environ.get("MATHRAG_HOME")
    return Path(value).expanduser().resolve() if value else REPO_ROOT / ".mathrag"


def _corpus_from_env() -> Path:
    value = os.environ.get("MATHRAG_CORPUS")
    return Path(value).expanduser().resolve() if value else REPO_ROOT / "corpus"


def _embedder_from_env() -> str:
    return os.environ.get("MATHRAG_EMBEDDER", "").strip()


@dataclass(frozen=True)
class Settings:
    """Paths the project reads from and writes to (``MATHRAG_HOME``, ``MATHRAG_CORPUS``), and the embedder
    (``MATHRAG_EMBEDDER``: empty for the base MiniLM, else a name under ``MATHRAG_HOME/embedders/`` or the
    absolute path of a sentence-transformers directory)."""

    home: Path = field(default_factory=_home_from_env)
    corpus_dir: Path = field(default_factory=_corpus_from_env)
    embedder: str = field(default_factory=_embedder_from_env)

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def get_settings() -> Settings:
    """Settings read from the environment now (so tests can point ``MATHRAG_HOME`` elsewhere)."""
    return Settings()
