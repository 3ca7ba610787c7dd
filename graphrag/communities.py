"""Communities of concepts and a report for each: what global search ranks against a question.

Louvain (``networkx.community.louvain_communities``, seeded so runs agree) splits the concept
graph (:func:`graphrag.build.concept_graph`) into communities that maximise the modularity

    Q = (1 / 2m) sum_{i,j} [ A_ij - gamma k_i k_j / (2m) ] [c_i = c_j]

(A: edge weights, k_i: weighted degree, m: total weight). The resolution gamma sets the scale:
gamma < 1 gives a few broad communities (the areas of the syllabus), gamma > 1 many narrow
ones (a topic and its terms). Levels are computed at ``RESOLUTIONS``.

A community's report is extractive, written from the notes themselves:

- key concepts: its members ranked by PageRank on the whole concept graph (the concepts many
  well-connected concepts point at come first); the title joins the top three;
- notes: the member notes, and the notes defining member terms, most central first;
- summary: the summaries of its top notes, then its key sentences: sentences of the member
  notes' chunks that name the most member concepts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import networkx as nx

from graphrag.build import concept_graph
from graphrag.concepts import Concept, ConceptMatcher
from rag.chunking import Chunk

RESOLUTIONS = (0.5, 1.0, 2.0)
SEED = 42
KEY_CONCEPTS, SUMMARY_NOTES, KEY_SENTENCES = 8, 3, 3


@dataclass
class Community:
    id: str  # "L<level>-C<index>", index ordered by size
    level: int
    resolution: float
    members: list[str]  # concept ids, most central first
    title: str = ""
    summary: str = ""
    key_concepts: list[str] = field(default_factory=list)  # names
    notes: list[str] = field(default_factory=list)  # sources
    key_sentences: list[dict] = field(default_factory=list)  # {"text", "chunk_id"}

    def report_text(self) -> str:
        """What is embedded for global search."""
        return f"{self.title}\n{', '.join(self.key_concepts)}\n{self.summary}"

    def to_dict(self) -> dict:
        return asdict(self)


def detect(g: nx.MultiDiGraph, chunks: Sequence[Chunk], resolutions=RESOLUTIONS,
           ) -> tuple[list[Community], dict[str, float]]:
    """Communities at each resolution, with their reports, and the concepts' PageRank."""
    cg = concept_graph(g)
    rank = nx.pagerank(cg, weight="weight") if cg.number_of_edges() else {n: 1.0 for n in cg}
    chunks_of: dict[str, list[tuple[str, str]]] = {}  # source -> (chunk_id, text)
    for chunk in chunks:
        chunks_of.setdefault(chunk.source, []).append((chunk.chunk_id, chunk.text))
    out = []
    for level, gamma in enumerate(resolutions):
        parts = nx.community.louvain_communities(cg, weight="weight", resolution=gamma, seed=SEED)
        parts = sorted(parts, key=lambda p: (-len(p), min(p)))
        for i, part in enumerate(parts):
            members = sorted(part, key=lambda n: (-rank.get(n, 0.0), n))
            c = Community(f"L{level}-C{i}", level, gamma, members)
            _write_report(c, g, chunks_of)
            out.append(c)
    return out, rank


def _write_report(c: Community, g: nx.MultiDiGraph, chunks_of: dict[str, list[tuple[str, str]]]) -> None:
    nodes = g.nodes
    c.key_concepts = [nodes[m]["name"] for m in c.members[:KEY_CONCEPTS]]
    c.title = " · ".join(_short(nodes[m]["name"]) for m in c.members[:3])
    notes: list[str] = []
    for m in c.members:
        for s in [nodes[m].get("source")] if nodes[m]["kind"] == "note" else nodes[m].get("sources", []):
            if s and s not in notes:
                notes.append(s)
    c.notes = notes
    summaries = [nodes[m]["description"] for m in c.members if nodes[m]["kind"] == "note"][:SUMMARY_NOTES]
    if not summaries:  # a community of terms only: their defining sentences
        summaries = [nodes[m]["description"] for m in c.members[:SUMMARY_NOTES]]
    matcher = ConceptMatcher(Concept(m, nodes[m]["kind"], nodes[m]["name"], list(nodes[m].get("aliases", [])))
                             for m in c.members)
    scored = []
    for source in notes[:SUMMARY_NOTES + 2]:
        for chunk_id, text in chunks_of.get(source, []):
            if chunk_id.endswith("#summary:0"):
                continue
            for sentence in _sentences(text):
                found = {cid for cid, _, _ in matcher.find(sentence)}
                if len(found) >= 2:
                    scored.append((-len(found), len(sentence), sentence, chunk_id))
    scored.sort()
    seen, key = set(), []
    for _, _, sentence, chunk_id in scored:
        if sentence not in seen:
            seen.add(sentence)
            key.append({"text": sentence, "chunk_id": chunk_id})
        if len(key) == KEY_SENTENCES:
            break
    c.key_sentences = key
    c.summary = " ".join(summaries + [k["text"] for k in key])


def _short(name: str) -> str:
    """A short form for titles: "Singular Value Decomposition (SVD)" -> "SVD", "Momentum: ..." -> "Momentum"."""
    m = re.match(r"^.*\(([^()]{2,12})\)$", name)
    if m:
        return m.group(1)
    return name.split(":", 1)[0] if ":" in name and len(name.split(":", 1)[0]) >= 3 else name


def _sentences(text: str) -> list[str]:
    """Prose sentences of a chunk: no display math, code or tables; 40 to 300 characters."""
    prose = re.sub(r"\$\$.*?\$\$|```.*?```", " ", text, flags=re.S)
    prose = "\n".join(line for line in prose.splitlines() if not line.lstrip().startswith(("|", "#")))
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z])", " ".join(prose.split()))
    return [p.strip() for p in parts if 40 <= len(p.strip()) <= 300]
