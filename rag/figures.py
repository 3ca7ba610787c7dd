"""Figures drawn by the notes' own code.

A note teaches from a picture: each has at least one ```` ```python figure ```` block, placed in the section
whose idea it draws. The block's first line is a comment, its caption; the code draws with matplotlib on the
current figure and never saves or shows it. This module runs the blocks and keeps the PNGs:

- every block runs in a fresh namespace of a worker process (one per core, each importing matplotlib once,
  with the non-interactive Agg backend), with a per-figure time limit;
- a PNG is named by the note, the block's position and a hash of its code, so a changed block is drawn again
  and an unchanged one is not;
- PNGs are written atomically under ``MATHRAG_HOME/figures/`` with ``manifest.json`` (source, section,
  caption, file), which is what the app reads to show a note's figures in place and under an answer.

A block that fails is reported with its note and line, and the others are still drawn.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from rag.corpus import FIGURE_CAPTION, Note

MANIFEST = "manifest.json"
FIGURE_TIMEOUT = 60.0  # seconds for one figure block
DPI = 110


@dataclass(frozen=True)
class Figure:
    """One figure block of a note, and where its PNG goes."""

    source: str  # the note, e.g. corpus/linear_algebra/svd.md
    section: str  # its H2 section, e.g. "Intuition"
    subsection: str  # its H3 heading, or ""
    caption: str
    file: str  # PNG file name inside the figures folder
    line: int  # the block's opening fence, in the note file
    code: str

    def entry(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "code"}


def note_figures(note: Note) -> list[Figure]:
    """The note's figure blocks, in the order they appear."""
    figures = []
    for n, block in enumerate(note.figure_blocks, start=1):
        first = block.code.splitlines()[0] if block.code.strip() else ""
        m = FIGURE_CAPTION.match(first)
        section, subsection = note.section_at(block.line)
        digest = hashlib.sha1(block.code.encode()).hexdigest()[:10]
        figures.append(Figure(note.source, section, subsection, m.group(1).strip() if m else "",
                              f"{note.slug}-{n}-{digest}.png", block.line, block.code))
    return figures


# The worker: reads [{"code", "line", "path", "out"}] as JSON on stdin and prints one JSON line per figure.
_WORKER = r'''
import json, os, signal, sys, traceback
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
for job in json.load(sys.stdin):
    plt.close("all")
    signal.alarm(job["timeout"])
    try:
        code = compile("\n" * job["line"] + job["code"], job["path"], "exec")
        exec(code, {"__name__": "__figure__"})
        tmp = job["out"] + ".tmp.png"
        plt.gcf().savefig(tmp, dpi=job["dpi"], bbox_inches="tight")
        os.replace(tmp, job["out"])
        print(json.dumps({"out": job["out"], "error": None}), flush=True)
    except BaseException as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(json.dumps({"out": job["out"], "error": f"line {where.lineno}: {type(exc).__name__}: {exc}"}),
              flush=True)
    signal.alarm(0)
'''


WORKERS = 4  # at most this many worker processes (and no more than the machine's cores)


def draw(figures: list[Figure], out_dir: Path, progress: bool = False) -> dict[str, str | None]:
    """Run the figure blocks in worker processes, one per core (at most WORKERS), each importing matplotlib
    once; PNGs go to ``out_dir``. Returns file -> error (None: drawn)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [{"code": f.code, "line": f.line, "path": f.source, "out": str(out_dir / f.file), "dpi": DPI,
             "timeout": int(FIGURE_TIMEOUT)}
            for f in figures]
    if not jobs:
        return {}
    results: dict[str, str | None] = {f.file: "not run" for f in figures}
    n = max(1, min(WORKERS, os.cpu_count() or 1, len(jobs) // 8 + 1))
    with tqdm(total=len(jobs), desc="figures", unit="fig", disable=not progress) as bar, \
            ThreadPoolExecutor(n) as pool:
        for share in pool.map(lambda k: _run_worker(jobs[k::n], bar), range(n)):
            results.update(share)
    return results


def _run_worker(jobs: list[dict], bar) -> dict[str, str | None]:
    """One worker process over ``jobs``: file -> error (None: drawn); a worker that dies names why."""
    results: dict[str, str | None] = {Path(j["out"]).name: "not run" for j in jobs}
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory() as cwd, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, text=True, cwd=cwd, env=env)
        proc.stdin.write(json.dumps(jobs))
        proc.stdin.close()
        for line in proc.stdout:  # each figure has its own time limit (an alarm in the worker)
            row = json.loads(line)
            results[Path(row["out"]).name] = row["error"]
            bar.update(1)
        if proc.wait() and "not run" in results.values():
            err.seek(0)
            tail = (err.read().strip().splitlines() or ["(no output)"])[-1]
            results = {k: v if v != "not run" else f"the worker stopped: {tail}" for k, v in results.items()}
    return results


def figures_dir(home: Path) -> Path:
    return home / "figures"


def load_manifest(home: Path) -> list[dict]:
    """The drawn figures (``Figure.entry()`` rows), or [] before any were drawn."""
    path = figures_dir(home) / MANIFEST
    try:
        return json.loads(path.read_text())["figures"]
    except (OSError, ValueError, KeyError):
        return []


def ensure_drawn(notes: list[Note], home: Path, progress: bool = False) -> tuple[list[dict], dict[str, str]]:
    """Draw the notes' figures that are not drawn yet (a changed block is a new file) into
    ``MATHRAG_HOME/figures/`` and rewrite the manifest. Returns (manifest rows, file -> error of failed ones)."""
    folder = figures_dir(home)
    figures = [f for note in notes for f in note_figures(note)]
    todo = [f for f in figures if not (folder / f.file).is_file()]
    errors = {k: v for k, v in draw(todo, folder, progress=progress).items() if v}
    rows = [f.entry() for f in figures if (folder / f.file).is_file()]
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"figures": rows}, indent=1))
    os.replace(tmp, folder / MANIFEST)
    wanted = {f.file for f in figures}
    for stale in folder.glob("*.png"):  # drawn from a block that has changed or gone
        if stale.name not in wanted:
            stale.unlink()
    return rows, errors


def main(argv: list[str] | None = None) -> int:
    """Draw the figures of the given notes into a temporary folder (or ``--out DIR``) and report each."""
    import argparse

    from rag.corpus import note_paths, parse_note

    parser = argparse.ArgumentParser(prog="python -m rag.figures", description=main.__doc__)
    parser.add_argument("paths", nargs="*", help="note files (default: the whole corpus)")
    parser.add_argument("--out", type=Path, help="folder for the PNGs (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    notes = [parse_note(Path(p)) for p in args.paths] if args.paths else [parse_note(p) for p in note_paths()]
    figures = [f for note in notes for f in note_figures(note)]
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        results = draw(figures, out, progress=True)
        for f in figures:
            error = results.get(f.file)
            print(f"{'FAIL' if error else 'ok  '} {f.source}:{f.line} {f.caption[:60]}" + (
                f"\n     - {error}" if error else f" -> {out / f.file}" if args.out else ""))
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
