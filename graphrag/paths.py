"""Learning paths and exploration: what to study before a concept, what it connects to, the graph in numbers.

A learning path for concept X is every note X depends on through ``prerequisite_of`` edges
(the ancestors of X's note in the prerequisite graph), in an order where each note comes after
all of its own prerequisites: a topological order. Among the notes that are ready at a step,
the one of the earlier area in the syllabus (linear algebra, calculus, probability, ...) comes
first, then by title, so the order is deterministic. If the prerequisites have a cycle, its
notes are studied together (the cycle is collapsed to one step) and the cycle is reported.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass, field

import networkx as nx

from graphrag.build import prerequisite_graph
from graphrag.concepts import word_key
from rag.corpus import AREAS

AREA_ORDER = AREAS  # one home: the corpus's list of areas


class UnknownConcept(ValueError):
    """A name that matches no concept; the message suggests the closest names."""


@dataclass
class PathStep:
    concept: str
    title: str
    area: str
    source: str
    summary: str


@dataclass
class LearningPath:
    target: str  # the concept asked about
    note: str  # the note concept the path leads to
    steps: list[PathStep] = field(default_factory=list)  # prerequisites first, the target's note last
    cycles: list[list[str]] = field(default_factory=list)


def resolve(g: nx.MultiDiGraph, name: str) -> str:
    """The concept id for a name, alias or id; UnknownConcept with suggestions when there is none."""
    name = name.strip()
    if not name:
        raise UnknownConcept("give a concept name, e.g. 'attention' or 'SVD'")
    if name in g and g.nodes[name]["kind"] != "chunk":
        return name
    names: dict[str, str] = {}
    for n, d in g.nodes(data=True):
        if d["kind"] == "chunk":
            continue
        for alias in [d["name"], *d.get("aliases", [])]:
            names.setdefault(word_key(alias), n)
    key = word_key(name)
    for candidate in (key, key[:-1] if key.endswith("s") else None, key[:-2] if key.endswith("es") else None):
        if candidate and candidate in names:
            return names[candidate]
    close = difflib.get_close_matches(key, list(names), n=5, cutoff=0.6)
    close += [k for k in names if key and key in k and k not in close][: 5 - len(close)]
    shown = ", ".join(sorted({g.nodes[names[k]]["name"] for k in close})) or "none; try `mathrag graph stats`"
    raise UnknownConcept(f"no concept named '{name}'; closest: {shown}")


def note_of(g: nx.MultiDiGraph, concept: str) -> str:
    """A note concept is its own note; a term's note is the first note that defines it."""
    if g.nodes[concept]["kind"] == "note":
        return concept
    definers = sorted(u for u, _, k in g.in_edges(concept, keys=True) if k == "defines")
    if not definers:
        raise UnknownConcept(f"'{g.nodes[concept]['name']}' is defined in no note")
    return definers[0]


def learning_path(g: nx.MultiDiGraph, name: str) -> LearningPath:
    concept = resolve(g, name)
    target = note_of(g, concept)
    pre = prerequisite_graph(g)
    needed = nx.ancestors(pre, target) | {target}
    sub = pre.subgraph(needed)
    cond = nx.condensation(sub)  # each cycle becomes one node; a DAG
    members = cond.graph["mapping"]  # note -> condensed node

    def sort_key(c: int) -> tuple:
        notes = sorted(n for n, m in members.items() if m == c)
        first = min(notes, key=lambda n: _key(g, n))
        return _key(g, first)

    order = nx.lexicographical_topological_sort(cond, key=sort_key)
    steps = []
    for c in order:
        for n in sorted((n for n, m in members.items() if m == c), key=lambda n: _key(g, n)):
            d = g.nodes[n]
            steps.append(PathStep(n, d["name"], d["area"], d.get("source", ""), d["description"]))
    cycles = [sorted(c) for c in nx.simple_cycles(sub)]
    return LearningPath(concept, target, steps, cycles)


def _key(g: nx.MultiDiGraph, n: str) -> tuple:
    d = g.nodes[n]
    area = AREA_ORDER.index(d["area"]) if d["area"] in AREA_ORDER else len(AREA_ORDER)
    return (area, d["name"].lower())


def neighbors(g: nx.MultiDiGraph, name: str, limit: int = 12) -> tuple[str, dict[str, list[tuple[str, str, float]]]]:
    """(concept, {relation: [(direction, neighbour name, weight)]}) over concept-to-concept edges.

    Mentions are summarised by the notes whose chunks name the concept.
    """
    concept = resolve(g, name)
    out: dict[str, list[tuple[str, str, float]]] = {}
    for _, v, key, d in g.out_edges(concept, keys=True, data=True):
        out.setdefault(key, []).append(("->", g.nodes[v]["name"], d["weight"]))
    mentioned_in: Counter = Counter()
    for u, _, key, d in g.in_edges(concept, keys=True, data=True):
        if key == "mentions":
            mentioned_in[g.nodes[u]["source"]] += 1
        else:
            out.setdefault(key, []).append(("<-", g.nodes[u]["name"], d["weight"]))
    if mentioned_in:
        out["mentioned in"] = [("<-", source, float(n)) for source, n in mentioned_in.most_common()]
    return concept, {k: sorted(v, key=lambda t: (-t[2], t[1]))[:limit] for k, v in sorted(out.items())}


def stats(g: nx.MultiDiGraph, communities=(), manifest: dict | None = None) -> dict:
    """Counts and shape of the graph, JSON-able."""
    kinds = Counter(k for _, k in g.nodes(data="kind"))
    edges = Counter(k for *_, k in g.edges(keys=True))
    concepts = g.subgraph(n for n, k in g.nodes(data="kind") if k != "chunk")
    undirected = nx.Graph(concepts.to_undirected())
    components = sorted((len(c) for c in nx.connected_components(undirected)), reverse=True)
    degree = sorted(((d, n) for n, d in undirected.degree()), reverse=True)[:10]
    levels = Counter(c.level for c in communities)
    pre = prerequisite_graph(g)
    return {
        "nodes": dict(kinds), "edges": dict(edges),
        "concept_components": len(components), "largest_component": components[0] if components else 0,
        "most_connected": [(g.nodes[n]["name"], d) for d, n in degree],
        "communities_per_level": {f"level {lvl}": n for lvl, n in sorted(levels.items())},
        "prerequisite_dag": nx.is_directed_acyclic_graph(pre),
        "cycles": (manifest or {}).get("cycles", []),
        "generic_terms_dropped": (manifest or {}).get("generic_terms", []),
        "every_edge_has_provenance": all(d.get("provenance") for *_, d in g.edges(keys=True, data=True)),
    }


__all__ = ["LearningPath", "UnknownConcept", "learning_path", "neighbors", "resolve", "stats"]
