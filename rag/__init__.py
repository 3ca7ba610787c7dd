"""Retrieval and cited answers over the math notes.

Public API (imported lazily, so ``import rag`` stays cheap)::

    from rag import Retriever, answer
    retriever = Retriever.load()                 # builds the index on first use
    hits = retriever.search("What is an eigenvector?", k=5, mode="hybrid")
    reply = answer("What is the derivative of tanh?")
    print(reply.text, reply.citations)

Modules: ``corpus`` (read and validate notes), ``chunking``, ``index`` (FAISS +
BM25 on disk), ``retriever``, ``generators``, ``answering``, ``settings``,
``models`` (where the embedded models live). The ``mathrag`` command is the package ``mathrag``.
"""

import os

__version__ = "0.1.0"

# The project is offline by design: the models ship inside PyPI packages, and
# nothing may reach for a model hub at run time. Users can still override these.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

_LAZY = {
    "Retriever": ("rag.retriever", "Retriever"),
    "Hit": ("rag.retriever", "Hit"),
    "answer": ("rag.answering", "answer"),
    "stream_answer": ("rag.answering", "stream_answer"),
    "Answer": ("rag.answering", "Answer"),
    "get_generator": ("rag.generators", "get_generator"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'rag' has no attribute '{name}'")
