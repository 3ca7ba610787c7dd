"""The benchmark report: ``bench.md`` with every ratio against its target, and the plots beside it.

The report gathers the latest stored run of every suite (``MATHRAG_HOME/reports/suites/``),
so running one suite keeps the others' sections.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.framework import RATIOS, REPORTS, Ratio, gathered, stored_runs
from bench.readme import headline_table
from rag.artifacts import save_png, write_atomic
from rag.settings import Settings


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
    save_png(fig, path, dpi=110)
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
    save_png(fig, path)


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
    for name, result in summary["suites"].items():
        if name in REPORTS:
            try:
                lines += ["", *REPORTS[name](result)]
            except (KeyError, TypeError):  # a stored result from an older version of the suite
                lines += ["", f"## {name}", "", f"*The stored result has an older format: run `mathrag bench "
                          f"--suite {name}` again.*"]
    return "\n".join(lines) + "\n"


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


