"""Running the benchmark suites: ``run_bench`` (``mathrag bench``) and ``rewrite_report`` (``--stored``)."""

from __future__ import annotations

import inspect
import json
import time

from bench.framework import SUITES, load_suites, machine, stored_runs
from bench.report import write_report
from rag.artifacts import write_atomic
from rag.settings import Settings, get_settings


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
        kwargs = {"generator": generator} if "generator" in inspect.signature(SUITES[name]).parameters else {}
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


