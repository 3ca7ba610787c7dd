"""Benchmark suite ``reliability`` (``mathrag bench --suite reliability``): load, faults, fuzzing, security.

- **load**: a real server on 127.0.0.1 over the whole corpus, 20 ``gradio_client`` clients
  asking 5 questions each at once (the default generator; ``--quick``: 2 each of the extractive one),
  then a small queue flooded past its bound (every request answered or told "busy");
- **faults**: every scenario of :mod:`reliability.faults` on private sandboxes (``--quick``: one of
  each kind);
- **fuzzing**: seeded bad input (:mod:`reliability.fuzz`) through the chat, the tokenizer and the
  corpus loader;
- **security**: the source scan, forbidden paths asked of the server, the address it binds,
  and every outbound connection of a served, answered question (:mod:`reliability.security`).

The headline numbers: requests held and their errors, p50/p95 latency, faults injected and
survived, fuzz cases and crashes (target 0), anything lost (target nothing).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from pathlib import Path

from bench.framework import Ratio, axes, finish_plot, headline, ratios, report, suite
from rag.settings import REPO_ROOT, Settings
from reliability import faults, fuzz, security
from reliability.load_test import run_load_elsewhere, run_overflow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _faults(tmp: Path, models: Path, quick: bool) -> list[faults.Outcome]:
    def box(name: str) -> faults.Sandbox:
        return faults.Sandbox(tmp / name, models=models)

    if quick:  # one of each kind of fault
        damaged = box("damaged")
        return [faults.kill_while_publishing(box("kill-index"), "index"),
                faults.damaged_file(damaged, "index", "faiss.index", "flip"),
                faults.damaged_file(damaged, "graph", "manifest.json", "truncate"),
                faults.full_disk(box("full-disk")), faults.edit_while_serving(box("edit-serving"))]
    out = [faults.kill_while_publishing(box("kill-index"), "index"),
           faults.kill_while_publishing(box("kill-first-index"), "index", first=True),
           faults.kill_while_publishing(box("kill-graph"), "graph"),
           faults.kill_at_random(box("kill-random"), seed=0)]
    damaged = box("damaged")
    for artifact, names in (("index", faults.INDEX_FILES), ("graph", faults.GRAPH_FILES)):
        for name in names:
            for how in ("truncate", "flip"):
                out.append(faults.damaged_file(damaged, artifact, name, how))
    out += [faults.read_only_home(box("read-only")), faults.full_disk(box("full-disk")),
            faults.edit_while_serving(box("edit-serving")),
            faults.kill_finetune(faults.Sandbox(tmp / "finetune", faults.FINETUNE_NOTES, models))]
    return out


@suite("reliability")
def run(settings: Settings, quick: bool = False) -> dict:
    from app.engine import Engine

    phases: dict[str, float] = {}  # seconds each part took
    began = time.perf_counter()
    engine = Engine.load(settings)
    phases["load the app"] = time.perf_counter() - began
    generator = "extractive" if quick else engine.generators[0]
    result: dict = {"quick": quick}

    began = time.perf_counter()
    result["load"], result["security"] = _load_phase(engine, settings, generator, quick)
    result["overflow"] = run_overflow(engine, _free_port(), requests=10, queue_size=2)
    phases["load and overflow"] = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="mathrag-faults-") as tmp:
        began = time.perf_counter()
        outcomes = _faults(Path(tmp), settings.models_dir, quick)
        phases["faults"] = time.perf_counter() - began
        began = time.perf_counter()
        fuzzed = _fuzz_phase(engine, Path(tmp), quick)
    phases["fuzzing"] = time.perf_counter() - began
    result["faults"] = [o.to_dict() for o in outcomes]
    result["fuzz"] = [f.to_dict() for f in fuzzed]
    began = time.perf_counter()
    _security_phase(result["security"], settings)
    phases["security"] = time.perf_counter() - began
    result["phase_seconds"] = {k: round(v, 1) for k, v in phases.items()}
    result["summary"] = _summary(result, generator, outcomes, fuzzed)
    plot = settings.reports_dir / "bench_load_latency.png"
    plot_load(result["load"], plot)
    result["_files"] = [str(plot)]
    return result


def _load_phase(engine, settings: Settings, generator: str, quick: bool) -> tuple[dict, dict]:
    """20 clients at once against one client alone, on a real server; and what that server binds and serves."""
    from app.server import launch

    demo, url = launch(engine, port=_free_port(), block=False, queue_size=32, concurrency=2)
    try:
        each = 2 if quick else 5  # questions per client (the test suite asks 20 x 5 of the extractive generator)
        alone = run_load_elsewhere(url, clients=1, questions=each, generator=generator)
        load = run_load_elsewhere(url, clients=20, questions=each, generator=generator).to_dict()
        load["alone_p50_s"] = alone.p50_s
        load["alone_latencies_s"] = alone.latencies_s
        load["p50_ratio_vs_alone"] = round(load["p50_s"] / max(alone.p50_s, 1e-9), 1)
        served = {"binds": demo.server_name, "forbidden_paths": security.probe_paths(url, settings.home)}
    finally:
        demo.close()
    return load, served


def _fuzz_phase(engine, tmp: Path, quick: bool) -> list:
    """Random chat input, random tokenizer input and damaged notes; each fuzzer's tally."""
    from from_scratch.tokenizer import BPETokenizer  # the project's own, as the scratch generator loads it

    good = [REPO_ROOT / "corpus" / n for n in faults.NOTES]
    return [fuzz.fuzz_chat(engine, n=24 if quick else 120),
            fuzz.fuzz_tokenizer(BPETokenizer.from_gguf(), n=150 if quick else 600),
            fuzz.fuzz_corpus(tmp / "fuzz-corpus", good, n=30)]


def _security_phase(sec: dict, settings: Settings) -> None:
    """Add the source scan, the paths served that should not be, and outbound connections to ``sec``."""
    sec["source_violations"] = security.scan_sources()
    sec["served_forbidden"] = [p for p, status in sec["forbidden_paths"].items() if status == 200]
    env = {**os.environ, "MATHRAG_HOME": str(settings.home), "MATHRAG_CORPUS": str(settings.corpus_dir)}
    sec["outbound"] = security.outbound_connections(env, _free_port())


def _summary(result: dict, generator: str, outcomes: list, fuzzed: list) -> dict:
    """The headline figures of the run, one flat dict."""
    injected = [o for o in outcomes if not o.skipped]
    load, sec = result["load"], result["security"]
    return {
        "requests_held": f"{load['clients']} x {load['questions_each']}",
        "generator": generator,
        "errors": load["errors"] + load["without_sources"],
        "p50_s": load["p50_s"], "p95_s": load["p95_s"], "throughput_per_s": load["throughput_per_s"],
        "overflow_ok": result["overflow"]["ok"],
        "faults_injected": len(injected),
        "faults_survived": sum(o.survived for o in injected),
        "faults_skipped": [o.fault for o in outcomes if o.skipped],
        "fuzz_cases": sum(f.cases for f in fuzzed),
        "crashes": sum(f.crashes for f in fuzzed),
        "lost": [f"{o.fault}: {x}" for o in outcomes for x in o.lost],
        "security_findings": len(sec["source_violations"]) + len(sec["served_forbidden"]) + len(
            sec["outbound"]["outside"]) + (sec["binds"] != "127.0.0.1"),
    }


def plot_load(load: dict, path: Path) -> None:
    """Histogram of request latencies: one client alone against every client at once."""
    fig, ax = axes((7, 3.6))
    together, alone = load.get("latencies_s", []), load.get("alone_latencies_s", [])
    top = max(together + alone + [1e-3])
    bins = [top * i / 40 for i in range(41)]
    ax.hist(alone, bins=bins, color="#2a9d8f", alpha=0.8, label=f"1 client alone (p50 {load['alone_p50_s']:.2f} s)")
    ax.hist(together, bins=bins, color="#457b9d", alpha=0.6,
            label=f"{load['clients']} clients at once (p50 {load['p50_s']:.2f} s, p95 {load['p95_s']:.2f} s)")
    for q, style in ((load["p50_s"], "-"), (load["p95_s"], "--")):
        ax.axvline(q, color="#1d3557", linestyle=style, linewidth=1)
    ax.yaxis.get_major_locator().set_params(integer=True)
    finish_plot(fig, ax, path, xlabel="seconds from question to finished answer", ylabel="requests",
                title=f"Load: {load['clients']} x {load['questions_each']} questions ({load['generator']} answers)")


@report("reliability")
def markdown(result: dict) -> list[str]:
    s, load, over = result["summary"], result["load"], result["overflow"]
    lines = ["## reliability", "", "| measure | value | target |", "|---|---|---|",
             f"| load: {s['requests_held']} concurrent clients x questions ({s['generator']}) | {load['answered']} "
             f"answered, {s['errors']} errors or answers without sources | 0 errors |",
             f"| load latency p50 / p95 | {s['p50_s']:.2f} s / {s['p95_s']:.2f} s ({s['throughput_per_s']:.2f} "
             f"answers/s) | one client alone: p50 {load['alone_p50_s']:.2f} s |",
             f"| past the queue's bound ({over['requests']} requests, queue {over['queue_size']}) | "
             f"{', '.join(f'{k} {v}' for k, v in over['outcomes'].items())} | answered or busy, never hung |",
             f"| faults injected / survived | {s['faults_injected']} / {s['faults_survived']} | all |",
             f"| fuzz cases / crashes | {s['fuzz_cases']} / {s['crashes']} | 0 crashes |",
             f"| anything lost | {'; '.join(s['lost']) or 'nothing'} | nothing |",
             f"| security findings | {s['security_findings']} | 0 |", "",
             "Time by part: " + ", ".join(f"{k} {v:.0f} s" for k, v in result.get("phase_seconds", {}).items())
             + ".", "",
             "| fault | survived | what happened | s |", "|---|---|---|---|"]
    for o in result["faults"]:
        mark = "skipped: " + o["skipped"] if o["skipped"] else ("yes" if o["survived"] else "**NO**")
        lines.append(f"| {o['fault']} | {mark} | {o['detail'].replace('|', '/')} | {o['seconds']:.1f} |")
    return [*lines, "", "![load latency](bench_load_latency.png)"]


@headline("reliability")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    s = result["summary"]
    return [(f"load, {s['requests_held']} concurrent clients x questions ({s['generator']})",
             f"{s['errors']} errors, p50 {s['p50_s']:.1f} s, p95 {s['p95_s']:.1f} s", "0 errors"),
            ("faults survived (kill -9, damaged files, read-only home, full disk, ...)",
             f"{s['faults_survived']} of {s['faults_injected']}", "all"),
            ("fuzz cases / crashes", f"{s['fuzz_cases']} / {s['crashes']}", "0 crashes"),
            ("lost / security findings", f"{len(s['lost'])} / {s['security_findings']}", "0 / 0")]


@ratios("reliability")
def _ratios(result: dict) -> list[Ratio]:
    load = result["load"]
    return [Ratio(f"load p50, {load['clients']} clients at once vs 1 alone", load["p50_ratio_vs_alone"], None, False,
                  f"{load['p50_s']:.1f} vs {load['alone_p50_s']:.1f} s")]
