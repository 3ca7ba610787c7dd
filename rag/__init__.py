"""Retrieval and cited answers over the math notes.

This package reads the notes (``rag.corpus``), knows where generated artifacts
and the embedded models live (``rag.settings``, ``rag.models``), and provides the
``mathrag`` command line (``rag.cli``). Chunking, the FAISS + BM25 index, the
``Retriever`` and cited answering build on these.
"""

import os

__version__ = "0.1.0"

# The project is offline by design: the models ship inside PyPI packages, and
# nothing may reach for a model hub at run time. Users can still override these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
