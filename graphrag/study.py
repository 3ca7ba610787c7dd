"""The graph steers practice: what to study next, and a map of what the learner has mastered.

A note is *weak* when the learner's recent grades on its exercises are low (at least ``MIN_GRADES`` of them, and
less than ``WEAK`` right), *solid* when they are high, *new* when it has none. "Study next" starts from each weak
note and walks back along its prerequisites (the ``prerequisite_of`` edges of the knowledge graph, which are the
notes' front-matter ``prerequisites``), in learning-path order: the first prerequisite that is itself weak or
new comes first, because the trouble is often there. Each suggestion says why, in the learner's own numbers:

    The Chain Rule: you missed 3 of 4 on it; Backpropagation depends on it.

The mastery map draws the prerequisite graph with each note coloured by its share of recent right answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from rag.corpus import AREAS, Note

MIN_GRADES = 2
WEAK = 0.6  # fewer right than this share: weak
SOLID = 0.75  # at least this share right: solid


@dataclass(frozen=True)
class Suggestion:
    source: str  # the note to study
    title: str
    reason: str  # why, in the learner's numbers


def prerequisite_digraph(notes: list[Note]) -> nx.DiGraph:
    """Notes (by source) with an edge P -> N when P is a prerequisite of N: the graph's ``prerequisite_of``."""
    by_slug = {n.slug: n for n in notes}
    g = nx.DiGraph()
    g.add_nodes_from((n.source, {"title": n.title, "area": n.area}) for n in notes)
    g.add_edges_from((by_slug[p].source, n.source) for n in notes for p in n.prerequisites if p in by_slug)
    return g


def state(grades: list[bool] | None) -> str:
    if not grades or len(grades) < MIN_GRADES:
        return "new" if not grades else "started"
    share = sum(grades) / len(grades)
    return "weak" if share < WEAK else "solid" if share >= SOLID else "started"


def _order(g: nx.DiGraph, n: str) -> tuple:
    area = g.nodes[n]["area"]
    return (AREAS.index(area) if area in AREAS else len(AREAS), g.nodes[n]["title"].lower())


def _missed(grades: list[bool]) -> str:
    return f"you missed {grades.count(False)} of {len(grades)}"


def study_next(g: nx.DiGraph, grades: dict[str, list[bool]], limit: int = 3) -> list[Suggestion]:
    """What to study next, most useful first (empty when nothing is weak). For each weak note, the nearest weak
    prerequisite (any number of steps back), else a direct prerequisite not practised yet, else the note itself;
    the weak notes that build on other weak notes are looked at first, so the shared trouble comes first."""
    weak = [s for s in g if state(grades.get(s)) == "weak"]
    weak_before = {w: [a for a in nx.ancestors(g, w) if a in weak] for w in weak}
    out: dict[str, Suggestion] = {}
    for w in sorted(weak, key=lambda s: (-len(weak_before[s]), -grades[s].count(False), _order(g, s))):
        steps = nx.shortest_path_length(g.reverse(copy=False), w)  # how many prerequisite steps back
        weak_ancestor = sorted(weak_before[w], key=lambda a: (steps[a], _order(g, a)))
        new_parent = sorted((p for p in g.predecessors(w) if state(grades.get(p)) == "new"),
                            key=lambda p: _order(g, p))
        target = (weak_ancestor or new_parent or [w])[0]
        out.setdefault(target, Suggestion(target, g.nodes[target]["title"], _reason(g, grades, target, w)))
        if len(out) >= limit:
            break
    return list(out.values())


def _reason(g: nx.DiGraph, grades: dict[str, list[bool]], target: str, weak: str) -> str:
    title, weak_title = g.nodes[target]["title"], g.nodes[weak]["title"]
    if target == weak:
        dependents = sorted(g.successors(weak), key=lambda n: _order(g, n))[:2]
        tail = (f"; {' and '.join(g.nodes[d]['title'] for d in dependents)} "
                f"{'depend' if len(dependents) > 1 else 'depends'} on it" if dependents
                else "; its prerequisites look solid")
        return f"{title}: {_missed(grades[weak])} on it{tail}."
    if state(grades.get(target)) == "weak":
        return f"{title}: {_missed(grades[target])} on it; {weak_title} depends on it ({_missed(grades[weak])} there)."
    return f"{title}: not practised yet, and {weak_title} builds on it ({_missed(grades[weak])} there)."


MASTERY_COLOURS = {"new": "#d9d9d9", "started": "#fdd37a", "weak": "#e6553a", "solid": "#3aa55d"}


def mastery_figure(g: nx.DiGraph, grades: dict[str, list[bool]]):
    """The prerequisite graph, each note coloured new / started / weak / solid (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 7))
    depth = {n: 0 for n in g}  # a note sits one row below its deepest prerequisite
    for n in nx.topological_sort(g) if nx.is_directed_acyclic_graph(g) else g:
        for m in g.successors(n):
            depth[m] = max(depth[m], depth[n] + 1)
    pos = nx.multipartite_layout(g, subset_key={d: [n for n in g if depth[n] == d] for d in set(depth.values())},
                                 align="horizontal")
    pos = {n: (x, -y) for n, (x, y) in pos.items()}
    colours = [MASTERY_COLOURS[state(grades.get(n))] for n in g]
    nx.draw_networkx_edges(g, pos, ax=ax, alpha=0.15, arrows=False)
    nx.draw_networkx_nodes(g, pos, ax=ax, node_color=colours, node_size=120, edgecolors="#555555", linewidths=0.5)
    practised = {n: g.nodes[n]["title"][:24] for n in g if grades.get(n)}
    nx.draw_networkx_labels(g, pos, labels=practised, ax=ax, font_size=7)
    for name, colour in MASTERY_COLOURS.items():
        ax.scatter([], [], c=colour, label=name, edgecolors="#555555")
    ax.legend(loc="lower right", title="mastery", fontsize=8)
    ax.set_title("Mastery map: notes by prerequisite depth (top: foundations)")
    ax.axis("off")
    fig.tight_layout()
    return fig
