"""Retrieval modes added by packages built on ``rag`` (the knowledge graph), found through entry points.

``rag`` never imports the packages above it. A package that adds retrieval modes declares one
entry point per mode in the group ``mathrag.retrievers``, naming a retriever class with a
``load(settings, progress=...)`` class method whose instances serve ``rag``'s own modes too:

    [project.entry-points."mathrag.retrievers"]
    graph-local = "graphrag.retriever:GraphRetriever"

The mode names are read from the package metadata without importing anything, so ``--help``
stays fast; the class is imported only when one of its modes is used.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from rag.settings import Settings

GROUP = "mathrag.retrievers"


def plugin_modes() -> dict[str, EntryPoint]:
    """Mode name -> the entry point of the retriever class that serves it."""
    return {e.name: e for e in sorted(entry_points(group=GROUP), key=lambda e: e.name)}


def all_modes(base: Iterable[str]) -> tuple[str, ...]:
    """The base modes (rag's: dense, bm25, hybrid), then every plugin mode."""
    base = tuple(base)
    return (*base, *(m for m in plugin_modes() if m not in base))


def load_retriever(modes: Iterable[str] = (), settings: Settings | None = None, *, progress: bool = True):
    """A retriever serving all of ``modes``: ``rag.Retriever``, or the plugin retriever a mode needs."""
    plugins = plugin_modes()
    for mode in modes:
        if mode in plugins:
            return plugins[mode].load().load(settings, progress=progress)
    from rag.retriever import Retriever  # heavy (FAISS, torch): only when a command runs

    return Retriever.load(settings, progress=progress)


def after_index_hooks() -> list:
    """Functions to call after ``mathrag index`` (group ``mathrag.after_index``): ``fn(index, settings, progress)``
    returns a line saying what it did."""
    return [e.load() for e in sorted(entry_points(group="mathrag.after_index"), key=lambda e: e.name)]
