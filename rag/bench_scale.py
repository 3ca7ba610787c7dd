"""Benchmark suite ``scale``: vector search far past the notes, exact against approximate FAISS indexes.

The notes make under a thousand chunks, where exact search is instant. To see what
happens at 100,000 and 1,000,000 vectors, this suite makes seeded synthetic
384-dimensional embeddings shaped like real ones (clustered, not uniform: real
sentence embeddings crowd around topics) and measures, on the same vectors:

- ``flat``: exact inner product, the reference every recall is measured against;
- ``hnsw``: a graph index (``IndexHNSWFlat``, M = 32), swept over ``efSearch``;
- ``ivf``: an inverted file (``IndexIVFFlat``, about 4 sqrt(n) lists), swept over ``nprobe``;
- ``ivf-pq``: the same inverted file with product-quantized codes (48 bytes a vector
  instead of 1,536), for when memory is the constraint.

For each: build time, memory of the index, and for each search setting recall@10
against the exact top 10 and queries per second, one query at a time on one thread
(how the retriever searches). The headline is the fastest setting with recall@10 >=
0.95, as a speed-up over exact search (target at 1M: >= 20x).

Data model: ``clusters`` centres (n / 500) drawn from N(0, I); each vector is a centre plus
N(0, spread^2 I) noise, normalized, so that two vectors of one cluster have a cosine of
about 1 / (1 + spread^2) and vectors of different clusters about 0. Queries are drawn the
same way and are not in the base set.
"""

from __future__ import annotations

import os
import time

import faiss
import numpy as np

from rag.bench import headline, report, suite
from rag.settings import Settings

D = 384
TARGET_RECALL, TARGET_SPEEDUP = 0.95, 20.0
HNSW_EF = (16, 32, 64, 128, 256)
IVF_PROBES = (1, 2, 4, 8, 16, 32, 64, 128)


def synthetic(n: int, seed: int, clusters: int = 2_000, spread: float = 1.0, batch: int = 100_000) -> np.ndarray:
    """``n`` normalized float32 vectors of dimension ``D`` around ``clusters`` seeded centres."""
    centres = np.random.default_rng(12345).standard_normal((clusters, D), dtype=np.float32)
    rng = np.random.default_rng(seed)
    out = np.empty((n, D), dtype=np.float32)
    for start in range(0, n, batch):
        m = min(batch, n - start)
        x = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, D), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[start:start + m] = x
    return out


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found[:, :k], truth, strict=True)]))


def _one_at_a_time(index: faiss.Index, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, float]:
    """(ids, queries per second), each query searched alone on one thread."""
    faiss.omp_set_num_threads(1)
    ids = np.empty((len(queries), k), dtype=np.int64)
    start = time.perf_counter()
    for i in range(len(queries)):
        ids[i] = index.search(queries[i:i + 1], k)[1][0]
    return ids, len(queries) / (time.perf_counter() - start)


def _build(make, vectors: np.ndarray, train: np.ndarray | None = None) -> tuple[faiss.Index, float]:
    """(index, seconds to build it), training first when the index needs it."""
    start = time.perf_counter()
    index = make()
    if train is not None:
        index.train(train)
    index.add(vectors)
    return index, time.perf_counter() - start


def measure_size(n: int, n_queries: int, seed: int = 0, kinds: tuple[str, ...] = ("flat", "hnsw", "ivf", "ivf-pq"),
                 ) -> dict:
    """Every index kind on ``n`` synthetic vectors: build time, memory, and recall/QPS per search setting."""
    threads = os.cpu_count() or 1  # building and the ground truth use every core; searches use one
    clusters = max(10, n // 500)  # topics grow with the corpus: 200 at 100k, 2,000 at 1M
    base = synthetic(n, seed, clusters)
    queries = synthetic(n_queries, seed + 1, clusters)
    out: dict = {"n": n, "queries": n_queries, "clusters": clusters, "kinds": {}}

    start = time.perf_counter()
    flat = faiss.IndexFlatIP(D)
    flat.add(base)
    flat_build = time.perf_counter() - start
    faiss.omp_set_num_threads(threads)
    truth = flat.search(queries, 10)[1]  # batched, all threads: the ground truth
    exact_queries = queries[: max(10, min(n_queries, int(2e7 // n)))]  # exact search is slow at 1M: fewer
    _, exact_qps = _one_at_a_time(flat, exact_queries)
    out["kinds"]["flat"] = {"build_s": round(flat_build, 2), "memory_mb": round(n * D * 4 / 2**20, 1),
                            "settings": [{"setting": "exact", "recall@10": 1.0, "qps": round(exact_qps, 1)}]}
    del flat

    nlist = int(4 * np.sqrt(n))
    sample = base[np.random.default_rng(seed).choice(n, min(n, 64 * nlist), replace=False)]
    if "hnsw" in kinds:
        def make_hnsw():
            index = faiss.IndexHNSWFlat(D, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 40
            return index

        faiss.omp_set_num_threads(threads)
        index, seconds = _build(make_hnsw, base)
        rows = []
        for ef in HNSW_EF:
            index.hnsw.efSearch = ef
            ids, qps = _one_at_a_time(index, queries)
            rows.append({"setting": f"efSearch={ef}", "recall@10": round(_recall(ids, truth), 4), "qps": round(qps, 1)})
        out["kinds"]["hnsw"] = {"build_s": round(seconds, 2), "settings": rows,
                                "memory_mb": round(n * (D * 4 + 32 * 2 * 4 * 1.05) / 2**20, 1)}
        del index
    for kind in ("ivf", "ivf-pq"):
        if kind not in kinds:
            continue
        faiss.omp_set_num_threads(threads)
        quantizer = faiss.IndexFlatIP(D)  # kept alive here: the IVF index points at it
        if kind == "ivf":
            index, seconds = _build(lambda q=quantizer: faiss.IndexIVFFlat(q, D, nlist, faiss.METRIC_INNER_PRODUCT),
                                    base, sample)
            per_vector = D * 4 + 8
        else:
            index, seconds = _build(lambda q=quantizer: faiss.IndexIVFPQ(q, D, nlist, 48, 8,
                                                                         faiss.METRIC_INNER_PRODUCT), base, sample)
            per_vector = 48 + 8
        rows = []
        for nprobe in IVF_PROBES:
            if nprobe > nlist:
                break
            index.nprobe = nprobe
            ids, qps = _one_at_a_time(index, queries)
            rows.append({"setting": f"nprobe={nprobe}", "recall@10": round(_recall(ids, truth), 4),
                         "qps": round(qps, 1)})
        out["kinds"][kind] = {"build_s": round(seconds, 2), "nlist": nlist, "settings": rows,
                              "memory_mb": round((n * per_vector + nlist * D * 4) / 2**20, 1)}
        del index
    faiss.omp_set_num_threads(threads)

    for r in out["kinds"].values():
        good = [s for s in r["settings"] if s["recall@10"] >= TARGET_RECALL]
        best = max(good, key=lambda s: s["qps"]) if good else max(r["settings"], key=lambda s: s["recall@10"])
        r["best"] = {**best, "speedup_vs_exact": round(best["qps"] / exact_qps, 1), "meets_recall": bool(good)}
    return out


@suite("scale")
def bench_scale(settings: Settings, quick: bool = False) -> dict:
    sizes = (50_000,) if quick else (100_000, 1_000_000)
    result = {"sizes": [measure_size(n, 200 if quick else 500) for n in sizes],
              "target": {"recall@10": TARGET_RECALL, "speedup_vs_exact": TARGET_SPEEDUP}}
    largest = result["sizes"][-1]
    winners = {k: r["best"] for k, r in largest["kinds"].items() if k != "flat" and r["best"]["meets_recall"]}
    top = max(winners.items(), key=lambda kv: kv[1]["qps"]) if winners else None
    result["headline"] = {"n": largest["n"], "kind": top[0] if top else None,
                          "setting": top[1]["setting"] if top else None,
                          "recall@10": top[1]["recall@10"] if top else None,
                          "speedup_vs_exact": top[1]["speedup_vs_exact"] if top else 0.0,
                          "meets_target": bool(top and top[1]["speedup_vs_exact"] >= TARGET_SPEEDUP)}
    return result


@report("scale")
def markdown(result: dict) -> list[str]:
    lines = ["## scale", "", "Synthetic clustered 384-d vectors; one query at a time on one thread; recall@10 "
             "against exact search.", "",
             "| vectors | index | build | memory | best setting (recall@10 >= 0.95) | recall@10 | queries/s | "
             "vs exact |", "|---|---|---|---|---|---|---|---|"]
    for size in result["sizes"]:
        for kind, r in size["kinds"].items():
            b = r["best"]
            setting = b["setting"] if b["meets_recall"] else f"none reaches 0.95 (best {b['setting']})"
            lines.append(f"| {size['n']:,} | {kind} | {r['build_s']:.1f} s | {r['memory_mb']:,.0f} MB | {setting} | "
                         f"{b['recall@10']:.3f} | {b['qps']:,.0f} | {b['speedup_vs_exact']:.1f}x |")
    h = result["headline"]
    verdict = "meets" if h["meets_target"] else "misses"
    lines += ["", f"At {h['n']:,} vectors the fastest index at recall@10 >= 0.95 is {h['kind']} ({h['setting']}): "
              f"{h['speedup_vs_exact']:.1f}x the exact search's queries/s, which {verdict} the target of "
              f">= {TARGET_SPEEDUP:.0f}x."]
    return lines


@headline("scale")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    h = result["headline"]
    if not h["kind"]:
        return [(f"vector search at {h['n']:,}: recall@10 >= 0.95", "no approximate index reached it", ">= 20x")]
    return [(f"vector search at {h['n']:,} vectors: best at recall@10 >= 0.95 vs exact",
             f"{h['speedup_vs_exact']:.0f}x ({h['kind']}, {h['setting']}, recall {h['recall@10']:.3f})", ">= 20x")]
