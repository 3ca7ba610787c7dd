"""One round of practice: which exercises to ask, with what numbers, and how an answer is graded.

A numeric exercise is asked with fresh numbers: its instance id is ``<exercise id>@<seed>``, so the same
numbers come back when the answer is graded (by another process, for example the next CLI call).
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime

from rag.practice.exercises import KINDS, Exercise, ExerciseBook
from rag.practice.grading import Verdict, grade_choice, grade_cloze, grade_formula, grade_number, grade_why
from rag.practice.numeric import run_exercise_block
from rag.practice.progress import Progress


class UnknownExercise(ValueError):
    """An exercise id that names no exercise (the notes changed, or a typo)."""


def instance(book: ExerciseBook, exercise_id: str) -> Exercise:
    """The exercise an id names, with its numbers filled in when it is numeric (``id@seed``)."""
    base, _, seed = exercise_id.partition("@")
    if base not in book.exercises:
        raise UnknownExercise(f"no exercise '{base}' (list them with 'mathrag practice quiz --note NOTE')")
    ex = book.exercises[base]
    if ex.kind != "numeric":
        return ex
    seed_value = int(seed) if seed.isdigit() else 0
    (made,) = run_exercise_block(book.notes[ex.source], [seed_value])
    return dataclasses.replace(ex, id=f"{base}@{seed_value}", prompt=made.question, solution=made.solution,
                               answer=repr(made.answer), tolerance=made.tolerance, seed=seed_value)


def encode_texts(texts: list[str]):
    """Normalised sentence embeddings from the project's embedder (what grades a "why" answer)."""
    from rag.models import load_embedder

    return load_embedder().encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)


def fresh_seed(learner: str, exercise_id: str, reviews: int) -> int:
    """New numbers for each time a learner meets a numeric exercise, the same on every machine."""
    return int(hashlib.sha1(f"{learner}|{exercise_id}|{reviews}".encode()).hexdigest()[:6], 16)


def grade(ex: Exercise, answer: str, encode=None) -> Verdict:
    """Grade ``answer`` to ``ex`` with the grader its kind needs (``encode`` embeds texts, for "why")."""
    if ex.kind == "formula":
        return grade_formula(answer, ex.answer)
    if ex.kind == "numeric":
        return grade_number(answer, float(ex.answer), ex.tolerance)
    if ex.kind == "cloze":
        return grade_cloze(answer, ex.accepted)
    if ex.kind == "next-step":
        return grade_choice(answer, ex.choices.index(ex.answer) if ex.answer in ex.choices else
                            "ABCDEFGH".index(ex.answer), len(ex.choices))
    if ex.kind == "why":
        if encode is None:
            raise ValueError("grading a 'why' answer needs the embedder (encode)")
        return grade_why(answer, ex.answer, ex.key_terms, encode, context=ex.solution)
    raise ValueError(f"unknown exercise kind '{ex.kind}' (one of {', '.join(KINDS)})")


def pick(book: ExerciseBook, progress: Progress, learner: str, *, note: str | None = None, count: int = 5,
         at: datetime | None = None) -> list[Exercise]:
    """Up to ``count`` exercises: the learner's due ones first (of ``note``, if given), then ones not met yet of
    ``note``, the kinds taken in turn; numeric ones get fresh numbers."""
    pool = book.of_note(note) if note else list(book.exercises.values())
    ids = {e.id for e in pool}
    chosen = [i for i, _ in progress.due(learner, at) if i in ids][:count]
    met = progress.schedule(learner)
    if note and len(chosen) < count:
        new = [e for e in pool if e.id not in met]
        by_kind = {k: [e for e in new if e.kind == k] for k in KINDS}
        while len(chosen) < count and any(by_kind.values()):
            for kind in KINDS:
                if by_kind[kind] and len(chosen) < count:
                    chosen.append(by_kind[kind].pop(0).id)
    reviews = {}
    for row in progress.history(learner):
        reviews[row["exercise_id"]] = reviews.get(row["exercise_id"], 0) + 1
    numeric = {i for i in chosen if book.exercises[i].kind == "numeric"}
    return [instance(book, f"{i}@{fresh_seed(learner, i, reviews.get(i, 0))}" if i in numeric else i) for i in chosen]
