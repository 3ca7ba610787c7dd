"""Benchmark suite ``reliability`` (``mathrag bench --suite reliability``): load, faults, fuzzing, security.

- **load**: a real server on 127.0.0.1 over the whole corpus, 20 ``gradio_client`` clients
  asking 5 questions each at once (the default generator; ``--quick``: the extractive one),
  then a small queue flooded past its bound (every request answered or told "busy");
- **faults**: every scenario of :mod:`app.faults` on private sandboxes (``--quick``: one of
  each kind);
- **fuzzing**: seeded bad input (:mod:`app.fuzz`) through the chat, the tokenizer and the
  corpus loader;
- **security**: the source scan, forbidden paths asked of the server, the address it binds,
  and every outbound connection of a served, answered question (:mod:`app.security`).

The headline numbers: requests held and their errors, p50/p95 latency, faults injected and
survived, fuzz cases and crashes (target 0), anything lost (target nothing).
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from app import faults, fuzz, security
from app.load_test import run_load_elsewhere, run_overflow
from rag.bench import headline, report, suite
from rag.settings import REPO_ROOT, Settings


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


def _scratch_tokenizer(settings: Settings, get_generator):
    """The project's own BPE tokenizer (from_scratch), as the scratch generator loads it from SmolLM2's GGUF."""
    return get_generator("scratch", settings).tokenizer


@suite("reliability")
def run(settings: Settings, quick: bool = False) -> dict:
    from app.engine import Engine
    from app.server import launch
    from rag.generators import get_generator

    result: dict = {"quick": quick}
    engine = Engine.load(settings)
    generator = "extractive" if quick else engine.generators[0]

    # ---- load
    demo, url = launch(engine, port=_free_port(), block=False, queue_size=32, concurrency=2)
    try:
        alone = run_load_elsewhere(url, clients=1, questions=5, generator=generator)
        result["load"] = run_load_elsewhere(url, clients=20, questions=5, generator=generator).to_dict()
        result["load"]["alone_p50_s"] = alone.p50_s
        result["load"]["p50_ratio_vs_alone"] = round(result["load"]["p50_s"] / max(alone.p50_s, 1e-9), 1)
        result["security"] = {"binds": demo.server_name, "forbidden_paths": security.probe_paths(url, settings.home)}
    finally:
        demo.close()
    result["overflow"] = run_overflow(engine, _free_port(), requests=10, queue_size=2)

    # ---- faults
    with tempfile.TemporaryDirectory(prefix="mathrag-faults-") as tmp:
        outcomes = _faults(Path(tmp), settings.models_dir, quick)
        # ---- fuzzing
        good = [REPO_ROOT / "corpus" / n for n in faults.NOTES]
        fuzzed = [fuzz.fuzz_chat(engine, n=40 if quick else 120),
                  fuzz.fuzz_tokenizer(_scratch_tokenizer(settings, get_generator), n=150 if quick else 600),
                  fuzz.fuzz_corpus(Path(tmp) / "fuzz-corpus", good, n=30)]
    result["faults"] = [o.to_dict() for o in outcomes]
    result["fuzz"] = [f.to_dict() for f in fuzzed]

    # ---- security
    sec = result["security"]
    sec["source_violations"] = security.scan_sources()
    sec["served_forbidden"] = [p for p, status in sec["forbidden_paths"].items() if status == 200]
    env = {**os.environ, "MATHRAG_HOME": str(settings.home), "MATHRAG_CORPUS": str(settings.corpus_dir)}
    sec["outbound"] = security.outbound_connections(env, _free_port())

    injected = [o for o in outcomes if not o.skipped]
    load = result["load"]
    result["summary"] = {
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
    return result


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
             "| fault | survived | what happened | s |", "|---|---|---|---|"]
    for o in result["faults"]:
        mark = "skipped: " + o["skipped"] if o["skipped"] else ("yes" if o["survived"] else "**NO**")
        lines.append(f"| {o['fault']} | {mark} | {o['detail'].replace('|', '/')} | {o['seconds']:.1f} |")
    return lines


@headline("reliability")
def _headline(result: dict) -> list[tuple[str, str, str]]:
    s = result["summary"]
    return [(f"load, {s['requests_held']} concurrent clients x questions ({s['generator']})",
             f"{s['errors']} errors, p50 {s['p50_s']:.1f} s, p95 {s['p95_s']:.1f} s", "0 errors"),
            ("faults survived (kill -9, damaged files, read-only home, full disk, ...)",
             f"{s['faults_survived']} of {s['faults_injected']}", "all"),
            ("fuzz cases / crashes", f"{s['fuzz_cases']} / {s['crashes']}", "0 crashes"),
            ("lost / security findings", f"{len(s['lost'])} / {s['security_findings']}", "0 / 0")]
