"""Benchmarks, reported as ratios against a reference measured in the same run.

Absolute timings depend on the machine; a ratio against something measured
side by side on the same machine, in the same process, does not (much). The
``rag`` suite measures:

- search latency p50/p95 per mode, against the floor of embedding the query
  alone (a search can never be faster than that);
- index build throughput (chunks/s, from nothing), against raw
  ``SentenceTransformer.encode`` throughput on the same chunk texts;
- incremental update: after editing one note, how many chunks are embedded
  again (only that note's should be);
- generator speed with 5 context chunks: time to first token and tokens/s;
- hybrid recall@5 on the development questions;
- peak resident memory of the process.

``run_bench`` writes ``bench.json``, ``bench.md`` and ``bench_latency.png``
under ``MATHRAG_HOME/reports/``. ``rag.bench_scratch`` adds the ``scratch``
suite (the project's own tokenizer and model against the libraries); packages
built on rag add theirs through the ``mathrag.bench_suites`` entry point group
(a module that registers a suite with ``@suite`` and its table with ``@report``),
so rag never imports them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.artifacts import write_atomic
from rag.evaluation import evaluate_retrieval, load_questions, percentile
from rag.settings import Settings, get_settings

SUITES: dict[str, Callable[..., dict]] = {}
REPORTS: dict[str, Callable[[dict], list[str]]] = {}  # suite -> its Markdown lines in bench.md
HEADLINES: dict[str, Callable[[dict], list[tuple[str, str, str]]]] = {}  # suite -> (measure, value, target) rows
RATIOS: dict[str, Callable[[dict], list[Ratio]]] = {}  # suite -> its ratios, drawn together in bench_ratios.png
README_START, README_END = "<!-- bench:headline:start -->", "<!-- bench:headline:end -->"
# Modules that register further suites with @suite when imported (kept out of start-up: they load models).
SUITE_MODULES = ("rag.bench_scratch", "rag.bench_scale")
SUITE_GROUP = "mathrag.bench_suites"


def suite(name: str):
    def register(fn):
        SUITES[name] = fn
        return fn

    return register


def report(name: str):
    """Register the function that turns suite ``name``'s result into Markdown lines."""

    def register(fn):
        REPORTS[name] = fn
        return fn

    return register


def headline(name: str):
    """Register the function that picks suite ``name``'s headline rows: (measure, value, target)."""

    def register(fn):
        HEADLINES[name] = fn
        return fn

    return register


@dataclass(frozen=True)
class Ratio:
    """One figure against its reference measured in the same run, e.g. our tokens/s over the library's."""

    label: str
    value: float  # ours / reference (or reference / ours for times: always "x the reference")
    target: float | None = None
    higher_is_better: bool = True
    detail: str = ""  # the two measurements behind the ratio, printed beside the bar

    @property
    def meets(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target


def ratios(name: str):
    """Register the function that turns suite ``name``'s result into :class:`Ratio` bars."""

    def register(fn):
        RATIOS[name] = fn
        return fn

    return register


def load_suites() -> None:
    import importlib
    from importlib.metadata import entry_points

    for module in SUITE_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=SUITE_GROUP):
        entry.load()


def private_corpus(src: Path, dst: Path, quick: bool) -> Path:
    """A copy of the notes to build from nothing; ``quick`` keeps every sixth note (a sixth of the embedding)."""
    shutil.copytree(src, dst)
    if quick:
        for i, path in enumerate(sorted(dst.rglob("*.md"))):
            if i % 6:
                path.unlink()
    return dst


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def machine() -> dict:
    import torch

    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = round(int(f.readline().split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "memory_gib": mem, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform()}


def _timed(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


@suite("rag")
def bench_rag(settings: Settings, quick: bool = False, generator: str = "smollm2") -> dict:
    from rag.answering import build_condensed_messages
    from rag.generators import ContextChunk, ExtractiveGenerator, get_generator
    from rag.index import update_index
    from rag.models import load_embedder
    from rag.retriever import MODES, Retriever

    result: dict = {}
    questions = load_questions()
    queries = [q.question for q in questions][: 40 if quick else 120]
    embedder = load_embedder()

    # --- index build from nothing, on a private copy of the corpus, against raw encode
    with tempfile.TemporaryDirectory() as tmp:
        corpus = private_corpus(settings.corpus_dir, Path(tmp) / "corpus", quick)
        private = Settings(home=Path(tmp) / "home", corpus_dir=corpus)
        start = time.perf_counter()
        index, report = update_index(private, progress=False)
        build_s = time.perf_counter() - start
        texts = [c.embedding_text() for c in index.chunks]
        start = time.perf_counter()
        embedder.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        encode_s = time.perf_counter() - start
        build_tput, encode_tput = len(texts) / build_s, len(texts) / encode_s
        result["build"] = {"chunks": len(texts), "index_chunks_per_s": build_tput, "raw_encode_chunks_per_s":
                           encode_tput, "ratio_vs_raw_encode": build_tput / encode_tput, "target": ">= 0.8"}

        # --- editing one note re-embeds only that note
        note = sorted(corpus.rglob("*.md"))[0]
        note.write_text(note.read_text().replace("## Intuition\n", "## Intuition\n\nA sentence added by the "
                                                 "benchmark.\n", 1))
        start = time.perf_counter()
        updated, report = update_index(private, progress=False)
        rel = "corpus/" + note.relative_to(corpus).as_posix()
        own = sum(c.source == rel for c in updated.chunks)
        result["incremental"] = {"edited_note": rel, "chunks_embedded": report.embedded_chunks,
                                 "chunks_of_that_note": own, "total_chunks": len(updated),
                                 "seconds": time.perf_counter() - start,
                                 "only_that_note": report.changed == [rel] and report.embedded_chunks <= own}

    # --- search latency per mode against the query-embedding floor
    retriever = Retriever.load(settings, progress=False)
    for q in queries[:5]:  # warm up
        retriever.search(q, k=5)
    floor = [t for q in queries for t in _timed(lambda q=q: embedder.encode([q], normalize_embeddings=True,
                                                                           show_progress_bar=False), 1)]
    floor_p50 = percentile(floor, 50)
    result["search"] = {"queries": len(queries), "embed_floor_p50_ms": 1000 * floor_p50,
                        "embed_floor_p95_ms": 1000 * percentile(floor, 95), "modes": {}}
    latencies = {"embed only": floor}
    for mode in MODES:
        times = [t for q in queries for t in _timed(lambda q=q, m=mode: retriever.search(q, k=5, mode=m), 1)]
        latencies[mode] = times
        result["search"]["modes"][mode] = {
            "p50_ms": 1000 * percentile(times, 50), "p95_ms": 1000 * percentile(times, 95),
            "p50_ratio_vs_embed_floor": percentile(times, 50) / floor_p50}
    result["search"]["target"] = "hybrid p50 <= 1.5x the embed floor"

    # --- retrieval quality (hybrid recall@5 on the development questions)
    retrieval = evaluate_retrieval(retriever, questions, modes=("hybrid",), progress=False)["hybrid"]
    result["quality"] = {"hybrid_recall@5": retrieval["recall@5"], "hybrid_mrr": retrieval["mrr"],
                         "target": "recall@5 >= 0.9"}

    # --- generator speed with 5 context chunks
    gen = get_generator(generator)
    q = "What is the derivative of tanh?"
    hits = retriever.search(q, k=5)
    context = [ContextChunk(i, h.text) for i, h in enumerate(hits, start=1)]
    if getattr(gen, "condensed_context", False):
        messages = build_condensed_messages(q, ExtractiveGenerator().answer(q, context))
    else:
        from rag.answering import build_messages

        messages = build_messages(q, hits)
    runs = []
    for _ in range(1 if quick else 3):
        start, first, pieces = time.perf_counter(), None, []
        for piece in gen.stream(messages, max_new_tokens=64, temperature=0.0, context=context):
            first = first or time.perf_counter() - start
            pieces.append(piece)
        total = time.perf_counter() - start
        tokenizer = getattr(gen, "tokenizer", None)
        n_tokens = len(tokenizer.encode("".join(pieces))) if tokenizer else len("".join(pieces).split())
        runs.append((first or total, n_tokens / max(total - (first or 0), 1e-9), n_tokens))
    prompt_tokens = None
    if hasattr(gen, "prompt_ids"):
        prompt_tokens = int(gen.prompt_ids(messages).shape[1])
    result["generator"] = {"name": gen.name, "prompt_tokens": prompt_tokens,
                           "time_to_first_token_s": statistics.median(r[0] for r in runs),
                           "tokens_per_s": statistics.median(r[1] for r in runs),
                           "new_tokens": statistics.median(r[2] for r in runs)}
    result["peak_rss_mb"] = peak_rss_mb()
    result["_latencies"] = latencies
    return result


# --------------------------------------------------------------------------- report


def _plot_latency(latencies: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = list(latencies)
    ax.boxplot([np.array(latencies[n]) * 1000 for n in names], orientation="horizontal", showfliers=False)
    ax.set_yticks(range(1, len(names) + 1), names)
    ax.set_xlabel("milliseconds per query")
    ax.set_title("Search latency against the query-embedding floor")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)


def collect_ratios(results: dict[str, dict]) -> list[tuple[str, Ratio]]:
    """(suite, ratio) for every suite result that registered ratios, in suite order."""
    out = []
    for name, result in results.items():
        if name in RATIOS:
            try:
                out += [(name, r) for r in RATIOS[name](result)]
            except (KeyError, TypeError):  # a stored result from an older version of the suite
                continue
    return out


def plot_ratios(rows: list[tuple[str, Ratio]], path: Path) -> None:
    """Horizontal bars, one per ratio, on a log axis around 1x, each with its target marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 0.42 * len(rows) + 1.4), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = np.arange(len(rows))[::-1]
    colours = {True: "#2a9d8f", False: "#e76f51", None: "#8d99ae"}
    values = [max(r.value, 1e-3) for _, r in rows]
    ax.barh(ys, values, color=[colours[r.meets] for _, r in rows], height=0.6)
    for y, (_, r) in zip(ys, rows, strict=True):
        if r.target is not None:
            ax.plot([r.target, r.target], [y - 0.38, y + 0.38], color="black", linewidth=2)
        ax.text(max(r.value, r.target or 0, 1e-3) * 1.12, y, f"{r.value:.2f}x  {r.detail}", va="center",
                fontsize=7)  # right of the bar and of its target tick
    ax.set_xscale("log")
    ax.axvline(1.0, color="gray", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, [f"{suite}: {r.label}" for suite, r in rows], fontsize=8)
    ax.set_xlim(min(min(values), 0.1) / 1.5, max(values) * 60)
    ax.set_xlabel("x the reference measured in the same run (log scale)\nblack tick: the target; green meets it, "
                  "orange misses it, grey has none", fontsize=8)
    ax.set_title("Each figure against its side-by-side reference")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))


def _took(summary: dict) -> str:
    this_run = summary["this_run"] if "this_run" in summary else summary["suites"]
    if not this_run:
        return "Written from the stored runs (`mathrag bench --stored`)."
    return (f"This run took {summary['seconds']:.0f} s{' (--quick)' if summary['quick'] else ''}: "
            + ", ".join(f"{name} {r.get('suite_seconds', 0):.0f} s" for name, r in this_run.items()) + ".")


def markdown(summary: dict) -> str:
    m = summary["machine"]
    lines = [f"# Benchmarks ({summary['date']})", "",
             f"Machine: {m['cpus']} CPUs, {m['memory_gib']} GiB, torch {m['torch']} with {m['torch_threads']} "
             f"threads, Python {m['python']}. " + _took(summary), ""]
    if summary.get("runs"):  # a report gathered from the latest run of each suite
        lines += ["Latest run of each suite: " + "; ".join(f"{name} {when}" for name, when in summary["runs"].items())
                  + ".", ""]
    rows = collect_ratios(summary["suites"])
    if rows:
        met = [r.meets for _, r in rows if r.meets is not None]
        lines += ["## Every ratio", "", f"{sum(met)} of {len(met)} ratios with a target meet it.", "",
                  "| suite | measure | ratio | target | measured |", "|---|---|---|---|---|"]
        for name, r in rows:
            target = "" if r.target is None else f"{'>=' if r.higher_is_better else '<='} {r.target:g}x"
            mark = {True: "", False: " (misses)", None: ""}[r.meets]
            lines.append(f"| {name} | {r.label} | {r.value:.2f}x{mark} | {target} | {r.detail} |")
        lines += ["", "![every ratio](bench_ratios.png)", ""]
    rag = summary["suites"].get("rag")
    if rag:
        s, b, g = rag["search"], rag["build"], rag["generator"]
        lines += ["## rag", "", "| measure | value | reference | ratio | target |", "|---|---|---|---|---|"]
        for mode, r in s["modes"].items():
            lines.append(f"| search p50, {mode} | {r['p50_ms']:.1f} ms | embed query {s['embed_floor_p50_ms']:.1f} ms "
                         f"| {r['p50_ratio_vs_embed_floor']:.2f}x | {'<= 1.5x' if mode == 'hybrid' else ''} |")
        lines.append(f"| index build | {b['index_chunks_per_s']:.1f} chunks/s | raw encode "
                     f"{b['raw_encode_chunks_per_s']:.1f} chunks/s | {b['ratio_vs_raw_encode']:.2f}x | >= 0.8x |")
        inc = rag["incremental"]
        lines.append(f"| edit one note | {inc['chunks_embedded']} chunks re-embedded | that note has "
                     f"{inc['chunks_of_that_note']} of {inc['total_chunks']} | "
                     f"{'only that note' if inc['only_that_note'] else 'MORE'} | only that note |")
        lines.append(f"| hybrid recall@5 | {rag['quality']['hybrid_recall@5']:.3f} | | | >= 0.9 |")
        lines.append(f"| {g['name']}: first token (5 chunks) | {g['time_to_first_token_s']:.2f} s | "
                     f"prompt {g['prompt_tokens']} tokens | | |")
        lines.append(f"| {g['name']}: decoding | {g['tokens_per_s']:.1f} tokens/s | | | |")
        lines.append(f"| peak RSS | {rag['peak_rss_mb']:.0f} MB | | | |")
        lines += ["", "![search latency](bench_latency.png)"]
    for name, result in summary["suites"].items():
        if name in REPORTS:
            try:
                lines += ["", *REPORTS[name](result)]
            except (KeyError, TypeError):  # a stored result from an older version of the suite
                lines += ["", f"## {name}", "", f"*The stored result has an older format: run `mathrag bench "
                          f"--suite {name}` again.*"]
    return "\n".join(lines) + "\n"


def run_bench(settings: Settings | None = None, *, suites: list[str] | None = None, quick: bool = False,
              generator: str = "smollm2") -> dict:
    load_suites()
    settings = settings or get_settings()
    names = suites or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite '{unknown[0]}'; choose one of {', '.join(SUITES)}")
    start = time.perf_counter()
    summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "quick": quick, "machine": machine(), "suites": {}}
    files = []
    for name in names:
        kwargs = {"generator": generator} if name == "rag" else {}
        began = time.perf_counter()
        result = SUITES[name](settings, quick=quick, **kwargs)
        result["suite_seconds"] = round(time.perf_counter() - began, 1)
        latencies = result.pop("_latencies", {})  # seconds per query, by what was timed
        files += result.pop("_files", [])  # plots a suite wrote beside the report
        summary["suites"][name] = result
        write_atomic(settings.reports_dir / "suites" / f"{name}.json", json.dumps(
            {"date": summary["date"], "quick": quick, "machine": summary["machine"], "result": result,
             "latencies": {k: [round(t, 6) for t in v] for k, v in latencies.items()}}, indent=2))
    summary["seconds"] = time.perf_counter() - start
    return write_report(settings, summary, files)


def rewrite_report(settings: Settings | None = None) -> dict:
    """bench.md, headline.md and the shared plots again from the stored runs, running nothing."""
    load_suites()
    settings = settings or get_settings()
    runs = stored_runs(settings.reports_dir)
    if not runs:
        raise ValueError(f"no stored benchmark run in {settings.reports_dir / 'suites'}: run `mathrag bench` first")
    latest = max(runs.values(), key=lambda r: r["date"])
    summary = {"date": latest["date"], "quick": False, "machine": latest["machine"], "suites": {}, "seconds": 0.0}
    return write_report(settings, summary, [], write_summary=False)


def write_report(settings: Settings, summary: dict, files: list, write_summary: bool = True) -> dict:
    """Write this run's bench.json, and bench.md, headline.md and the plots gathered from every stored run."""
    out = settings.reports_dir
    out.mkdir(parents=True, exist_ok=True)
    # bench.md gathers the latest run of every suite (so running one suite keeps the others' sections);
    # bench.json is this run's summary.
    if write_summary:
        write_atomic(out / "bench.json", json.dumps(summary, indent=2))
    everything = gathered(out, summary)
    write_atomic(out / "bench.md", markdown(everything))
    write_atomic(out / "headline.md", headline_table(out))
    written = ["bench.json", "bench.md", "headline.md"] if write_summary else ["bench.md", "headline.md"]
    rows = collect_ratios(everything["suites"])
    if rows:
        plot_ratios(rows, out / "bench_ratios.png")
        written.append("bench_ratios.png")
    latencies = {k: v for run in stored_runs(out).values() for k, v in run.get("latencies", {}).items()}
    if latencies:  # every suite's latest latencies in one figure
        _plot_latency(latencies, out / "bench_latency.png")
        written.append("bench_latency.png")
    summary["files"] = [str(out / n) for n in written] + [str(f) for f in files]
    return summary


# --------------------------------------------------------------------------- the README's headline table


def stored_runs(reports_dir: Path) -> dict[str, dict]:
    """suite name -> its latest stored run ({"date", "quick", "machine", "result"}), in suite order."""
    load_suites()
    out = {}
    for name in SUITES:
        path = reports_dir / "suites" / f"{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def gathered(reports_dir: Path, summary: dict) -> dict:
    """This run's summary with every other suite's latest stored result beside it."""
    runs = stored_runs(reports_dir)
    return {**summary, "this_run": summary["suites"], "suites": {name: run["result"] for name, run in runs.items()},
            "runs": {name: _when(run) for name, run in runs.items()}}


def _when(run: dict) -> str:
    """When a stored run was made, whether it was --quick, and how long it took."""
    took = run["result"].get("suite_seconds")
    notes = [x for x in ("--quick" if run["quick"] else "", f"{took:.0f} s" if took else "") if x]
    return run["date"] + (f" ({', '.join(notes)})" if notes else "")


def headline_table(reports_dir: Path) -> str:
    """One Markdown table of every suite's headline rows, from the latest stored run of each suite."""
    rows, notes = [], []
    for name, stored in stored_runs(reports_dir).items():
        if name not in HEADLINES:
            continue
        try:
            rows += [(name, *row) for row in HEADLINES[name](stored["result"])]
        except (KeyError, TypeError):  # a stored result from an older version of the suite
            rows.append((name, "(older stored result)", f"run `mathrag bench --suite {name}` again", ""))
        m = stored["machine"]
        notes.append(f"{name} {stored['date']}{' (--quick)' if stored['quick'] else ''}")
    if not rows:
        return "*No benchmark has been run yet: `mathrag bench`.*\n"
    lines = ["| suite | measure | value | target |", "|---|---|---|---|"]
    lines += [f"| {suite} | {measure} | {value} | {target} |" for suite, measure, value, target in rows]
    where = f"{m['cpus']} CPUs, {m['memory_gib']} GiB, torch {m['torch']} with {m['torch_threads']} threads"
    lines += ["", "Generated by `mathrag bench --update-readme` from the latest run of each suite "
              f"({'; '.join(notes)}) on {where}."]
    return "\n".join(lines) + "\n"


README_FIGURES = ("bench_ratios.png", "bench_scale.png")  # copied into docs/ beside the README's table


def update_readme(readme: Path, table: str, reports_dir: Path | None = None) -> list[Path]:
    """Replace the text between the headline markers of ``readme`` with ``table``; copy the report's
    ``README_FIGURES`` from ``reports_dir`` into ``docs/`` next to it. Returns the files written."""
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme} has no {README_START} ... {README_END} block to fill")
    before, rest = text.split(README_START, 1)
    _, after = rest.split(README_END, 1)
    write_atomic(readme, f"{before}{README_START}\n{table}{README_END}{after}")
    written = [readme]
    for name in README_FIGURES if reports_dir else ():
        if (reports_dir / name).is_file():
            target = readme.parent / "docs" / name
            target.parent.mkdir(exist_ok=True)
            data = (reports_dir / name).read_bytes()
            write_atomic(target, data)
            written.append(target)
    return written


@ratios("rag")
def _rag_ratios(r: dict) -> list[Ratio]:
    s, b = r["search"], r["build"]
    hybrid = s["modes"]["hybrid"]
    return [Ratio("search p50, hybrid, vs embedding the query", hybrid["p50_ratio_vs_embed_floor"], 1.5, False,
                  f"{hybrid['p50_ms']:.1f} vs {s['embed_floor_p50_ms']:.1f} ms"),
            Ratio("index build vs raw encode", b["ratio_vs_raw_encode"], 0.8, True,
                  f"{b['index_chunks_per_s']:.0f} vs {b['raw_encode_chunks_per_s']:.0f} chunks/s")]


@headline("rag")
def _rag_headline(r: dict) -> list[tuple[str, str, str]]:
    hybrid = r["search"]["modes"]["hybrid"]
    g = r["generator"]
    return [("search p50, hybrid, vs embedding the query alone", f"{hybrid['p50_ratio_vs_embed_floor']:.2f}x "
             f"({hybrid['p50_ms']:.0f} ms)", "<= 1.5x"),
            ("index build vs raw encode", f"{r['build']['ratio_vs_raw_encode']:.2f}x", ">= 0.8x"),
            ("hybrid recall@5 (development questions)", f"{r['quality']['hybrid_recall@5']:.3f}", ">= 0.9"),
            (f"{g['name']}: first token / decoding", f"{g['time_to_first_token_s']:.2f} s / "
             f"{g['tokens_per_s']:.1f} tokens/s", "")]
