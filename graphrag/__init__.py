"""The knowledge graph over the notes.

Concepts and their relations (prerequisites, links, defined terms, co-occurrence)
become a NetworkX graph; communities, graph search and learning paths are built
on it. This package may import ``rag``; ``rag`` never imports it.

    from graphrag import GraphRetriever
    hits = GraphRetriever.load().search("What do I need before LoRA?", k=5, mode="graph-local")
"""

from graphrag.retriever import GRAPH_MODES, GraphHit, GraphRetriever

__all__ = ["GRAPH_MODES", "GraphHit", "GraphRetriever"]
