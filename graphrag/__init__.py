"""The knowledge graph over the notes.

Concepts and their relations (prerequisites, links, defined terms, co-occurrence)
become a NetworkX graph; communities, graph search and learning paths are built
on it. This package may import ``rag``; ``rag`` never imports it.

    from graphrag import GraphRetriever
    hits = GraphRetriever.load().search("What do I need before LoRA?", k=5, mode="graph-local")
"""

from graphrag.modes import GRAPH_MODES

_LAZY = {"GraphRetriever": "graphrag.retriever", "GraphHit": "graphrag.retriever"}  # FAISS, NetworkX: on first use
__all__ = ["GRAPH_MODES", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'graphrag' has no attribute '{name}'")
