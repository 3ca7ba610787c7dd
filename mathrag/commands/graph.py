"""``mathrag graph``: build the knowledge graph, look at it, and find learning paths.

``mathrag index`` keeps the graph in step with the index too (:func:`graph_summary` is its line).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def graph_summary(data, report) -> str:
    """One line: what ``ensure_graph`` did, and the size of the graph."""
    m = data.manifest
    return (f"{report.summary()}: {sum(m['nodes'].values())} nodes, {sum(m['edges'].values())} edges, "
            f"{m['communities']} communities")


def _load(progress: bool = True, rebuild: bool = False):
    from graphrag.retriever import GraphRetriever

    return GraphRetriever.load(progress=progress, rebuild=rebuild)


def cmd_build(args: argparse.Namespace) -> int:
    from graphrag.store import ensure_graph
    from rag.index import update_index

    index, _ = update_index(progress=not args.json)
    data, report = ensure_graph(index, rebuild=args.rebuild, progress=not args.json)
    if args.json:
        print(json.dumps({**report.__dict__, **{k: data.manifest[k] for k in ("nodes", "edges", "communities",
                                                                              "cycles")}}, indent=2))
        return 0
    print(report.summary())
    m = data.manifest
    print(f"nodes: {m['nodes']}")
    print(f"edges: {m['edges']}")
    print(f"{m['communities']} communities")
    for cycle in m["cycles"]:
        print(f"warning: prerequisite cycle: {' -> '.join(cycle)} -> {cycle[0]}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from graphrag.paths import stats

    r = _load(progress=not args.json)
    s = stats(r.data.graph, r.data.communities, r.data.manifest)
    if args.json:
        print(json.dumps(s, indent=2, ensure_ascii=False))
        return 0
    print(f"nodes: {', '.join(f'{n} {k}' for k, n in s['nodes'].items())}")
    print(f"edges: {', '.join(f'{n} {k}' for k, n in s['edges'].items())}")
    print(f"concepts form {s['concept_components']} connected component(s); the largest has "
          f"{s['largest_component']}")
    print(f"communities: {', '.join(f'{n} at {lvl}' for lvl, n in s['communities_per_level'].items())}")
    print("most connected: " + ", ".join(f"{name} ({d})" for name, d in s["most_connected"]))
    print(f"prerequisites acyclic: {s['prerequisite_dag']}; every edge has provenance: "
          f"{s['every_edge_has_provenance']}")
    for cycle in s["cycles"]:
        print(f"warning: prerequisite cycle: {' -> '.join(cycle)} -> {cycle[0]}")
    return 0


def cmd_path(args: argparse.Namespace) -> int:
    from graphrag.paths import learning_path

    r = _load(progress=not args.json)
    path = learning_path(r.data.graph, args.concept)
    if args.json:
        print(json.dumps({"target": path.target, "note": path.note, "cycles": path.cycles,
                          "steps": [s.__dict__ for s in path.steps]}, indent=2, ensure_ascii=False))
        return 0
    name = r.data.graph.nodes[path.target]["name"]
    via = "" if path.target == path.note else f" (defined in {r.data.graph.nodes[path.note]['name']})"
    print(f"Learning path to {name}{via}: {len(path.steps)} notes, prerequisites first\n")
    width = shutil.get_terminal_size((100, 20)).columns
    for i, step in enumerate(path.steps, start=1):
        print(f"{i:2d}. {step.title}  [{step.area}]  {step.source}")
        summary = step.summary if len(step.summary) < width - 6 else step.summary[: width - 9] + "..."
        print(f"    {summary}")
    for cycle in path.cycles:
        print(f"\nwarning: these notes are each other's prerequisites (a cycle): {', '.join(cycle)}")
    return 0


def cmd_neighbors(args: argparse.Namespace) -> int:
    from graphrag.paths import neighbors

    r = _load(progress=not args.json)
    concept, groups = neighbors(r.data.graph, args.concept, limit=args.limit)
    if args.json:
        print(json.dumps({"concept": concept, "neighbors": groups}, indent=2, ensure_ascii=False))
        return 0
    print(f"{r.data.graph.nodes[concept]['name']} ({concept})")
    for relation, items in groups.items():
        print(f"  {relation}:")
        for direction, name, weight in items:
            print(f"    {direction} {name}" + (f"  ({weight:g})" if relation in ("related", "mentioned in") else ""))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from graphrag.store import live_graph_dir

    _load(progress=False)  # makes sure the stored graph is current
    source = live_graph_dir() / ("graph.graphml" if args.format == "graphml" else "graph.json")
    out = Path(args.out)
    shutil.copyfile(source, out)
    print(f"wrote {out} ({args.format}, {out.stat().st_size // 1024} KiB)")
    return 0


def register(sub) -> None:
    p = sub.add_parser("graph", help="the knowledge graph: build, stats, learning paths, neighbours, export",
                       description="Build and explore the knowledge graph of the notes' concepts.")
    actions = p.add_subparsers(dest="graph_command", metavar="ACTION", required=True)

    b = actions.add_parser("build", help="build or update the graph (also done by `mathrag index`)")
    b.add_argument("--rebuild", action="store_true", help="rebuild and re-embed everything")
    b.add_argument("--json", action="store_true", help="print what was done as JSON")
    b.set_defaults(func=cmd_build)

    s = actions.add_parser("stats", help="counts of nodes and edges, components, communities, cycles")
    s.add_argument("--json", action="store_true", help="print as JSON")
    s.set_defaults(func=cmd_stats)

    pa = actions.add_parser("path", help="what to study before a concept, in order",
                            description="Print the prerequisites of a concept in study order (a topological "
                                        "order of the prerequisite edges), each with its note's summary.")
    pa.add_argument("concept", help="a concept name or alias, e.g. attention, SVD, 'KL divergence'")
    pa.add_argument("--json", action="store_true", help="print as JSON")
    pa.set_defaults(func=cmd_path)

    n = actions.add_parser("neighbors", help="a concept's relations, grouped by edge type")
    n.add_argument("concept", help="a concept name or alias")
    n.add_argument("--limit", type=int, default=12, help="at most this many per relation (default 12)")
    n.add_argument("--json", action="store_true", help="print as JSON")
    n.set_defaults(func=cmd_neighbors)

    e = actions.add_parser("export", help="write the graph as GraphML (Gephi, yEd) or node-link JSON")
    e.add_argument("out", help="output file")
    e.add_argument("--format", choices=["graphml", "json"], default="graphml", help="default graphml")
    e.set_defaults(func=cmd_export)
