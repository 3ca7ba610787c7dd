"""Numeric exercises: a note's ``python exercise`` block, run with fresh seeded numbers.

A note may vary its worked example with a block like this, placed at the end of its "Worked example" section::

    ```python exercise
    # Project b onto a: fresh integer vectors each time.
    def exercise(rng):                       # rng: numpy.random.Generator
        a, b = rng.integers(-4, 5, size=2), rng.integers(-4, 5, size=2)
        ...
        return {"question": "...", "answer": 1.25, "tolerance": 0.01, "solution": "..."}
    ```

``question`` and ``solution`` are Markdown with ``$...$`` math; ``answer`` is one real number and ``tolerance``
the absolute error a right answer stays within (the question says how to round). The block runs in a fresh Python
process (like the note's check), so a broken note cannot take the app down; one process makes all the seeds asked.

Run ``python -m rag.practice.numeric corpus/.../note.md`` to try a note's block with a few seeds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from rag.corpus import Note, parse_note

# One process runs every block it is given, each in a namespace of its own (numpy is imported once); a block
# that fails is reported with its error line and the others still run.
_DRIVER = r"""
import json, sys, traceback
import numpy as np
out = {}
for job in json.load(sys.stdin):
    try:
        space = {"__name__": "exercise"}
        exec(compile("\n" * job["line"] + job["code"], job["source"], "exec"), space)
        made = [space["exercise"](np.random.default_rng(seed)) for seed in job["seeds"]]
        out[job["source"]] = [{k: (float(v) if k in ("answer", "tolerance") else str(v)) for k, v in m.items()}
                              for m in made]
    except Exception:
        out[job["source"]] = traceback.format_exc().strip().splitlines()[-1]
sys.stdout.write("\n@@EXERCISES@@" + json.dumps(out))
"""
KEYS = ("question", "answer", "tolerance", "solution")


class ExerciseBlockError(ValueError):
    """A note's exercise block failed or returned something that is not an exercise; the message says which."""


@dataclass(frozen=True)
class Numeric:
    question: str
    answer: float
    tolerance: float
    solution: str
    seed: int


def run_exercise_block(note: Note, seeds: list[int], timeout: float = 60.0) -> list[Numeric]:
    """The note's numeric exercise for each seed (empty when the note has no exercise block)."""
    made = run_exercise_blocks([note], seeds, timeout)
    return made.get(note.source, [])


def run_exercise_blocks(notes: list[Note], seeds: list[int], timeout: float = 120.0) -> dict[str, list[Numeric]]:
    """Note source -> its numeric exercise for each seed, for every note with an exercise block, all run in one
    fresh Python process. Raises :class:`ExerciseBlockError` naming the first block that failed."""
    jobs = [{"source": n.source, "line": n.exercise_blocks[0].line, "code": n.exercise_blocks[0].code,
             "seeds": [int(s) for s in seeds]} for n in notes if n.exercise_blocks]
    if not jobs:
        return {}
    done = subprocess.run([sys.executable, "-c", _DRIVER], input=json.dumps(jobs), capture_output=True, text=True,
                          timeout=timeout, cwd=notes[0].path.parent)
    if done.returncode or "@@EXERCISES@@" not in done.stdout:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ExerciseBlockError(f"the exercise blocks could not run: {tail}")
    results = json.loads(done.stdout.rsplit("@@EXERCISES@@", 1)[1])
    by_source = {n.source: n for n in notes}
    out = {}
    for source, made in results.items():
        if isinstance(made, str):
            raise ExerciseBlockError(f"{source}: the exercise block failed: {made}")
        out[source] = [_checked(by_source[source], item, seed) for item, seed in zip(made, seeds, strict=True)]
    return out


def _checked(note: Note, item: dict, seed: int) -> Numeric:
    missing = [k for k in KEYS if k not in item]
    if missing:
        raise ExerciseBlockError(f"{note.source}: the exercise (seed {seed}) has no {', '.join(missing)}")
    answer, tolerance = item["answer"], item["tolerance"]
    if not (math.isfinite(answer) and math.isfinite(tolerance) and tolerance > 0):
        raise ExerciseBlockError(f"{note.source}: the exercise (seed {seed}) has answer {answer}, "
                                 f"tolerance {tolerance}")
    if not item["question"].strip() or not item["solution"].strip():
        raise ExerciseBlockError(f"{note.source}: the exercise (seed {seed}) has an empty question or solution")
    return Numeric(item["question"], answer, tolerance, item["solution"], seed)


def main(argv: list[str] | None = None) -> int:
    """Print each given note's numeric exercise for seeds 0-2."""
    for path in argv if argv is not None else sys.argv[1:]:
        note = parse_note(Path(path))
        try:
            for ex in run_exercise_block(note, [0, 1, 2]):
                print(f"[{note.slug} seed {ex.seed}] {ex.question}\n  answer {ex.answer:g} ± {ex.tolerance:g}\n"
                      f"  solution: {ex.solution}\n")
        except ExerciseBlockError as exc:
            print(f"FAIL {exc}")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
