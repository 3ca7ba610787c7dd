"""The knowledge graph over the notes.

Concepts and their relations (prerequisites, links, defined terms, co-occurrence)
become a NetworkX graph; communities, graph search and learning paths are built
on it. This package may import ``rag``; ``rag`` never imports it.
"""
