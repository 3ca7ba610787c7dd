"""Pictures of the graph: the part of it behind an answer, drawn with matplotlib.

The subgraph behind an answer holds the concepts its hits came through (a graph-mode hit
carries the walk that found it: seed concept, hops, the chunk) and the note of every hit; a
chunk is drawn as its note. Between those concepts every prerequisite, link, definition and
co-occurrence edge of the graph is drawn, coloured by type; nodes are coloured by area.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import networkx as nx
import numpy as np

from graphrag.paths import AREA_ORDER

EDGE_STYLE = {  # type -> (colour, line style)
    "prerequisite_of": ("#d62728", "solid"),
    "links_to": ("#7f7f7f", "dashed"),
    "defines": ("#2ca02c", "solid"),
    "related": ("#1f77b4", "dotted"),
    "mentions": ("#9467bd", "dotted"),
}
SHOWN_EDGES = ("prerequisite_of", "links_to", "defines", "related")
MAX_NODES = 30


def answer_subgraph(g: nx.MultiDiGraph, hits) -> nx.MultiDiGraph:
    """The concepts behind a list of hits, and the graph's edges among them."""

    def as_concept(node: str) -> str | None:
        if node not in g:
            return None
        d = g.nodes[node]
        return f"note:{PurePosixPath(d['source']).stem}" if d["kind"] == "chunk" else node

    ranked: list[str] = []
    for hit in hits:
        for node in [f"note:{PurePosixPath(hit.source).stem}", *getattr(hit, "subgraph", {}).get("nodes", [])]:
            c = as_concept(node)
            if c and c in g and c not in ranked:
                ranked.append(c)
    keep = ranked[:MAX_NODES]
    sub = nx.MultiDiGraph()
    sub.add_nodes_from((n, g.nodes[n]) for n in keep)
    for u, v, key, d in g.subgraph(keep).edges(keys=True, data=True):
        if key in SHOWN_EDGES:
            sub.add_edge(u, v, key=key, **d)
    return sub


def _short(name: str, width: int = 22) -> str:
    name = name.split(":", 1)[0] if ":" in name and len(name.split(":", 1)[0]) > 3 else name
    return name if len(name) <= width else name[: width - 1] + "…"


def draw(sub: nx.MultiDiGraph, title: str = ""):
    """A matplotlib Figure of the subgraph (no pyplot state)."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(10, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axis("off")
    if not sub.number_of_nodes():
        ax.text(0.5, 0.5, "No graph to show yet: ask a question first.", ha="center", va="center")
        return fig
    pos = nx.spring_layout(nx.Graph(sub), seed=7, k=1.6 / np.sqrt(sub.number_of_nodes()))
    palette = matplotlib.colormaps["tab10"]
    areas = [sub.nodes[n].get("area", "") for n in sub]
    colours = [palette(AREA_ORDER.index(a) if a in AREA_ORDER else 9) for a in areas]
    sizes = [900 if sub.nodes[n]["kind"] == "note" else 350 for n in sub]
    for kind, (colour, style) in EDGE_STYLE.items():
        edges = [(u, v) for u, v, k in sub.edges(keys=True) if k == kind]
        if edges:
            nx.draw_networkx_edges(sub, pos, edgelist=edges, ax=ax, edge_color=colour, style=style, width=1.6,
                                   arrows=kind != "related", arrowsize=12, node_size=sizes, alpha=0.8)
    nx.draw_networkx_nodes(sub, pos, ax=ax, node_color=colours, node_size=sizes, edgecolors="black", linewidths=0.6)
    nx.draw_networkx_labels(sub, pos, ax=ax, labels={n: _short(sub.nodes[n]["name"]) for n in sub}, font_size=8)
    legend = [Line2D([0], [0], color=c, linestyle=s, label=k.replace("_", " ")) for k, (c, s) in EDGE_STYLE.items()
              if k in SHOWN_EDGES]
    shown_areas = sorted({a for a in areas if a}, key=lambda a: AREA_ORDER.index(a) if a in AREA_ORDER else 99)
    legend += [Line2D([0], [0], marker="o", linestyle="", markerfacecolor=palette(AREA_ORDER.index(a)
               if a in AREA_ORDER else 9), markeredgecolor="black", label=a.replace("_", " ")) for a in shown_areas]
    ax.legend(handles=legend, loc="lower left", fontsize=7, framealpha=0.85)
    ax.set_title(title, fontsize=10)
    return fig


def describe(sub: nx.MultiDiGraph) -> str:
    """Markdown: each concept of the picture with its summary or defining sentence."""
    lines = []
    for n in sub:
        d = sub.nodes[n]
        kind = "note" if d["kind"] == "note" else "term"
        lines.append(f"- **{d['name']}** ({kind}, {d.get('area', '').replace('_', ' ')}): {d.get('description', '')}")
    return "\n".join(lines)
