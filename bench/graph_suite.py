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
import os
import re
import tempfile
import time
from pathlib import Path

from bench.framework import Ratio, axes, finish_plot, headline, private_home, ratios, report, suite
from rag.corpus import Note, load_corpus
from rag.evaluation import load_questions, percentile
from rag.settings import Settings

REPLICAS = (1, 4, 16, 64)


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


def ingest_once(corpus_dir: str, copies: int) -> dict:
    """Ingestion of the corpus replicated ``copies`` times, stage by stage, in this (fresh) process.

    Stages: chunking, the BM25 index, adding vectors to an exact FAISS index (random stand-ins
    for the embeddings, whose cost per chunk is the encoder's and does not grow with the
    corpus: the rag suite measures it), and the graph with its communities. Memory is what
    the process holds once every stage is done (chunks, BM25, vectors, FAISS, graph all alive)
    above what it held once the notes were read: resident size, from ``/proc/self/statm``.
    """
    import faiss
    import numpy as np

    from graphrag.build import build_graph
    from graphrag.communities import detect
    from rag.chunking import chunk_corpus
    from rag.index import build_bm25

    notes = replicate(load_corpus(Path(corpus_dir), root=Path(corpus_dir).parent), copies)
    base_mb = _resident_mb()
    times = {}
    start = time.perf_counter()
    chunks = chunk_corpus(notes)
    times["chunk_s"] = time.perf_counter() - start
    start = time.perf_counter()
    bm25 = build_bm25(chunks)
    times["bm25_s"] = time.perf_counter() - start
    vectors = np.random.default_rng(0).standard_normal((len(chunks), 384), dtype=np.float32)
    start = time.perf_counter()
    index = faiss.IndexFlatIP(384)
    index.add(vectors)
    times["faiss_add_s"] = time.perf_counter() - start
    start = time.perf_counter()
    g = build_graph(notes, chunks)
    communities, _ = detect(g, chunks)
    times["graph_s"] = time.perf_counter() - start
    held_mb = _resident_mb() - base_mb
    total = sum(times.values())
    return {"copies": copies, "notes": len(notes), "chunks": len(chunks), **times, "seconds": total,
            "ms_per_chunk": 1000 * total / len(chunks), "held_mb": held_mb,
            "kb_per_chunk": 1024 * held_mb / len(chunks), "nodes": g.number_of_nodes(), "edges": g.number_of_edges(),
            "communities": len(communities), "bm25_terms": len(bm25.vocab_dict)}


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _ingest_in_fresh_process(corpus_dir: Path, copies: int) -> dict:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(ingest_once, (str(corpus_dir), copies))


@suite("graph")
def bench_graph(settings: Settings, quick: bool = False) -> dict:
    from graphrag.retriever import GraphRetriever
    from graphrag.store import build_and_save
    from rag.index import update_index

    result: dict = {}
    # --- build from nothing: the index, then the graph on it, in a private home
    with tempfile.TemporaryDirectory() as tmp:
        private = private_home(settings, Path(tmp), quick)
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

    # --- growth with the corpus size: every ingestion stage, each size in a fresh process
    growth = [_ingest_in_fresh_process(settings.corpus_dir, copies) for copies in (REPLICAS[:2] if quick else REPLICAS)]
    first, last = growth[0], growth[-1]

    def exponent(key: str) -> float:
        return math.log(last[key] / first[key]) / math.log(last["chunks"] / first["chunks"])

    result["growth"] = {"runs": growth, "exponent": exponent("graph_s"), "ingest_exponent": exponent("seconds"),
                        "memory_exponent": exponent("held_mb") if first["held_mb"] > 0 else None}
    plot = settings.reports_dir / "bench_graph_growth.png"
    _plot_growth(growth, plot)
    result["_files"], result["_latencies"] = [str(plot)], latencies
    return result


def _plot_growth(growth: list[dict], path: Path) -> None:
    fig, ax = axes((6, 4))
    xs = [g["chunks"] for g in growth]
    for key, label in (("chunk_s", "chunking"), ("bm25_s", "BM25 index"), ("faiss_add_s", "FAISS add"),
                       ("graph_s", "graph + communities"), ("seconds", "all of ingestion")):
        ys = [max(g[key], 1e-4) for g in growth]
        ax.loglog(xs, ys, "o-", label=label, linewidth=2.5 if key == "seconds" else 1.2)
    total = [g["seconds"] for g in growth]
    ax.loglog(xs, [total[0] * x / xs[0] for x in xs], "--", color="gray", label="linear from x1")
    finish_plot(fig, ax, path, xlabel="chunks (the corpus replicated x1, x4, x16, x64)", ylabel="seconds",
                title="Ingestion time as the corpus grows (embedding aside)")


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
    lines.append(f"| growth exponent, all of ingestion / graph alone / memory held | {g['ingest_exponent']:.2f} / "
                 f"{g['exponent']:.2f} / {g['memory_exponent'] or float('nan'):.2f} | linear = 1.00 | | near-linear |")
    lines += ["", "| corpus | notes | chunks | chunk | BM25 | FAISS add | graph | ms per chunk | MB held "
              "| KB per chunk |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in g["runs"]:
        lines.append(f"| x{r['copies']} | {r['notes']:,} | {r['chunks']:,} | {r['chunk_s']:.2f} s | "
                     f"{r['bm25_s']:.2f} s | {r['faiss_add_s']:.3f} s | {r['graph_s']:.2f} s | "
                     f"{r['ms_per_chunk']:.2f} | {r['held_mb']:.0f} | {r['kb_per_chunk']:.1f} |")
    lines += _growth_why(g)
    return [*lines, "", "Embedding is left out of the growth runs: its cost per chunk is the encoder's (see the rag "
            "suite's chunks/s) and does not depend on the corpus size.", "",
            "![ingestion growth](bench_graph_growth.png)"]


def _growth_why(g: dict) -> list[str]:
    """Why the growth exponent is off 1, from what the runs counted."""
    first, last = g["runs"][0], g["runs"][-1]
    e = g["ingest_exponent"]
    if 0.95 <= e <= 1.1 or "bm25_terms" not in last:
        return []
    scale = last["chunks"] / first["chunks"]
    says = (f"x{scale:.0f} the chunks gave x{last['nodes'] / first['nodes']:.0f} the graph's nodes, "
            f"x{last['bm25_terms'] / first['bm25_terms']:.2f} the BM25 vocabulary and {first['communities']} -> "
            f"{last['communities']} communities")
    if e < 0.95:
        return ["", f"Growth is below linear ({e:.2f}) because the replicas repeat the same words and concepts: "
                f"{says}. Work that scales with distinct terms and concepts is shared, and fixed costs are spread "
                "over more chunks. New notes would add words and concepts, so real growth sits nearer 1."]
    return ["", f"Growth is above linear ({e:.2f}): {says}. Something costs more per chunk as the corpus grows; "
            "the per-stage columns above show which stage."]


@headline("graph")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    local = result["search"]["modes"]["graph-local"]
    g = result["growth"]
    span = f"x{g['runs'][0]['copies']} to x{g['runs'][-1]['copies']}, {g['runs'][-1]['chunks']:,} chunks"
    return [("graph-local search p50 vs dense", f"{local['ratio_vs_dense']:.2f}x", "<= 2x"),
            (f"ingestion growth exponent ({span})", f"{g['ingest_exponent']:.2f}", "near 1 (linear)")]


@ratios("graph")
def _ratios(result: dict) -> list[Ratio]:
    modes = result["search"]["modes"]
    dense = modes["dense"]["p50_ms"]
    return [Ratio(f"search p50, {mode}, vs dense", r["ratio_vs_dense"], 2.0 if mode == "graph-local" else None,
                  False, f"{r['p50_ms']:.1f} vs {dense:.1f} ms") for mode, r in modes.items() if mode != "dense"]
