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

_DRIVER = """
import json, sys
import numpy as np
out = []
for seed in {seeds!r}:
    made = exercise(np.random.default_rng(seed))
    out.append({{k: (float(v) if k in ("answer", "tolerance") else str(v)) for k, v in made.items()}})
sys.stdout.write("\\n@@EXERCISES@@" + json.dumps(out))
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
    if not note.exercise_blocks:
        return []
    block = note.exercise_blocks[0]
    code = "\n" * block.line + block.code + "\n" + _DRIVER.format(seeds=[int(s) for s in seeds])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          cwd=note.path.parent)
    if done.returncode or "@@EXERCISES@@" not in done.stdout:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ExerciseBlockError(f"{note.source}: the exercise block failed: {tail}")
    made = json.loads(done.stdout.rsplit("@@EXERCISES@@", 1)[1])
    return [_checked(note, item, seed) for item, seed in zip(made, seeds, strict=True)]


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
