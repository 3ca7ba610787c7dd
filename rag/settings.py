"""Where things live: the repository, the notes, and the data directory.

Everything the project generates (converted model, indexes, graph, adapters,
reports, plots) goes under one directory, ``MATHRAG_HOME``, so deleting it resets the
project to a fresh clone. Unless set, it is ``.mathrag/`` at the repository root (git-ignored) when mathrag
runs from a checkout, and the platform's user data directory when it was installed with ``pip install .``
(``~/.local/share/mathrag`` on Linux, ``~/Library/Application Support/mathrag`` on macOS).

The notes are ``MATHRAG_CORPUS`` when set (any Markdown folder, see :mod:`rag.vault`), else the checkout's
``corpus/``, else the copy an installed package carries (the ``mathrag_notes`` package data).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The names a user may choose from, here so that a command line can list them without loading FAISS.
MODES = ("dense", "bm25", "hybrid")  # retrieval modes (the graph adds its own: graphrag.GRAPH_MODES)
INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")  # FAISS index kinds; "auto" is flat below FLAT_LIMIT chunks


def in_checkout() -> bool:
    """Whether the code runs from the repository (a clone, an editable install), not from an installed package."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "corpus").is_dir()


def _home_from_env() -> Path:
    value = os.environ.get("MATHRAG_HOME")
    if value:
        return Path(value).expanduser().resolve()
    if in_checkout():
        return REPO_ROOT / ".mathrag"
    from platformdirs import user_data_dir

    return Path(user_data_dir("mathrag", appauthor=False))


def packaged_notes() -> Path:
    """The notes an installed package carries (a folder of Markdown, so a namespace package: no ``__init__``)."""
    from importlib.util import find_spec

    spec = find_spec("mathrag_notes")
    if spec is None or not spec.submodule_search_locations:
        return REPO_ROOT / "corpus"  # neither a checkout nor an installed package: say so where it is read
    return Path(next(iter(spec.submodule_search_locations)))


def _corpus_from_env() -> Path:
    value = os.environ.get("MATHRAG_CORPUS")
    if value:
        return Path(value).expanduser().resolve()
    return REPO_ROOT / "corpus" if in_checkout() else packaged_notes()


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
