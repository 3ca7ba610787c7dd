"""Pictures of the graph: the part of it behind an answer, as a plotly figure (hover a node for
its summary; click a legend entry to hide an edge type or an area) or a matplotlib PNG.

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
SHOWN_EDGES = ("prerequisite_of", "defines", "links_to", "related")  # strongest first
ARROWS = ("prerequisite_of", "defines")
MAX_NODES = 30
MIN_NODES = 10  # fewer concepts behind an answer than this: their neighbours are drawn too, fainter


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
    behind = set(keep)
    if keep and len(keep) < MIN_NODES:  # the answer came from one or two notes: show where they sit
        for node in list(keep):
            for neighbour in _neighbourhood(g, node):
                if len(keep) >= MIN_NODES:
                    break
                if neighbour not in keep:
                    keep.append(neighbour)
    sub = nx.MultiDiGraph()
    sub.add_nodes_from((n, {**g.nodes[n], "behind": n in behind}) for n in keep)
    for u, v, key, d in g.subgraph(keep).edges(keys=True, data=True):
        if key in SHOWN_EDGES:
            sub.add_edge(u, v, key=key, **d)
    return sub


def _neighbourhood(g: nx.MultiDiGraph, node: str) -> list[str]:
    """A concept's context, nearest first: its prerequisites, the notes that build on it, the terms it
    defines, then the notes it links to or that link to it."""
    ins = [(u, k) for u, _, k in g.in_edges(node, keys=True)]
    outs = [(v, k) for _, v, k in g.out_edges(node, keys=True)]
    order = [[u for u, k in ins if k == "prerequisite_of"], [v for v, k in outs if k == "prerequisite_of"],
             [v for v, k in outs if k == "defines"], [v for v, k in outs if k == "links_to"],
             [u for u, k in ins if k == "links_to"]]
    return list(dict.fromkeys(n for group in order for n in group))


def _short(name: str, width: int = 22) -> str:
    name = name.split(":", 1)[0] if ":" in name and len(name.split(":", 1)[0]) > 3 else name
    return name if len(name) <= width else name[: width - 1] + "…"


def layout(sub: nx.MultiDiGraph) -> dict[str, np.ndarray]:
    """Node positions, the same for both pictures (seeded spring layout)."""
    return nx.spring_layout(nx.Graph(sub), seed=7, k=1.6 / np.sqrt(max(sub.number_of_nodes(), 1)))


def _hover(d: dict, width: int = 60) -> str:
    """Plotly hover text: the name, kind and area, and the description wrapped (as text, never as HTML)."""
    import html
    import textwrap

    kind = "note" if d["kind"] == "note" else "term"
    role = "" if d.get("behind", True) else " · nearby, not used by the answer"
    text = "<br>".join(textwrap.wrap(html.escape(d.get("description", "")), width)[:8])
    return (f"<b>{html.escape(d['name'])}</b><br><i>{kind} · {d.get('area', '').replace('_', ' ')}{role}</i>"
            f"<br>{text}")


def _strongest_edges(sub: nx.MultiDiGraph) -> dict[str, list[tuple[str, str]]]:
    """One line per pair of concepts, of its most telling type (a prerequisite is usually a link too);
    weakest types first, so the strongest are drawn on top."""
    strongest: dict[frozenset, tuple[int, str, str, str]] = {}
    for u, v, kind in sub.edges(keys=True):
        rank = SHOWN_EDGES.index(kind)
        pair = frozenset((u, v))
        if pair not in strongest or rank < strongest[pair][0]:
            strongest[pair] = (rank, kind, u, v)
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for _, kind, u, v in sorted(strongest.values(), reverse=True):
        by_kind.setdefault(kind, []).append((u, v))
    return by_kind


def interactive(sub: nx.MultiDiGraph, title: str = ""):
    """A plotly Figure of the subgraph: nodes by area, edges by type, the summary on hover."""
    import plotly.graph_objects as go
    from matplotlib.colors import to_hex

    fig = go.Figure()
    fig.update_layout(title=title, showlegend=True, hovermode="closest", plot_bgcolor="white", height=620,
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(font=dict(size=11)),
                      xaxis=dict(visible=False), yaxis=dict(visible=False))
    if not sub.number_of_nodes():
        fig.add_annotation(text="No graph to show yet: ask a question first.", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
        return fig
    pos = layout(sub)
    for kind, edges in _strongest_edges(sub).items():
        colour, style = EDGE_STYLE[kind]
        xs, ys = [], []
        for u, v in edges:
            xs += [pos[u][0], pos[v][0], None]
            ys += [pos[u][1], pos[v][1], None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=kind.replace("_", " "), hoverinfo="skip",
                                 legendrank=1 + SHOWN_EDGES.index(kind),
                                 line=dict(color=colour, width=2 if kind == "prerequisite_of" else 1.4,
                                           dash={"solid": "solid", "dashed": "dash", "dotted": "dot"}[style])))
        if kind in ARROWS:  # an arrowhead at the target's side
            for u, v in edges:
                fig.add_annotation(x=pos[v][0], y=pos[v][1], ax=pos[u][0], ay=pos[u][1], xref="x", yref="y",
                                   axref="x", ayref="y", showarrow=True, arrowhead=2, arrowsize=1.2,
                                   arrowwidth=1.4, arrowcolor=colour, standoff=12, text="")
    by_area: dict[str, list[str]] = {}
    for n in sub:
        by_area.setdefault(sub.nodes[n].get("area", ""), []).append(n)
    for area in sorted(by_area, key=lambda a: AREA_ORDER.index(a) if a in AREA_ORDER else 99):
        nodes = by_area[area]
        colour = to_hex(area_colour(area))
        fig.add_trace(go.Scatter(
            x=[pos[n][0] for n in nodes], y=[pos[n][1] for n in nodes], mode="markers+text",
            name=area.replace("_", " ") or "other", legendrank=10 + len(fig.data),
            text=[_short(sub.nodes[n]["name"]) for n in nodes],
            textposition="top center", textfont=dict(size=10), hovertext=[_hover(sub.nodes[n]) for n in nodes],
            hoverinfo="text", customdata=nodes,
            marker=dict(color=colour, size=[26 if sub.nodes[n]["kind"] == "note" else 14 for n in nodes],
                        opacity=[1.0 if sub.nodes[n].get("behind", True) else 0.45 for n in nodes],
                        line=dict(color="black", width=0.8))))
    return fig


def area_colour(area: str) -> tuple:
    """An area's colour (RGBA): the strong colours of tab20 first, then the light ones; grey for no area."""
    import matplotlib

    if area not in AREA_ORDER:
        return (0.6, 0.6, 0.6, 1.0)
    i = AREA_ORDER.index(area)
    return matplotlib.colormaps["tab20"](2 * i if i < 10 else 2 * (i - 10) + 1)


def draw(sub: nx.MultiDiGraph, title: str = ""):
    """A matplotlib Figure of the subgraph (no pyplot state)."""
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
    pos = layout(sub)
    areas = [sub.nodes[n].get("area", "") for n in sub]
    colours = [area_colour(a) for a in areas]
    sizes = [900 if sub.nodes[n]["kind"] == "note" else 350 for n in sub]
    for kind, (colour, style) in EDGE_STYLE.items():
        edges = [(u, v) for u, v, k in sub.edges(keys=True) if k == kind]
        if edges:
            nx.draw_networkx_edges(sub, pos, edgelist=edges, ax=ax, edge_color=colour, style=style, width=1.6,
                                   arrows=kind != "related", arrowsize=12, node_size=sizes, alpha=0.8)
    nx.draw_networkx_nodes(sub, pos, ax=ax, node_color=colours, node_size=sizes, edgecolors="black", linewidths=0.6,
                           alpha=[1.0 if sub.nodes[n].get("behind", True) else 0.45 for n in sub])
    nx.draw_networkx_labels(sub, pos, ax=ax, labels={n: _short(sub.nodes[n]["name"]) for n in sub}, font_size=8)
    legend = [Line2D([0], [0], color=c, linestyle=s, label=k.replace("_", " ")) for k, (c, s) in EDGE_STYLE.items()
              if k in SHOWN_EDGES]
    shown_areas = sorted({a for a in areas if a}, key=lambda a: AREA_ORDER.index(a) if a in AREA_ORDER else 99)
    legend += [Line2D([0], [0], marker="o", linestyle="", markerfacecolor=area_colour(a), markeredgecolor="black",
                      label=a.replace("_", " ")) for a in shown_areas]
    ax.legend(handles=legend, loc="lower left", fontsize=7, framealpha=0.85)
    ax.set_title(title, fontsize=10)
    return fig


def describe(sub: nx.MultiDiGraph) -> str:
    """Markdown: each concept of the picture with its summary or defining sentence."""
    lines = []
    for n in sub:
        d = sub.nodes[n]
        kind = ("note" if d["kind"] == "note" else "term") + ("" if d.get("behind", True) else ", nearby")
        lines.append(f"- **{d['name']}** ({kind}, {d.get('area', '').replace('_', ' ')}): {d.get('description', '')}")
    return "\n".join(lines)
