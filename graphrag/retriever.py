"""Search through the knowledge graph: ``GraphRetriever`` adds three modes to the vector retriever.

``GraphRetriever`` is a :class:`rag.Retriever` (its ``dense``, ``bm25`` and ``hybrid`` modes are
inherited) that also holds the graph, and adds:

- ``graph-local``: find the concepts of the question (by name or alias, and by embedding
  similarity to the concepts' descriptions: the seeds), spread from them one and two hops along
  the graph's edges, and collect the chunks behind the concepts reached: the chunks of a reached
  note, the chunks that define a reached term, the chunks that mention one. A concept reached
  from seed s over edges e_1..e_h scores

      score = sim(s) * prod_i w(e_i) * DECAY^h        (the best path counts)

  with w by type (defines 0.9, prerequisite_of 0.8, links_to 0.6, related: its NPMI). A chunk
  scores cos(question, chunk) + GRAPH_WEIGHT * (its best concept's score): the graph decides
  which chunks are candidates and lifts the ones close to the question's concepts; the cosine
  picks the passages that answer it. Notes take turns in the final ranking
  (``rag.retriever.spread_over_notes``), so a question spanning notes gets passages from each.
- ``graph-global``: rank the community reports against the question; from each of the best
  communities take its notes' chunks closest to the question (map), then merge them (reduce).
- ``graph-hybrid``: when the question spans several concepts (it names concepts of two or more
  notes, or asks for a comparison), reciprocal rank fusion of graph-local and the vector hybrid
  ranking, notes taking turns; otherwise the vector hybrid ranking itself, so a question about one
  note keeps that note's passages on top instead of paying for passages of neighbouring notes
  (the hits graph-local also found keep the subgraph that explains them).

Every hit carries ``subgraph``: the node and edge ids that produced it (seed concept, the path
walked, the chunk), which the app draws. "local" and "global" are accepted for the first two.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from graphrag.build import edge_weight
from graphrag.concepts import Concept, ConceptMatcher
from graphrag.modes import ALIASES, GRAPH_MODES
from graphrag.store import GraphData, ensure_graph
from rag.index import SearchIndex, UpdateReport, update_index
from rag.options import check_k
from rag.retriever import Hit, Hits, Retriever, fuse_rrf, spread_over_notes
from rag.settings import Settings
from rag.text import clean_question

DECAY, MAX_HOPS = 0.6, 2
SEED_MIN_SIMILARITY, SEEDS_BY_EMBEDDING = 0.45, 3
GRAPH_WEIGHT = 0.15
TOP_COMMUNITIES, POINTS_PER_COMMUNITY = 3, 4


@dataclass
class GraphHit(Hit):
    """A hit with the part of the graph that led to it."""

    subgraph: dict = field(default_factory=lambda: {"nodes": [], "edges": []})


# A question that asks more than one thing: two clauses joined, or two questions, or a long one.
MULTI_PART = re.compile(r",\s*(?:and|then|so)\b|\b(?:and|but) (?:how|why|what|which|when)\b|\?\s*\w|\btrace\b|"
                        r"\bderive it\b|\bfrom .* through\b", re.I | re.S)
MULTI_PART_WORDS = 25


@dataclass
class Seed:
    concept: str
    score: float
    how: str  # "name" (named in the question) or "similar" (embedding)


class GraphRetriever(Retriever):
    """``rag.Retriever``'s modes (inherited) plus graph-local, graph-global and graph-hybrid."""

    modes = (*Retriever.modes, *GRAPH_MODES)

    def __init__(self, index: SearchIndex, settings: Settings | None = None, *, data: GraphData):
        super().__init__(index, settings)
        self._read(data)

    def _read(self, data: GraphData) -> None:
        """Hold the graph, and look-ups over it and the index: concept names, chunk rows, each note's chunks."""
        self.data = data
        self.matcher = ConceptMatcher(Concept(n, d["kind"], d["name"], list(d.get("aliases", [])))
                                      for n, d in data.graph.nodes(data=True) if d["kind"] != "chunk")
        self.row_of_chunk = {c.chunk_id: i for i, c in enumerate(self.index.chunks)}
        self.chunks_of_note: dict[str, list[str]] = {}
        for c in self.index.chunks:
            self.chunks_of_note.setdefault(c.source, []).append(c.chunk_id)

    @classmethod
    def load(cls, settings: Settings | None = None, *, progress: bool = True, rebuild: bool = False,
             ) -> GraphRetriever:
        """The vector index (built or updated if needed) and the graph that follows it."""
        index, _ = update_index(settings, progress=progress)
        data, _ = ensure_graph(index, settings, rebuild=rebuild, progress=progress)
        return cls(index, settings, data=data)

    def refresh(self, progress: bool = False) -> UpdateReport:
        """Pick up edited notes: the index first, then the graph that follows it."""
        report = super().refresh(progress=progress)
        data, _ = ensure_graph(self.index, self.settings, progress=progress)
        self._read(data)
        return report

    # ---- search

    def search(self, query: str, k: int = 5, mode: str = "graph-hybrid", *, query_vector: np.ndarray | None = None,
               **kwargs) -> Hits:
        """The ``k`` best chunks. Vector modes are ``Retriever``'s; graph modes are answered here.
        query_vector: the query's normalized embedding (384,), when the caller has it already."""
        mode = ALIASES.get(mode, mode)
        if mode not in GRAPH_MODES:
            return super().search(query, k=k, mode=mode, query_vector=query_vector, **kwargs)  # checks mode and k
        k = check_k(k)
        query, _ = clean_question(query)
        if not query.strip() or not len(self.index):
            return Hits()
        if query_vector is not None:
            qvec = np.asarray(query_vector, dtype=np.float32).reshape(-1)
        else:
            qvec = self.embed_query(query)[0]  # (384,), normalized
        if mode == "graph-local":
            hits = self._local(query, qvec, k)
        elif mode == "graph-global":
            hits = self._global(qvec, k)
        else:
            hits = self._hybrid(query, qvec, k)
        hits.query_vector = qvec
        return hits

    def find_concepts(self, query: str, qvec: np.ndarray | None = None) -> list[Seed]:
        """The concepts a question is about: named in it (score 1), or close to it in embedding space."""
        seeds: dict[str, Seed] = {}
        for cid, _, _ in self.matcher.find(query):
            seeds[cid] = Seed(cid, 1.0, "name")
        if qvec is None:
            qvec = self.embed_query(query)[0]
        sims = self.data.concept_vectors @ qvec  # (n_concepts,)
        for row in np.argsort(-sims)[:SEEDS_BY_EMBEDDING]:
            cid = self.data.concept_ids[row]
            if sims[row] >= SEED_MIN_SIMILARITY and cid not in seeds:
                seeds[cid] = Seed(cid, float(sims[row]), "similar")
        return sorted(seeds.values(), key=lambda s: -s.score)

    def _edges_from(self, node: str) -> Iterable[tuple[str, str, float, tuple[str, str, str]]]:
        """(neighbour concept, edge type, weight, edge id) over concept-to-concept edges, both directions."""
        g = self.data.graph
        for _, v, key, d in g.out_edges(node, keys=True, data=True):
            if key != "mentions":
                yield v, key, edge_weight(key, d), (node, v, key)
        for u, _, key, d in g.in_edges(node, keys=True, data=True):
            if key != "mentions" and g.nodes[u]["kind"] != "chunk":
                yield u, key, edge_weight(key, d), (u, node, key)

    def spread(self, seeds: list[Seed]) -> dict[str, tuple[float, list[tuple[str, str, str]]]]:
        """Concept -> (best score, the edges of its best path from a seed), up to MAX_HOPS hops."""
        best: dict[str, tuple[float, list]] = {}
        heap = [(-s.score, s.concept, 0, []) for s in seeds]
        heapq.heapify(heap)
        while heap:  # best-first: the first time a concept is popped, its path is the best one
            neg, node, hops, path = heapq.heappop(heap)
            if node in best:
                continue
            best[node] = (-neg, path)
            if hops == MAX_HOPS:
                continue
            for nxt, _, w, edge in self._edges_from(node):
                if nxt not in best:
                    heapq.heappush(heap, (neg * w * DECAY, nxt, hops + 1, [*path, edge]))
        return best

    def _chunks_behind(self, concept: str) -> list[tuple[str, float, tuple[str, str, str] | None]]:
        """(chunk id, how strongly it belongs to the concept, the edge that ties them) for a concept."""
        g = self.data.graph
        d = g.nodes[concept]
        out = []
        if d["kind"] == "note":
            out += [(c, 1.0, (c, concept, "part_of")) for c in self.chunks_of_note.get(d.get("source", ""), [])]
        for u, _, key, data in g.in_edges(concept, keys=True, data=True):
            if key == "mentions":
                out.append((u, 0.5, (u, concept, "mentions")))
            elif key == "defines":
                out += [(c, 0.9, (u, concept, "defines")) for c in data["provenance"]]
        return out

    def _hit(self, chunk_id: str, score: float, similarity: float, nodes: list[str], edges: list) -> GraphHit:
        return GraphHit.from_chunk(self.index.chunks[self.row_of_chunk[chunk_id]], score, similarity,
                                   subgraph={"nodes": list(dict.fromkeys(nodes)), "edges": [list(e) for e in edges]})

    def _note_of(self, row: tuple) -> str:
        """The note of a ranking row whose last element is a chunk id."""
        return self.index.chunks[self.row_of_chunk[row[-1]]].source

    def _cosines(self, chunk_ids: list[str], qvec: np.ndarray) -> np.ndarray:
        rows = [self.row_of_chunk[c] for c in chunk_ids]
        return self.index.vectors[rows] @ qvec if rows else np.zeros(0)

    def notes_of(self, concept: str) -> set[str]:
        """The notes a concept belongs to: a note itself, or the notes whose chunks define the term."""
        g = self.data.graph
        d = g.nodes[concept]
        if d["kind"] == "note":
            return {d.get("source", "")}
        return {self.index.chunks[self.row_of_chunk[c]].source
                for u, _, key, data in g.in_edges(concept, keys=True, data=True) if key == "defines"
                for c in data["provenance"] if c in self.row_of_chunk}

    def spans_notes(self, query: str, seeds: list[Seed]) -> bool:
        """Whether a question is about several notes: it compares, or it names concepts of two or more notes
        and asks more than one thing ("How does X turn into Y, and why ...?"): a question that only mentions
        a second concept in passing ("the gradient of the quadratic form") is still about one note."""
        from rag.compose import classify

        if classify(query) == "compare":
            return True
        named = set().union(*(self.notes_of(s.concept) for s in seeds if s.how == "name")) if seeds else set()
        several = bool(MULTI_PART.search(query)) or len(query.split()) >= MULTI_PART_WORDS
        return len(named) >= 2 and several

    def _local(self, query: str, qvec: np.ndarray, k: int, spread: bool = True) -> Hits:
        seeds = self.find_concepts(query, qvec)
        if not seeds:
            return Hits(message="no concept of the graph matches the question")
        reached = self.spread(seeds)
        support: dict[str, tuple[float, str, tuple | None]] = {}  # chunk -> (graph score, concept, last edge)
        for concept, (score, _) in reached.items():
            for chunk_id, strength, edge in self._chunks_behind(concept):
                if chunk_id in self.row_of_chunk and score * strength > support.get(chunk_id, (0.0,))[0]:
                    support[chunk_id] = (score * strength, concept, edge)
        if not support:
            return Hits(message="the question's concepts lead to no indexed passage")
        ids = list(support)
        cos = self._cosines(ids, qvec)
        top = max(s for s, _, _ in support.values())
        scored = sorted(((float(cos[i]) + GRAPH_WEIGHT * support[c][0] / top, float(cos[i]), c)
                         for i, c in enumerate(ids)), reverse=True)
        if spread:
            scored = [(adjusted, sim, chunk_id) for (_, sim, chunk_id), adjusted in
                      spread_over_notes(scored, k, score=lambda row: row[0], note=self._note_of)]
        else:
            scored = scored[:k]
        hits = Hits()
        for score, sim, chunk_id in scored:
            _, concept, edge = support[chunk_id]
            path = reached[concept][1]
            nodes = [n for e in path for n in e[:2]] or [concept]  # the walk from the seed
            hits.append(self._hit(chunk_id, score, sim, [*nodes, concept, chunk_id], [*path, edge]))
        return hits

    def _global(self, qvec: np.ndarray, k: int) -> Hits:
        data = self.data
        if not data.communities:
            return Hits(message="the graph has no communities")
        sims = data.report_vectors @ qvec  # (n_communities,)
        chosen, covered = [], set()
        for row in np.argsort(-sims):
            c = data.communities[row]
            if set(c.notes) <= covered:  # a narrower copy of a community already taken
                continue
            chosen.append((c, float(sims[row])))
            covered |= set(c.notes)
            if len(chosen) == TOP_COMMUNITIES:
                break
        points: dict[str, tuple[float, float, object]] = {}
        for community, report_sim in chosen:  # map: the best passages of each community
            ids = [cid for source in community.notes for cid in self.chunks_of_note.get(source, [])]
            cos = self._cosines(ids, qvec)
            for i in np.argsort(-cos)[:POINTS_PER_COMMUNITY]:
                score = float(cos[i]) + GRAPH_WEIGHT * report_sim
                if score > points.get(ids[i], (-1.0,))[0]:
                    points[ids[i]] = (score, float(cos[i]), community)
        ranked = sorted(points.items(), key=lambda kv: -kv[1][0])[:k]  # reduce
        g = data.graph
        hits = Hits()
        for chunk_id, (score, sim, community) in ranked:
            members = community.members[:8]
            edges = [[u, v, key] for u, v, key in g.subgraph(members).edges(keys=True)]
            hits.append(self._hit(chunk_id, score, sim, [*members, chunk_id], edges))
            hits[-1].subgraph["community"] = community.id
        return hits

    def _hybrid(self, query: str, qvec: np.ndarray, k: int) -> Hits:
        depth = max(4 * k, 20)
        spread = self.spans_notes(query, self.find_concepts(query, qvec))
        local = self._local(query, qvec, depth, spread=spread)
        vector = super().search(query, k=depth, mode="hybrid", query_vector=qvec)
        fused = fuse_rrf([h.chunk_id for h in ranking] for ranking in (local, vector))
        by_id = {h.chunk_id: h for h in vector} | {h.chunk_id: h for h in local}  # graph hits keep their subgraph
        out = Hits()  # the vector side always has an answer
        rows = sorted(((s, c) for c, s in fused.items()), reverse=True)
        if spread:
            ranked = [(adjusted, chunk_id) for (_, chunk_id), adjusted in
                      spread_over_notes(rows, k, score=lambda row: row[0], note=self._note_of)]
        else:  # one note's question: the vector ranking, the graph only explaining the hits it shares
            ranked = [(h.score, h.chunk_id) for h in vector[:k]]
        for score, chunk_id in ranked:
            hit = by_id[chunk_id]
            if not isinstance(hit, GraphHit):
                hit = GraphHit(**{f: getattr(hit, f) for f in Hit.__dataclass_fields__},
                               subgraph={"nodes": [chunk_id], "edges": []})
            hit.score = score
            out.append(hit)
        return out
