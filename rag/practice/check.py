"""How good the exercise generator is, measured: does every exercise's own solution grade as right, and does an
obviously wrong answer (another exercise's answer of the same kind, from another note) grade as wrong?

    python -m rag.practice.check          # or: mathrag practice check

Numeric exercises are made with three seeds each; the wrong number for one is the right number of another note's
exercise, or the right number plus a half when that one happens to be close.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections import defaultdict

import numpy as np

from rag.practice.exercises import Exercise, ExerciseBook, _surely_differs, build_exercises, slips
from rag.practice.grading import readable_prose
from rag.practice.numeric import run_exercise_blocks
from rag.practice.quiz import encode_texts, grade

SEEDS = (0, 1, 2)


def concrete(book: ExerciseBook) -> list[Exercise]:
    """Every exercise as a learner would get it; numeric ones once per seed in SEEDS (all the blocks in one
    process)."""
    numeric = [ex for ex in book.exercises.values() if ex.kind == "numeric"]
    made = run_exercise_blocks([book.notes[ex.source] for ex in numeric], list(SEEDS))
    out = [ex for ex in book.exercises.values() if ex.kind != "numeric"]
    for ex in numeric:
        instances = made[ex.source]
        out += [dataclasses.replace(ex, id=f"{ex.id}@{m.seed}", prompt=m.question, solution=m.solution,
                                    answer=repr(m.answer), tolerance=m.tolerance, seed=m.seed) for m in instances]
    return out


def own_answer(ex: Exercise) -> str:
    return ex.answer


def wrong_answer(ex: Exercise, others: list[Exercise], rng: random.Random) -> str:
    """A slip of the right formula (a sign, an exponent), another note's right answer of the same kind, or
    another letter."""
    real_slips = [w for w in slips(ex.answer) if _surely_differs(w, ex.answer)] if ex.kind == "formula" else []
    if real_slips:
        return real_slips[0]
    if ex.kind == "next-step":
        letters = "ABCDEFGH"[:len(ex.choices)]
        return rng.choice([c for c in letters if c != ex.answer])
    pool = [o for o in others if o.kind == ex.kind and o.source != ex.source]
    wrong = rng.choice(pool).answer
    if ex.kind == "numeric" and abs(float(wrong) - float(ex.answer)) <= ex.tolerance:
        wrong = repr(float(ex.answer) + 0.5 + 10 * ex.tolerance)
    return wrong


def evaluate(book: ExerciseBook | None = None, encode=encode_texts, seed: int = 0) -> dict:
    book = book or build_exercises()
    exercises = concrete(book)
    rng = random.Random(seed)
    wrong_texts = [wrong_answer(ex, exercises, rng) for ex in exercises]
    why = [t for ex, w in zip(exercises, wrong_texts, strict=True) if ex.kind == "why"
           for t in (ex.answer, w, readable_prose(ex.answer), readable_prose(ex.solution))]
    known = dict(zip(why, encode(why), strict=True)) if why else {}  # one batch, not two texts at a time
    encode_known = lambda texts: np.stack([known[t] if t in known else encode([t])[0] for t in texts])  # noqa: E731
    rows: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    failures = []
    for ex, wrong_text in zip(exercises, wrong_texts, strict=True):
        right = grade(ex, own_answer(ex), encode_known)
        wrong = grade(ex, wrong_text, encode_known)
        row = rows[ex.kind]
        row["exercises"] += 1
        row["solution_right"] += right.correct is True
        row["wrong_wrong"] += wrong.correct is False
        row["wrong_unjudged"] += wrong.correct is None
        if right.correct is not True:
            failures.append({"id": ex.id, "what": "own solution not graded right", "message": right.message})
        if wrong.correct is True:
            failures.append({"id": ex.id, "what": f"wrong answer {wrong_text[:60]!r} graded right",
                             "message": wrong.message})
    total = {k: sum(r[k] for r in rows.values()) for k in ("exercises", "solution_right", "wrong_wrong",
                                                            "wrong_unjudged")}
    per_note = defaultdict(set)
    for ex in book.exercises.values():
        per_note[ex.source].add(ex.kind)
    return {"exercises": len(book.exercises), "asked": total["exercises"], "notes": len(book.notes),
            "kinds_per_note": round(sum(len(k) for k in per_note.values()) / max(1, len(book.notes)), 2),
            "solutions_graded_right": round(total["solution_right"] / total["exercises"], 4),
            "wrong_graded_wrong": round(total["wrong_wrong"] / total["exercises"], 4),
            "by_kind": {k: dict(v) for k, v in sorted(rows.items())}, "failures": failures}


def report_markdown(result: dict) -> str:
    lines = ["# The exercise generator, measured", "",
             f"{result['exercises']} exercises from {result['notes']} notes ({result['kinds_per_note']} kinds per "
             f"note); {result['asked']} graded (numeric ones with {len(SEEDS)} seeds each).", "",
             f"- own solution graded right: **{result['solutions_graded_right']:.2%}**",
             f"- an obviously wrong answer graded wrong: **{result['wrong_graded_wrong']:.2%}**", "",
             "| kind | exercises | solution right | wrong answer wrong | wrong answer not judged |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for kind, r in result["by_kind"].items():
        lines.append(f"| {kind} | {r['exercises']} | {r['solution_right']} | {r['wrong_wrong']} | "
                     f"{r.get('wrong_unjudged', 0)} |")
    if result["failures"]:
        lines += ["", "Failures:", ""] + [f"- `{f['id']}`: {f['what']}: {f['message']}" for f in result["failures"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    result = evaluate()
    print(report_markdown(result))
    return 0 if result["solutions_graded_right"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
