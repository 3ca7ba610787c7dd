"""Search the notes: dense (FAISS), lexical (BM25) or both fused.

``Retriever.load()`` opens the index under ``MATHRAG_HOME`` (building or
updating it first when the notes changed) and ``search(query, k, mode)``
returns :class:`Hit` objects.

Hybrid search fuses the dense and BM25 rankings with reciprocal rank fusion:
a chunk's fused score is

    RRF(c) = sum over rankings r of 1 / (K + rank_r(c)),   K = 60,

so a chunk ranked well by either method rises, and neither method's raw score
scale matters. Optional maximal marginal relevance (MMR) then re-orders the
candidates to trade relevance for diversity:

    next = argmax_c  lambda * sim(q, c) - (1 - lambda) * max_{s in selected} sim(c, s).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Protocol, TypeVar

import faiss
import numpy as np

from rag.chunking import DEFAULT_CHUNK_SIZE
from rag.index import SearchIndex, UpdateReport, tokenize, update_index
from rag.models import load_embedder
from rag.options import check_k, check_mode
from rag.settings import MODES, Settings, get_settings
from rag.text import clean_question

NOTE_SPREAD = 0.85  # spread_over_notes: each earlier pick from the same note multiplies a score by this
T = TypeVar("T")
K = TypeVar("K")
RRF_K = 60


@dataclass
class Hit:
    """One retrieved chunk."""

    text: str
    source: str
    heading: str
    title: str
    score: float
    chunk_id: str
    area: str = ""
    tags: list[str] = field(default_factory=list)
    similarity: float | None = None  # cosine between question and chunk, when the dense side ran

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_chunk(cls, chunk, score: float, similarity: float | None = None, **extra):
        """The hit for an indexed :class:`rag.chunking.Chunk` (``extra``: a subclass's own fields)."""
        return cls(text=chunk.text, source=chunk.source, heading=chunk.heading, title=chunk.title,
                   score=float(score), chunk_id=chunk.chunk_id, area=chunk.area, tags=list(chunk.tags),
                   similarity=None if similarity is None else float(similarity), **extra)


class Hits(list):
    """The ranked hits of one search; ``message`` says why there are none, when there is a reason to tell;
    ``query_vector`` is the query's normalized embedding (384,) when the search made one, so that whoever
    answers from the hits need not embed the question again."""

    def __init__(self, hits: Iterable[Hit] = (), message: str = "", query_vector: np.ndarray | None = None):
        super().__init__(hits)
        self.message = message
        self.query_vector = query_vector


def fuse_rrf(rankings: Iterable[Iterable[K]]) -> dict[K, float]:
    """Reciprocal rank fusion: item -> sum over the rankings of 1 / (RRF_K + its rank there, from 1)."""
    fused: dict[K, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (RRF_K + rank)
    return fused


def spread_over_notes(ranked: list[T], k: int, score: Callable[[T], float], note: Callable[[T], str],
                      factor: float = NOTE_SPREAD) -> list[tuple[T, float]]:
    """The k best of ``ranked`` (best first), taken so that notes take turns, each with its discounted score.

    A question that spans notes needs passages from each; a plain ranking lets the closest note
    fill every place. Greedily, each pick takes the item with the best score * factor^m, m = the
    items already taken from its note. The best item always comes first, so a question about one
    note still finds it first; that note's other passages follow other notes' best ones when
    those score close. Scores must be positive; the discounted ones decrease down the list.
    """
    # Within a note every item has the same discount, so only each note's best remaining item can be
    # picked next: keep one queue per note, best first (ties: earlier in ``ranked``).
    queues: dict[str, list[tuple[int, T]]] = {}
    for i, item in enumerate(ranked):
        queues.setdefault(note(item), []).append((i, item))
    for queue in queues.values():
        queue.sort(key=lambda pair: (-score(pair[1]), pair[0]))
        queue.reverse()  # pop() takes the best
    taken: dict[str, int] = {}
    out: list[tuple[T, float]] = []
    while queues and len(out) < k:
        def head(name: str) -> tuple[float, int]:
            i, item = queues[name][-1]
            return score(item) * factor ** taken.get(name, 0), -i

        name = max(queues, key=head)
        _, item = queues[name].pop()
        out.append((item, score(item) * factor ** taken.get(name, 0)))
        taken[name] = taken.get(name, 0) + 1
        if not queues[name]:
            del queues[name]
    return out


class Searcher(Protocol):
    """What answering, evaluation and the app need of a retriever: :class:`Retriever` and
    ``graphrag.GraphRetriever`` both are one."""

    modes: tuple[str, ...]
    index: SearchIndex
    settings: Settings

    def search(self, query: str, k: int = 5, mode: str = "hybrid", **options) -> Hits: ...

    def embed_query(self, query: str) -> np.ndarray: ...

    def terms(self, query: str) -> tuple[list[str], list[str]]: ...

    def similarity(self, query: str, hits: list[Hit]) -> list[float]: ...

    def refresh(self, progress: bool = False) -> UpdateReport: ...


class Retriever:
    """Dense, BM25 and hybrid search over one :class:`SearchIndex`."""

    modes = MODES

    def __init__(self, index: SearchIndex, settings: Settings | None = None):
        self.index = index
        self.settings = settings or get_settings()
        self._encode_lock = threading.Lock()
        # One query at a time gains nothing from FAISS's OpenMP threads, and their spin-waiting slows the
        # next torch call (the query embedding) by more than half: measured 17.8 ms -> 11.0 ms per search.
        faiss.omp_set_num_threads(1)

    @classmethod
    def load(
        cls, settings: Settings | None = None, *, kind: str = "auto", chunk_size: int = DEFAULT_CHUNK_SIZE,
        progress: bool = True,
    ) -> Retriever:
        """Open the stored index, building or updating it first if the notes changed."""
        index, _ = update_index(settings, kind=kind, chunk_size=chunk_size, progress=progress)
        return cls(index, settings)

    def refresh(self, progress: bool = False) -> UpdateReport:
        """Pick up edited notes. Searches already running finish on the old index."""
        index, report = update_index(self.settings, kind=self.index.manifest.get("kind_requested", "auto"),
                                     chunk_size=self.index.manifest.get("chunk_size", DEFAULT_CHUNK_SIZE),
                                     progress=progress)
        self.index = index  # one reference swap: readers hold the old object until they finish
        return report

    # ---- the three rankings

    def embed_query(self, query: str) -> np.ndarray:
        with self._encode_lock:
            vec = load_embedder().encode([query], normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(vec, dtype=np.float32)

    def _dense(self, index: SearchIndex, qvec: np.ndarray, n: int) -> list[tuple[int, float]]:
        scores, ids = index.faiss_index.search(qvec, min(n, len(index)))
        return [(index.row_of_id[int(i)], float(s)) for s, i in zip(scores[0], ids[0], strict=True) if i != -1]

    def _bm25(self, index: SearchIndex, query: str, n: int) -> list[tuple[int, float]]:
        tokens = tokenize([query])
        if not tokens.ids or not tokens.ids[0]:
            return []
        # Map the query's vocabulary onto the index's; tokens the index never saw are dropped.
        words = {i: w for w, i in tokens.vocab.items()}
        known = [[words[i] for i in tokens.ids[0] if words[i] in index.bm25.vocab_dict]]
        if not known[0]:
            return []
        docs, scores = index.bm25.retrieve(known, k=min(n, len(index)), show_progress=False, n_threads=1)
        return [(int(d), float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]

    def search(
        self, query: str, k: int = 5, mode: str = "hybrid", *, mmr: bool = False, mmr_lambda: float = 0.7,
        fetch_k: int | None = None, spread: bool = False, query_vector: np.ndarray | None = None,
    ) -> Hits:
        """The ``k`` best chunks for ``query``. ``mode``: dense, bm25 or hybrid.

        mmr: diversify by content (maximal marginal relevance). spread: let notes take turns
        (:func:`spread_over_notes`), for questions that need several notes. query_vector: the query's
        normalized embedding (384,), when the caller has it already.
        """
        k, mode = check_k(k), check_mode(mode)
        query, _ = clean_question(query)
        index = self.index  # hold one version for the whole search
        if not len(index):
            return Hits(message="the index is empty: there are no notes")
        fetch = max(fetch_k or 0, 4 * k, 20)
        if query_vector is not None:
            qvec = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        else:
            qvec = self.embed_query(query) if mode != "bm25" or mmr else None

        if mode == "dense":
            ranked = self._dense(index, qvec, fetch)
        elif mode == "bm25":
            ranked = self._bm25(index, query, fetch)
        else:
            fused = fuse_rrf([row for row, _ in ranking]
                             for ranking in (self._dense(index, qvec, fetch), self._bm25(index, query, fetch)))
            ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))

        if mmr and ranked:
            ranked = self._mmr(index, qvec, ranked, k, mmr_lambda)
        if spread:
            ranked = [(row, adjusted) for (row, _), adjusted in
                      spread_over_notes(ranked, k, score=lambda r: r[1], note=lambda r: index.chunks[r[0]].source)]
        ranked = ranked[:k]
        sims = index.vectors[[r for r, _ in ranked]] @ qvec[0] if qvec is not None and ranked else None
        return Hits((Hit.from_chunk(index.chunks[row], score, None if sims is None else sims[j])
                     for j, (row, score) in enumerate(ranked)), query_vector=None if qvec is None else qvec[0])

    @staticmethod
    def _mmr(index: SearchIndex, qvec: np.ndarray, ranked: list[tuple[int, float]], k: int,
             lam: float) -> list[tuple[int, float]]:
        rows = [r for r, _ in ranked]
        vecs = index.vectors[rows]
        relevance = vecs @ qvec[0]
        chosen: list[int] = []
        left = list(range(len(rows)))
        while left and len(chosen) < k:
            redundancy = (vecs[left] @ vecs[chosen].T).max(axis=1) if chosen else np.zeros(len(left))
            best = left[int(np.argmax(lam * relevance[left] - (1 - lam) * redundancy))]
            chosen.append(best)
            left.remove(best)
        return [ranked[i] for i in chosen]

    def terms(self, query: str) -> tuple[list[str], list[str]]:
        """The query's BM25 terms (stemmed, stop words removed), and those that occur nowhere in the notes."""
        tokens = tokenize([clean_question(query)[0]])
        words = {i: w for w, i in tokens.vocab.items()}
        terms = [words[i] for i in tokens.ids[0]] if tokens.ids else []
        vocab = self.index.bm25.vocab_dict or {}
        return terms, [t for t in terms if t not in vocab]

    def similarity(self, query: str, hits: list[Hit]) -> list[float]:
        """Cosine similarity between the question and each hit's chunk."""
        if not hits:
            return []
        index = self.index
        qvec = self.embed_query(clean_question(query)[0])
        by_id = {c.chunk_id: i for i, c in enumerate(index.chunks)}
        rows = [by_id[h.chunk_id] for h in hits]
        return [float(s) for s in index.vectors[rows] @ qvec[0]]
