"""Benchmark suite ``graph`` (``mathrag bench --suite graph``): the knowledge graph's costs, as ratios.

Measured side by side in one run:

- build: the graph from nothing (structure, communities, embeddings of concepts and reports)
  against the search index from nothing, on the same private copy of the corpus;
- search: graph-local p50 against dense p50 on the development questions (target <= 2x);
  graph-global and graph-hybrid are reported beside them;
- growth: the structure (graph + communities, no embeddings) built on the corpus replicated
  x1, x4 and x16 (each copy's notes renamed, their links and prerequisites pointing inside the
  copy). The growth exponent log(t16 / t1) / log 16 is 1 for linear growth; a PNG plots it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from rag.artifacts import write_atomic
from rag.bench import report, suite
from rag.corpus import Note, load_corpus
from rag.evaluation import load_questions, percentile
from rag.settings import Settings

REPLICAS = (1, 4, 16)


def replicate(notes: list[Note], copies: int) -> list[Note]:
    """``copies`` renamed copies of the notes; links and prerequisites point inside each copy."""
    out = []
    for i in range(copies):
        suffix = f"-r{i}"
        for n in notes:
            body = re.sub(r"\]\(([^)#\s]*?[\w-]+)\.md", rf"](\g<1>{suffix}.md", n.body)
            out.append(dataclasses.replace(
                n, slug=n.slug + suffix, title=f"{n.title} {i}" if i else n.title, body=body,
                source=n.source.replace(".md", f"{suffix}.md"),
                prerequisites=[p + suffix for p in n.prerequisites]))
    return out


def _structure_seconds(notes: list[Note]) -> tuple[float, int, int]:
    from graphrag.build import build_graph
    from graphrag.communities import detect
    from rag.chunking import chunk_corpus

    chunks = chunk_corpus(notes)
    start = time.perf_counter()
    g = build_graph(notes, chunks)
    detect(g, chunks)
    return time.perf_counter() - start, g.number_of_nodes(), g.number_of_edges()


@suite("graph")
def bench_graph(settings: Settings, quick: bool = False) -> dict:
    from graphrag.retriever import GraphRetriever
    from graphrag.store import build_and_save
    from rag.index import update_index

    result: dict = {}
    # --- build from nothing: the index, then the graph on it, in a private home
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        shutil.copytree(settings.corpus_dir, corpus)
        private = Settings(home=Path(tmp) / "home", corpus_dir=corpus)
        start = time.perf_counter()
        index, _ = update_index(private, progress=False)
        index_s = time.perf_counter() - start
        start = time.perf_counter()
        data, _ = build_and_save(index, private, progress=False)
        graph_s = time.perf_counter() - start
    result["build"] = {"index_s": index_s, "graph_s": graph_s, "ratio": graph_s / index_s,
                       "nodes": sum(data.manifest["nodes"].values()), "edges": sum(data.manifest["edges"].values())}

    # --- search latency against dense, on the development questions
    retriever = GraphRetriever.load(settings, progress=False)
    questions = [q.question for q in load_questions() if q.notes][: 40 if quick else None]
    retriever.search(questions[0], k=5, mode="graph-local")  # warm up
    modes, latencies = {}, {}
    for mode in ("dense", "graph-local", "graph-global", "graph-hybrid"):
        times = []
        for q in questions:
            start = time.perf_counter()
            retriever.search(q, k=5, mode=mode)
            times.append(time.perf_counter() - start)
        if mode != "dense":  # the rag suite plots dense already
            latencies[mode] = times
        modes[mode] = {"p50_ms": 1000 * percentile(times, 50), "p95_ms": 1000 * percentile(times, 95)}
    for r in modes.values():
        r["ratio_vs_dense"] = r["p50_ms"] / modes["dense"]["p50_ms"]
    result["search"] = {"questions": len(questions), "modes": modes, "target": "graph-local <= 2x dense"}

    # --- growth with the corpus size (structure only)
    notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
    growth = []
    for copies in REPLICAS[:2] if quick else REPLICAS:
        runs = [_structure_seconds(replicate(notes, copies)) for _ in range(1 if copies > 1 or quick else 3)]
        seconds = statistics.median(r[0] for r in runs)
        growth.append({"copies": copies, "notes": len(notes) * copies, "seconds": seconds, "nodes": runs[0][1],
                       "edges": runs[0][2]})
    first, last = growth[0], growth[-1]
    result["growth"] = {"runs": growth, "exponent": math.log(last["seconds"] / first["seconds"])
                        / math.log(last["copies"] / first["copies"])}
    plot = settings.reports_dir / "bench_graph_growth.png"
    _plot_growth(growth, plot)
    result["_files"], result["_latencies"] = [str(plot)], latencies
    return result


def _plot_growth(growth: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(6, 4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs, ys = [g["notes"] for g in growth], [g["seconds"] for g in growth]
    ax.loglog(xs, ys, "o-", label="graph + communities")
    ax.loglog(xs, [ys[0] * x / xs[0] for x in xs], "--", color="gray", label="linear from x1")
    ax.set_xlabel("notes (the corpus replicated)")
    ax.set_ylabel("seconds")
    ax.set_title("Graph build time as the corpus grows")
    ax.legend()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


@report("graph")
def markdown(result: dict) -> list[str]:
    b, s, g = result["build"], result["search"], result["growth"]
    lines = ["## graph", "", "| measure | value | reference | ratio | target |", "|---|---|---|---|---|",
             f"| build from nothing ({b['nodes']} nodes, {b['edges']} edges) | {b['graph_s']:.1f} s | index build "
             f"{b['index_s']:.1f} s | {b['ratio']:.2f}x | |"]
    for mode, r in s["modes"].items():
        if mode != "dense":
            lines.append(f"| search p50, {mode} | {r['p50_ms']:.1f} ms | dense {s['modes']['dense']['p50_ms']:.1f} ms "
                         f"| {r['ratio_vs_dense']:.2f}x | {'<= 2x' if mode == 'graph-local' else ''} |")
    runs = ", ".join(f"x{r['copies']} {r['seconds']:.2f} s" for r in g["runs"])
    lines.append(f"| structure build growth ({runs}) | exponent {g['exponent']:.2f} | linear = 1.00 | | near-linear |")
    return [*lines, "", "![graph build growth](bench_graph_growth.png)"]
