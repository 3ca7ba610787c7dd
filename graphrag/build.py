"""Build the knowledge graph from the notes and their chunks: nodes, typed edges with provenance.

Nodes (attribute ``kind``):

- ``note``: a concept per note (``note:<slug>``): title, summary, area, source, aliases.
- ``term``: a term a note defines (``term:<name>``): name, defining sentence, aliases.
- ``chunk``: a chunk of the search index (its ``chunk_id``): source, heading.

Edges, in a ``networkx.MultiDiGraph`` keyed by their type, each with a ``weight`` and a
``provenance`` (the chunk ids that support it) and ``evidence`` (where it comes from, in words):

- ``prerequisite_of``: note P -> note N when N's front matter lists P (evidence: the front
  matter; provenance: N's summary chunk).
- ``links_to``: note A -> note B for each Markdown link from A to B (provenance: the chunks
  holding the link; a link in "See also", which is not indexed, cites A's summary chunk).
- ``defines``: note -> term, for the terms in bold in the note's definition sections
  (provenance: the chunks where the bold term appears).
- ``mentions``: chunk -> concept, each concept named in the chunk (weight: how many times).
  A chunk's mentions of its own note are left out: every chunk is about its note.
- ``related``: concept -- concept (stored once, from the smaller id) when the two are named
  together in chunks more often than chance. With n chunks, c(a) chunks naming a, c(a, b)
  naming both, the pointwise mutual information is

      PMI(a, b) = log( p(a, b) / (p(a) p(b)) ) = log( c(a, b) n / (c(a) c(b)) )

  and its normalized form NPMI = PMI / (-log p(a, b)) lies in [-1, 1] (1: always together,
  0: independent). An edge is kept when c(a, b) >= 2 and NPMI >= 0.2; its weight is the NPMI.

A prerequisite cycle does not stop the build: it is reported (``graph.graph["cycles"]``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from itertools import combinations
from pathlib import PurePosixPath
from urllib.parse import unquote

import networkx as nx

from graphrag.concepts import Concept, ConceptMatcher, extract_concepts, note_id
from rag.chunking import Chunk
from rag.corpus import Note
from rag.vault import slug_of

EDGE_TYPES = ("prerequisite_of", "links_to", "defines", "mentions", "related")
# How strongly an edge of each type ties two concepts, times the edge's own weight (1 for these types; a
# ``related`` edge brings its NPMI). One table for the communities (:func:`concept_graph`) and for how much
# of a concept's score passes along the edge in graph search (``graphrag.retriever``).
EDGE_WEIGHT = {"defines": 0.9, "prerequisite_of": 0.8, "links_to": 0.6, "related": 1.0}
MIN_COOCCUR, MIN_NPMI = 2, 0.2
GENERIC_SHARE = 0.04  # a term named in more than this share of chunks ("vector") is too generic to be a node
_LINK = re.compile(r"\[[^\]]*\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def linked_slugs(note: Note, slugs: set[str]) -> list[tuple[str, int]]:
    """(target slug, offset in the body) for each Markdown link from the note to another note."""
    out = []
    for m in _LINK.finditer(note.body):
        slug = slug_of(unquote(PurePosixPath(m.group(1)).stem))  # a vault's "Chain%20Rule.md" is chain_rule
        if slug in slugs and slug != note.slug:
            out.append((slug, m.start()))
    return out


def _add_edge(g: nx.MultiDiGraph, u: str, v: str, kind: str, weight: float, provenance: list[str],
              evidence: str) -> None:
    if g.has_edge(u, v, key=kind):  # the same relation seen again: more support
        data = g.edges[u, v, kind]
        data["provenance"] = sorted(set(data["provenance"]) | set(provenance))
        data["weight"] = max(data["weight"], weight)
        return
    g.add_edge(u, v, key=kind, type=kind, weight=float(weight), provenance=sorted(set(provenance)),
               evidence=evidence)


def _drop_generic(concepts: list[Concept], mentioned: dict[str, dict[str, int]],
                  n_chunks: int) -> tuple[list[Concept], set[str]]:
    """The concepts without the terms too generic to say anything (named in many chunks), and those terms."""
    df = Counter(cid for counts in mentioned.values() for cid in counts)
    generic = {c.id for c in concepts if c.kind == "term" and df[c.id] > GENERIC_SHARE * max(1, n_chunks)}
    return [c for c in concepts if c.id not in generic], generic


def _add_nodes(g: nx.MultiDiGraph, concepts: list[Concept], notes: Sequence[Note], chunks: Sequence[Chunk]) -> None:
    """Add the concept nodes (with each note's source) and the chunk nodes."""
    for c in concepts:
        g.add_node(c.id, kind=c.kind, name=c.name, aliases=c.aliases, area=c.area, description=c.description,
                   sources=c.sources)
    for note in notes:
        g.nodes[note_id(note.slug)]["source"] = note.source
    for c in chunks:
        g.add_node(c.chunk_id, kind="chunk", name=c.heading, source=c.source, area=c.area)


def _add_prerequisites(g: nx.MultiDiGraph, note: Note, own: str | None, slugs: set[str]) -> None:
    """Add the prerequisite_of edges into the note, from its front matter."""
    for pre in note.prerequisites:
        if pre in slugs:
            _add_edge(g, note_id(pre), note_id(note.slug), "prerequisite_of", 1.0, [own] if own else [],
                      f"front matter of {note.source}: prerequisites")


def _add_links(g: nx.MultiDiGraph, note: Note, note_chunks: list[Chunk], own: str | None, slugs: set[str]) -> None:
    """Add the links_to edges from the note, citing the chunks that hold each link."""
    for slug, _ in linked_slugs(note, slugs):
        holders = [c.chunk_id for c in note_chunks if re.search(rf"[(/]{re.escape(slug)}\.md", c.text)]
        _add_edge(g, note_id(note.slug), note_id(slug), "links_to", 1.0, holders or ([own] if own else []),
                  f"a link in {note.source}" + ("" if holders else " (See also)"))


def _add_definitions(g: nx.MultiDiGraph, note: Note, note_chunks: list[Chunk], own: str | None,
                     defined: list[tuple[str, str]], known: set[str]) -> None:
    """Add the defines edges from the note to the known terms it defines in bold."""
    here = note_id(note.slug)
    for cid, term in defined:
        if cid not in known or cid == here:
            continue
        pattern = re.compile(rf"\*\*{re.escape(term)}", re.IGNORECASE)
        holders = [c.chunk_id for c in note_chunks if pattern.search(c.text)] or ([own] if own else [])
        _add_edge(g, here, cid, "defines", 1.0, holders, f"**{term}** in {note.source}")


def _add_note_edges(g: nx.MultiDiGraph, notes: Sequence[Note], by_source: dict[str, list[Chunk]],
                    defines: dict[str, list[tuple[str, str]]], known: set[str]) -> None:
    """Add each note's prerequisite_of, links_to and defines edges, note by note."""
    summary_chunk = {s: next((c.chunk_id for c in cs if c.chunk_id.endswith("#summary:0")), cs[0].chunk_id)
                     for s, cs in by_source.items()}
    slugs = {n.slug for n in notes}
    for note in notes:
        own = summary_chunk.get(note.source)
        note_chunks = by_source.get(note.source, [])
        _add_prerequisites(g, note, own, slugs)
        _add_links(g, note, note_chunks, own, slugs)
        _add_definitions(g, note, note_chunks, own, defines.get(note.source, []), known)


def _add_mentions(g: nx.MultiDiGraph, chunks: Sequence[Chunk], mentioned: dict[str, dict[str, int]],
                  known: set[str]) -> dict[str, set[str]]:
    """Add the mentions edges (chunk -> concept, its own note left out); return each concept's chunks."""
    chunk_note = {c.chunk_id: note_id(c.slug or PurePosixPath(c.source).stem) for c in chunks}
    concept_chunks: dict[str, set[str]] = {}
    for chunk_id, counts in mentioned.items():
        for cid, n in counts.items():
            if cid not in known or cid == chunk_note[chunk_id]:
                continue
            _add_edge(g, chunk_id, cid, "mentions", float(n), [chunk_id], "named in the chunk")
            concept_chunks.setdefault(cid, set()).add(chunk_id)
        # a chunk is also about its own note: count it for co-occurrence (not as a mention edge)
        concept_chunks.setdefault(chunk_note[chunk_id], set()).add(chunk_id)
    return concept_chunks


def _cooccurring_pairs(concept_chunks: dict[str, set[str]]) -> dict[tuple[str, str], list[str]]:
    """Each pair of concepts (a < b) named together, with the chunks naming both."""
    in_chunk: dict[str, set[str]] = {}
    for cid, holders in concept_chunks.items():
        for h in holders:
            in_chunk.setdefault(h, set()).add(cid)
    pair_chunks: dict[tuple[str, str], list[str]] = {}
    for h, cids in in_chunk.items():
        for a, b in combinations(sorted(cids), 2):
            pair_chunks.setdefault((a, b), []).append(h)
    return pair_chunks


def _add_related(g: nx.MultiDiGraph, concept_chunks: dict[str, set[str]], n_chunks: int) -> None:
    """Add the related edges: co-occurrence in chunks, kept by normalized PMI."""
    n = max(1, n_chunks)
    for (a, b), holders in _cooccurring_pairs(concept_chunks).items():
        if len(holders) < MIN_COOCCUR:
            continue
        p_ab = len(holders) / n
        pmi = math.log(p_ab / ((len(concept_chunks[a]) / n) * (len(concept_chunks[b]) / n)))
        npmi = pmi / -math.log(p_ab) if p_ab < 1 else 1.0
        if npmi >= MIN_NPMI:
            _add_edge(g, a, b, "related", round(npmi, 4), holders, f"named together in {len(holders)} chunks")


def build_graph(notes: Sequence[Note], chunks: Sequence[Chunk]) -> nx.MultiDiGraph:
    """The knowledge graph of the notes, with every edge's provenance among ``chunks``."""
    concepts, defines = extract_concepts(notes)
    by_source: dict[str, list[Chunk]] = {}
    for c in chunks:
        by_source.setdefault(c.source, []).append(c)
    matcher = ConceptMatcher(concepts)
    mentioned = {c.chunk_id: matcher.counts(c.text) for c in chunks}
    concepts, generic = _drop_generic(concepts, mentioned, len(chunks))  # note concepts always stay
    known = {c.id for c in concepts}

    g = nx.MultiDiGraph(format="mathrag-graph", generic_terms=sorted(generic))
    _add_nodes(g, concepts, notes, chunks)
    _add_note_edges(g, notes, by_source, defines, known)
    concept_chunks = _add_mentions(g, chunks, mentioned, known)
    _add_related(g, concept_chunks, len(chunks))
    g.graph["cycles"] = prerequisite_cycles(g)
    return g


def prerequisite_graph(g: nx.MultiDiGraph) -> nx.DiGraph:
    """The notes and their prerequisite_of edges only (P -> N: study P before N)."""
    d = nx.DiGraph()
    d.add_nodes_from(n for n, k in g.nodes(data="kind") if k == "note")
    d.add_edges_from((u, v) for u, v, k in g.edges(keys=True) if k == "prerequisite_of")
    return d


def prerequisite_cycles(g: nx.MultiDiGraph) -> list[list[str]]:
    """Each prerequisite cycle as the list of its notes (empty when the prerequisites are acyclic)."""
    return [sorted(c) for c in nx.simple_cycles(prerequisite_graph(g))]


def edge_weight(kind: str, data: dict) -> float:
    """The strength of one concept-to-concept edge: its type's :data:`EDGE_WEIGHT` times its own weight."""
    return EDGE_WEIGHT[kind] * data["weight"]


def concept_graph(g: nx.MultiDiGraph) -> nx.Graph:
    """Concepts only, undirected and weighted, for communities and PageRank.

    Weight of a concept pair = sum over their edges of :func:`edge_weight`; plus 0.1 per chunk of note A
    that mentions concept B (mentions projected onto notes).
    """
    u_g = nx.Graph()
    u_g.add_nodes_from((n, d) for n, d in g.nodes(data=True) if d["kind"] != "chunk")
    for a, b, kind, data in g.edges(keys=True, data=True):
        if kind == "mentions":
            a = note_id(PurePosixPath(g.nodes[a]["source"]).stem)
            w = 0.1
        else:
            w = edge_weight(kind, data)
        if a == b or a not in u_g or b not in u_g:
            continue
        prev = u_g.edges[a, b]["weight"] if u_g.has_edge(a, b) else 0.0
        u_g.add_edge(a, b, weight=prev + w)
    return u_g
