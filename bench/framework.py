"""The benchmark framework: how a suite registers, and what every suite shares.

Benchmarks are reported as ratios against a reference measured in the same run:
absolute timings depend on the machine, a ratio against something measured side
by side on the same machine, in the same process, does not (much).

A suite is a module of this package (``SUITE_MODULES``) that registers, by name:

- ``@suite(name)``: ``fn(settings, quick=False) -> dict``, the run (a suite that
  takes ``generator`` gets the one ``mathrag bench --generator`` names);
- ``@report(name)``: its section of ``bench.md``, as Markdown lines;
- ``@headline(name)``: its rows of the README's headline table;
- ``@ratios(name)``: its :class:`Ratio` bars, drawn with every suite's in ``bench_ratios.png``.

Each target is a named constant of the suite's module. ``bench.run`` runs the
suites, ``bench.report`` writes ``bench.md`` and the plots, ``bench.readme`` the
README's table.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rag.settings import Settings

SUITES: dict[str, Callable[..., dict]] = {}
REPORTS: dict[str, Callable[[dict], list[str]]] = {}  # suite -> its Markdown lines in bench.md
HEADLINES: dict[str, Callable[[dict], list[tuple[str, str, str]]]] = {}  # suite -> (measure, value, target) rows
RATIOS: dict[str, Callable[[dict], list[Ratio]]] = {}  # suite -> its ratios, drawn together in bench_ratios.png
# The suites, in the order they run and are reported; imported on first use (they load models and libraries).
SUITE_MODULES = ("bench.rag_suite", "bench.scratch_suite", "bench.scale_suite", "bench.graph_suite",
                 "bench.vault_suite", "bench.reliability_suite", "bench.finetune_suite")


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
    for module in SUITE_MODULES:
        importlib.import_module(module)


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


def private_home(settings: Settings, folder: Path, quick: bool) -> Settings:
    """Settings over a copy of the notes in ``folder``, with an empty home beside it, to build from nothing;
    ``quick`` keeps every sixth note (a sixth of the embedding)."""
    corpus = folder / "corpus"
    shutil.copytree(settings.corpus_dir, corpus)
    if quick:
        for i, path in enumerate(sorted(corpus.rglob("*.md"))):
            if i % 6:
                path.unlink()
    return Settings(home=folder / "home", corpus_dir=corpus)


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


def timed(fn) -> float:
    """Seconds one call of ``fn()`` takes."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def axes(figsize: tuple[float, float]):
    """(figure, axes) for one plot, drawn off-screen (no pyplot state), laid out to fit its labels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def finish_plot(fig, ax, path: Path, *, xlabel: str, ylabel: str, title: str) -> None:
    """Label the axes, add the legend and write the figure to ``path`` as PNG, atomically."""
    from rag.artifacts import save_png

    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, path)
