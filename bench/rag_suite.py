"""Benchmark suite ``rag`` (``mathrag bench --suite rag``): search, indexing and generation, against references.

- search latency p50/p95 per mode, against the floor of embedding the query alone (a
  search can never be faster than that);
- index build throughput (chunks/s, from nothing), against raw ``SentenceTransformer.encode``
  throughput on the same chunk texts;
- incremental update: after editing one note, how many chunks are embedded again (only
  that note's should be);
- generator speed with 5 context chunks: time to first token and tokens/s;
- hybrid recall@5 on the development questions;
- peak resident memory of the process.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from bench.framework import Ratio, headline, peak_rss_mb, private_home, ratios, report, suite, timed
from rag.evaluation import evaluate_retrieval, load_questions, percentile
from rag.settings import Settings

SEARCH_VS_EMBED = 1.5  # hybrid search p50 at most this many times embedding the query alone
BUILD_VS_ENCODE = 0.8  # index build throughput at least this share of raw encoding
RECALL_AT_5 = 0.9  # hybrid recall@5 on the development questions


@suite("rag")
def bench_rag(settings: Settings, quick: bool = False, generator: str = "smollm2") -> dict:
    from rag.models import load_embedder
    from rag.retriever import Retriever

    questions = load_questions()
    queries = [q.question for q in questions][: 40 if quick else 120]
    embedder = load_embedder()
    result = _build_and_edit(settings, embedder, quick)
    retriever = Retriever.load(settings, progress=False)
    result["search"], latencies = _search_latency(retriever, embedder, queries)
    retrieval = evaluate_retrieval(retriever, questions, modes=("hybrid",), progress=False)["hybrid"]
    result["quality"] = {"hybrid_recall@5": retrieval["recall@5"], "hybrid_mrr": retrieval["mrr"],
                         "target": f"recall@5 >= {RECALL_AT_5}"}
    result["generator"] = _generator_speed(retriever, generator, runs=1 if quick else 3)
    result["peak_rss_mb"] = peak_rss_mb()
    result["_latencies"] = latencies
    return result


def _build_and_edit(settings: Settings, embedder, quick: bool) -> dict:
    """Index build from nothing on a private copy of the corpus, against raw encode; then edit one note."""
    from rag.index import update_index

    with tempfile.TemporaryDirectory() as tmp:
        private = private_home(settings, Path(tmp), quick)
        corpus = private.corpus_dir
        start = time.perf_counter()
        index, _ = update_index(private, progress=False)
        build_s = time.perf_counter() - start
        texts = [c.embedding_text() for c in index.chunks]
        start = time.perf_counter()
        embedder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        encode_s = time.perf_counter() - start
        build_tput, encode_tput = len(texts) / build_s, len(texts) / encode_s
        build = {"chunks": len(texts), "index_chunks_per_s": build_tput, "raw_encode_chunks_per_s": encode_tput,
                 "ratio_vs_raw_encode": build_tput / encode_tput, "target": f">= {BUILD_VS_ENCODE}"}

        note = sorted(corpus.rglob("*.md"))[0]  # editing one note re-embeds only that note
        note.write_text(note.read_text().replace("## Intuition\n", "## Intuition\n\nA sentence added by the "
                                                 "benchmark.\n", 1))
        start = time.perf_counter()
        updated, report_ = update_index(private, progress=False)
        rel = "corpus/" + note.relative_to(corpus).as_posix()
        own = sum(c.source == rel for c in updated.chunks)
        incremental = {"edited_note": rel, "chunks_embedded": report_.embedded_chunks, "chunks_of_that_note": own,
                       "total_chunks": len(updated), "seconds": time.perf_counter() - start,
                       "only_that_note": report_.changed == [rel] and report_.embedded_chunks <= own}
    return {"build": build, "incremental": incremental}


def _search_latency(retriever, embedder, queries: list[str]) -> tuple[dict, dict[str, list[float]]]:
    """p50/p95 per mode against the query-embedding floor; and every time measured, by what was timed."""
    from rag.settings import MODES

    for q in queries[:5]:  # warm up
        retriever.search(q, k=5)
    floor = [timed(lambda q=q: embedder.encode([q], normalize_embeddings=True, show_progress_bar=False))
             for q in queries]
    floor_p50 = percentile(floor, 50)
    search = {"queries": len(queries), "embed_floor_p50_ms": 1000 * floor_p50,
              "embed_floor_p95_ms": 1000 * percentile(floor, 95), "modes": {},
              "target": f"hybrid p50 <= {SEARCH_VS_EMBED}x the embed floor"}
    latencies = {"embed only": floor}
    for mode in MODES:
        times = [timed(lambda q=q, m=mode: retriever.search(q, k=5, mode=m)) for q in queries]
        latencies[mode] = times
        search["modes"][mode] = {"p50_ms": 1000 * percentile(times, 50), "p95_ms": 1000 * percentile(times, 95),
                                 "p50_ratio_vs_embed_floor": percentile(times, 50) / floor_p50}
    return search, latencies


def _generator_speed(retriever, generator: str, runs: int) -> dict:
    """Time to first token and decoding speed with 5 context chunks, the median of ``runs``."""
    from rag.answering import build_condensed_messages, build_messages
    from rag.generators import ContextChunk, ExtractiveGenerator, get_generator

    gen = get_generator(generator)
    q = "What is the derivative of tanh?"
    hits = retriever.search(q, k=5)
    context = [ContextChunk(i, h.text) for i, h in enumerate(hits, start=1)]
    if gen.condensed_context:
        messages = build_condensed_messages(q, ExtractiveGenerator().answer(q, context))
    else:
        messages = build_messages(q, hits)
    measured = []
    for _ in range(runs):
        start, first, pieces = time.perf_counter(), None, []
        for piece in gen.stream(messages, max_new_tokens=64, temperature=0.0, context=context):
            first = first or time.perf_counter() - start
            pieces.append(piece)
        total = time.perf_counter() - start
        tokenizer = getattr(gen, "tokenizer", None)
        n_tokens = len(tokenizer.encode("".join(pieces))) if tokenizer else len("".join(pieces).split())
        measured.append((first or total, n_tokens / max(total - (first or 0), 1e-9), n_tokens))
    prompt_tokens = int(gen.prompt_ids(messages).shape[1]) if hasattr(gen, "prompt_ids") else None
    return {"name": gen.name, "prompt_tokens": prompt_tokens,
            "time_to_first_token_s": statistics.median(r[0] for r in measured),
            "tokens_per_s": statistics.median(r[1] for r in measured),
            "new_tokens": statistics.median(r[2] for r in measured)}


@report("rag")
def markdown(r: dict) -> list[str]:
    s, b, g, inc = r["search"], r["build"], r["generator"], r["incremental"]
    lines = ["## rag", "", "| measure | value | reference | ratio | target |", "|---|---|---|---|---|"]
    for mode, m in s["modes"].items():
        target = f"<= {SEARCH_VS_EMBED}x" if mode == "hybrid" else ""
        lines.append(f"| search p50, {mode} | {m['p50_ms']:.1f} ms | embed query {s['embed_floor_p50_ms']:.1f} ms "
                     f"| {m['p50_ratio_vs_embed_floor']:.2f}x | {target} |")
    lines += [f"| index build | {b['index_chunks_per_s']:.1f} chunks/s | raw encode {b['raw_encode_chunks_per_s']:.1f} "
              f"chunks/s | {b['ratio_vs_raw_encode']:.2f}x | >= {BUILD_VS_ENCODE}x |",
              f"| edit one note | {inc['chunks_embedded']} chunks re-embedded | that note has "
              f"{inc['chunks_of_that_note']} of {inc['total_chunks']} | "
              f"{'only that note' if inc['only_that_note'] else 'MORE'} | only that note |",
              f"| hybrid recall@5 | {r['quality']['hybrid_recall@5']:.3f} | | | >= {RECALL_AT_5} |",
              f"| {g['name']}: first token (5 chunks) | {g['time_to_first_token_s']:.2f} s | "
              f"prompt {g['prompt_tokens']} tokens | | |",
              f"| {g['name']}: decoding | {g['tokens_per_s']:.1f} tokens/s | | | |",
              f"| peak RSS | {r['peak_rss_mb']:.0f} MB | | | |",
              "", "![search latency](bench_latency.png)"]
    return lines


@ratios("rag")
def _ratios(r: dict) -> list[Ratio]:
    s, b = r["search"], r["build"]
    hybrid = s["modes"]["hybrid"]
    return [Ratio("search p50, hybrid, vs embedding the query", hybrid["p50_ratio_vs_embed_floor"], SEARCH_VS_EMBED,
                  False, f"{hybrid['p50_ms']:.1f} vs {s['embed_floor_p50_ms']:.1f} ms"),
            Ratio("index build vs raw encode", b["ratio_vs_raw_encode"], BUILD_VS_ENCODE, True,
                  f"{b['index_chunks_per_s']:.0f} vs {b['raw_encode_chunks_per_s']:.0f} chunks/s")]


@headline("rag")
def _headline(r: dict) -> list[tuple[str, str, str]]:
    hybrid = r["search"]["modes"]["hybrid"]
    g = r["generator"]
    return [("search p50, hybrid, vs embedding the query alone", f"{hybrid['p50_ratio_vs_embed_floor']:.2f}x "
             f"({hybrid['p50_ms']:.0f} ms)", f"<= {SEARCH_VS_EMBED}x"),
            ("index build vs raw encode", f"{r['build']['ratio_vs_raw_encode']:.2f}x", f">= {BUILD_VS_ENCODE}x"),
            ("hybrid recall@5 (development questions)", f"{r['quality']['hybrid_recall@5']:.3f}", f">= {RECALL_AT_5}"),
            (f"{g['name']}: first token / decoding", f"{g['time_to_first_token_s']:.2f} s / "
             f"{g['tokens_per_s']:.1f} tokens/s", "")]
