"""A learner's progress, kept on this machine: cards, reviews and the spaced-repetition schedule, in SQLite.

The schedule is the ``fsrs`` package's (Free Spaced Repetition Scheduler): each exercise a learner has met is a
card with a stability, a difficulty and a due time; a right answer is rated Good and pushes the card further out,
a wrong one is rated Again and brings it back soon. An answer that could not be read is not a review.

``MATHRAG_HOME/practice.sqlite3`` holds several named learners. Every review is one transaction in WAL mode, so
a killed process loses at most the answer being written, never the file. Nothing leaves the machine; progress
can be exported as CSV and as Anki's text import format.
"""

from __future__ import annotations

import csv
import re
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fsrs import Card, Rating, Scheduler

from rag.artifacts import write_atomic
from rag.practice.exercises import Exercise
from rag.practice.grading import Verdict
from rag.settings import Settings, get_settings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS learners (name TEXT PRIMARY KEY, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cards (
    learner TEXT NOT NULL, exercise_id TEXT NOT NULL, source TEXT NOT NULL, card TEXT NOT NULL, due TEXT NOT NULL,
    PRIMARY KEY (learner, exercise_id));
CREATE TABLE IF NOT EXISTS reviews (
    id INTEGER PRIMARY KEY AUTOINCREMENT, learner TEXT NOT NULL, exercise_id TEXT NOT NULL, source TEXT NOT NULL,
    kind TEXT NOT NULL, at TEXT NOT NULL, correct INTEGER NOT NULL, rating INTEGER NOT NULL, grader TEXT NOT NULL,
    answer TEXT NOT NULL, seed INTEGER);
CREATE INDEX IF NOT EXISTS reviews_by_learner ON reviews (learner, source, at);
"""
LEARNER = re.compile(r"^[\w .'-]{1,40}$")
RECENT = 4  # a concept's mastery is judged on its last RECENT reviews


class BadLearner(ValueError):
    """A learner name that cannot be used; the message says why."""


def check_learner(name: str) -> str:
    """The learner's name without surrounding spaces, or a one-line ``BadLearner``."""
    name = (name or "").strip()
    if not LEARNER.match(name):
        raise BadLearner(f"learner name {name!r}: use 1-40 letters, digits, spaces, . ' or -")
    return name


def practice_db(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "practice.sqlite3"


def now_utc() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Review:
    exercise_id: str
    correct: bool
    due: datetime  # when the card comes back


class Progress:
    """The store; open it with ``Progress.open()`` (or a path), use it, ``close()`` it (or use ``with``)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, timeout=10, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        self.scheduler = Scheduler()

    @classmethod
    def open(cls, settings: Settings | None = None) -> Progress:
        return cls(practice_db(settings))

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- learners

    def learner(self, name: str) -> str:
        """The learner's name, registered if new."""
        name = check_learner(name)
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO learners VALUES (?, ?)", (name, now_utc().isoformat()))
        return name

    def learners(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM learners ORDER BY name")]

    # ---------------------------------------------------------------- reviews and the schedule

    def review(self, learner: str, exercise: Exercise, verdict: Verdict, answer: str, *, seed: int | None = None,
               at: datetime | None = None) -> Review | None:
        """Record a judged answer and move the exercise's card; None (and nothing stored) if it was not judged."""
        if not verdict.judged:
            return None
        learner, at = self.learner(learner), at or now_utc()
        card_id = exercise.id.split("@")[0]  # a numeric exercise's card is the same whatever its numbers
        card = self._card(learner, card_id) or Card()
        rating = Rating.Good if verdict.correct else Rating.Again
        card, _ = self.scheduler.review_card(card, rating, review_datetime=at)
        with self.db:  # one transaction: the card and its review land together or not at all
            self.db.execute("INSERT OR REPLACE INTO cards VALUES (?, ?, ?, ?, ?)",
                            (learner, card_id, exercise.source, card.to_json(), card.due.isoformat()))
            self.db.execute("INSERT INTO reviews (learner, exercise_id, source, kind, at, correct, rating, grader, "
                            "answer, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (learner, card_id, exercise.source, exercise.kind, at.isoformat(),
                             int(bool(verdict.correct)), int(rating), verdict.grader, answer, seed))
        return Review(card_id, bool(verdict.correct), card.due)

    def _card(self, learner: str, exercise_id: str) -> Card | None:
        row = self.db.execute("SELECT card FROM cards WHERE learner = ? AND exercise_id = ?",
                              (learner, exercise_id)).fetchone()
        return Card.from_json(row[0]) if row else None

    def due(self, learner: str, at: datetime | None = None) -> list[tuple[str, datetime]]:
        """(exercise id, due time) of the learner's cards that are due, most overdue first."""
        at = at or now_utc()
        rows = self.db.execute("SELECT exercise_id, due FROM cards WHERE learner = ? AND due <= ? ORDER BY due",
                               (learner, at.isoformat()))
        return [(r[0], datetime.fromisoformat(r[1])) for r in rows]

    def schedule(self, learner: str) -> dict[str, datetime]:
        """Every card of the learner: exercise id -> when it is due."""
        rows = self.db.execute("SELECT exercise_id, due FROM cards WHERE learner = ?", (learner,))
        return {r[0]: datetime.fromisoformat(r[1]) for r in rows}

    # ---------------------------------------------------------------- what the learner knows

    def recent_grades(self, learner: str) -> dict[str, list[bool]]:
        """Note source -> the learner's last RECENT grades on its exercises, oldest first."""
        grades: dict[str, list[bool]] = defaultdict(list)
        for source, correct in self.db.execute("SELECT source, correct FROM reviews WHERE learner = ? ORDER BY at, id",
                                               (learner,)):
            grades[source].append(bool(correct))
        return {s: g[-RECENT:] for s, g in grades.items()}

    def stats(self, learner: str, at: datetime | None = None) -> dict:
        rows = self.db.execute("SELECT kind, correct FROM reviews WHERE learner = ?", (learner,)).fetchall()
        by_kind: dict[str, list[int]] = defaultdict(list)
        for kind, correct in rows:
            by_kind[kind].append(correct)
        mastery = {s: sum(g) / len(g) for s, g in self.recent_grades(learner).items()}
        return {"learner": learner, "reviews": len(rows), "correct": sum(c for _, c in rows),
                "accuracy": round(sum(c for _, c in rows) / len(rows), 3) if rows else None,
                "by_kind": {k: {"reviews": len(v), "correct": sum(v)} for k, v in sorted(by_kind.items())},
                "cards": len(self.schedule(learner)), "due_now": len(self.due(learner, at)),
                "mastery": dict(sorted(mastery.items()))}

    def history(self, learner: str) -> list[dict]:
        cols = ("exercise_id", "source", "kind", "at", "correct", "rating", "grader", "answer", "seed")
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM reviews WHERE learner = ? ORDER BY at, id", (learner,))
        return [dict(zip(cols, r, strict=True)) for r in rows]

    # ---------------------------------------------------------------- export

    def export_csv(self, learner: str, path: Path) -> int:
        """Every review of the learner as CSV; returns how many rows were written."""
        rows = self.history(learner)
        write_atomic(Path(path), lambda tmp: _with_open(tmp, lambda f: _csv_rows(f, rows)))
        return len(rows)

    def export_anki(self, learner: str, exercises: dict[str, Exercise], path: Path) -> int:
        """The learner's cards in Anki's text import format (front, back, tags; math as MathJax)."""
        cards = [exercises[i] for i in self.schedule(learner) if i in exercises and exercises[i].kind != "numeric"]

        def write(f) -> None:
            f.write("#separator:tab\n#html:true\n#tags column:3\n")
            for e in cards:
                back = f"{_mathjax(e.solution)}<br><i>{e.cite}</i>"
                f.write(f"{_cell(_mathjax(e.prompt))}\t{_cell(back)}\tmathrag {e.slug} {e.kind}\n")

        write_atomic(Path(path), lambda tmp: _with_open(tmp, write))
        return len(cards)


def _with_open(path: Path, write) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        write(f)


def _csv_rows(f, rows: list[dict]) -> None:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["exercise_id"])
    writer.writeheader()
    writer.writerows(rows)


def _mathjax(text: str) -> str:
    """$$...$$ -> \\[...\\] and $...$ -> \\(...\\): how Anki writes MathJax."""
    text = re.sub(r"\$\$(.+?)\$\$", lambda m: r"\[" + m.group(1).strip() + r"\]", text, flags=re.S)
    return re.sub(r"\$([^$]+)\$", lambda m: r"\(" + m.group(1) + r"\)", text)


def _cell(text: str) -> str:
    return text.replace("\t", " ").replace("\r", "").replace("\n", "<br>")
