"""Which retriever serves which retrieval mode.

``rag.Retriever`` serves the vector and keyword modes (``rag.settings.MODES``);
``graphrag.GraphRetriever`` serves those and the graph modes too. The names are
known without importing either, so the parsers can list them as choices.
"""

from __future__ import annotations

from collections.abc import Iterable

from graphrag.modes import GRAPH_MODES
from rag.settings import MODES, Settings

ALL_MODES = (*MODES, *GRAPH_MODES)


def load_retriever(modes: Iterable[str] = (), settings: Settings | None = None, *, progress: bool = True):
    """The cheapest retriever that serves every one of ``modes``."""
    if any(mode in GRAPH_MODES for mode in modes):
        from graphrag.retriever import GraphRetriever

        return GraphRetriever.load(settings, progress=progress)
    from rag.retriever import Retriever  # heavy (FAISS, torch): only when a command runs

    return Retriever.load(settings, progress=progress)
