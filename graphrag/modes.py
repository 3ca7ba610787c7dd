"""The names of the graph's retrieval modes, importable without loading FAISS or NetworkX."""

GRAPH_MODES = ("graph-local", "graph-global", "graph-hybrid")
ALIASES = {"local": "graph-local", "global": "graph-global"}  # short names accepted for the first two
