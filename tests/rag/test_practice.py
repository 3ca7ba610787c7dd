"""Practice: exercises from the real notes, graded by SymPy and the embedder, scheduled by fsrs in SQLite."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mathrag_cli import run_mathrag

from rag.practice.check import evaluate
from rag.practice.exercises import KINDS, build_exercises, slips
from rag.practice.grading import grade_choice, grade_cloze, grade_formula, grade_number
from rag.practice.progress import BadLearner, Progress, now_utc
from rag.practice.quiz import grade, instance, pick

SIGMOID_SLOPE = r"\sigma(x)\bigl(1-\sigma(x)\bigr)"


@pytest.fixture(scope="module")
def book():
    return build_exercises()


@pytest.mark.parametrize("answer", [r"\sigma(x)(1-\sigma(x))", "s(1-s) with s = sigma(x)", "s*(1-s), s = σ(x)",
                                    r"e^{-x}/(1+e^{-x})^2", r"\frac{e^{-x}}{(1+e^{-x})^{2}}",
                                    r"\sigma'(x) = \sigma(x) - \sigma(x)^2", "1/(4*cosh(x/2)^2)"])
def test_equivalent_forms_of_the_sigmoid_slope_grade_right(answer):
    verdict = grade_formula(answer, SIGMOID_SLOPE)
    assert verdict.correct is True, verdict
    assert verdict.grader in ("symbolic (SymPy)", "numeric spot-check")


@pytest.mark.parametrize("answer", [r"\sigma(x)(1+\sigma(x))", "sigma(x)^2", "e^{-x}/(1+e^{-x})", "s(1-s)"])
def test_wrong_forms_grade_wrong_and_say_where(answer):
    verdict = grade_formula(answer, SIGMOID_SLOPE)
    assert verdict.correct is False, verdict
    assert "at x =" in verdict.message or "uses s" in verdict.message


@pytest.mark.parametrize("answer,says", [("", "empty"), (r"\frac{1}{", "never closed"), ("(1+x", "brackets"),
                                         (r"\foo{x}", r"\foo"), (r"\sum_i x_i", r"\sum"),
                                         ("__import__('os').system('touch pwned')", "quote mark"),
                                         ("x.__class__", "may not start with '_'"), ("9^9^9^9", "too large")])
def test_unreadable_answers_get_a_message_not_a_verdict(answer, says):
    verdict = grade_formula(answer, SIGMOID_SLOPE)
    assert verdict.correct is None and not verdict.judged
    assert says in verdict.message


TOKENS = ["x", "s", "(", ")", "^", "*", "/", "+", "-", "=", ",", ".", "1", "0", "9", r"\frac", "{", "}", "_", "e",
          r"\sigma", "sigma", r"\sqrt", "log", "|", "'", r"\left(", r"\right)", " ", "pi", "^{", "with s =", "%",
          "[", "]", r"\cdot", r"\mathbf{", r"\tanh^2", "__", "import", "!"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=16).map("".join))
def test_any_text_gets_a_verdict_or_a_message_never_an_exception(text):
    for verdict in (grade_formula(text, SIGMOID_SLOPE), grade_number(text, 0.5, 0.01)):
        assert verdict.correct in (True, False, None) and verdict.message


def test_numbers_words_and_choices():
    for same in ("0.1875", "3/16", r"\frac{3}{16}", "18.75%", "1.875e-1"):
        assert grade_number(same, 0.1875, 6e-4).correct is True, same
    assert grade_number("0.19", 0.1875, 6e-4).correct is False
    assert grade_number("abc", 0.1875, 6e-4).correct is None
    assert grade_cloze("Logistic-Functions", ["sigmoid", "logistic function"]).correct is True
    assert grade_cloze("tanh", ["sigmoid"]).correct is False
    assert grade_cloze("  ", ["sigmoid"]).correct is None
    assert grade_choice("b", 1, 3).correct is True and grade_choice("2)", 1, 3).correct is True
    assert grade_choice("A", 1, 3).correct is False and grade_choice("Z", 1, 3).correct is None


def test_the_notes_give_enough_exercises_of_every_kind(book):
    exercises = list(book.exercises.values())
    assert len(exercises) >= 300
    assert {e.kind for e in exercises} == set(KINDS)
    kinds_per_note = {}
    for e in exercises:
        kinds_per_note.setdefault(e.source, set()).add(e.kind)
    assert len(kinds_per_note) == len(book.notes)
    assert sum(len(k) for k in kinds_per_note.values()) / len(book.notes) >= 3
    assert sum(e.kind == "numeric" for e in exercises) >= 40
    sigmoid = [e for e in book.of_note("activation_functions") if e.kind == "formula" and e.answer == SIGMOID_SLOPE]
    assert sigmoid and r"\sigma'(x) = \;?" in sigmoid[0].prompt


def test_a_slip_is_a_different_formula():
    assert slips(r"1-\tanh^{2}(x)") == [r"1+\tanh^{2}(x)", r"1-\tanh^{3}(x)"]


def test_every_solution_grades_right_and_wrong_answers_grade_wrong(book):
    result = evaluate(book)
    assert result["solutions_graded_right"] == 1.0, result["failures"][:5]
    assert result["wrong_graded_wrong"] >= 0.98, result["failures"][:5]
    assert set(result["by_kind"]) == set(KINDS)


def test_numeric_exercises_get_fresh_numbers_and_keep_them_by_id(book):
    ex = next(e for e in book.of_note("activation_functions") if e.kind == "numeric")
    a, b = instance(book, f"{ex.id}@1"), instance(book, f"{ex.id}@2")
    assert a.prompt != b.prompt and a.answer != b.answer
    again = instance(book, f"{ex.id}@1")
    assert again.prompt == a.prompt and grade(again, a.answer).correct is True


def test_the_schedule_moves_on_review_and_survives_a_restart(book, tmp_path):
    path = tmp_path / "practice.sqlite3"
    with Progress(path) as progress:
        chosen = pick(book, progress, "ada", note="chain_rule", count=4)
        assert len({e.kind for e in chosen}) >= 3
        right, wrong = chosen[0], chosen[1]
        r1 = progress.review("ada", right, grade(right, right.answer), right.answer)
        r2 = progress.review("ada", wrong, grade(wrong, "1") if wrong.kind != "why" else None, "1") \
            if wrong.kind != "why" else None
        assert r1.correct and r1.due > now_utc() - timedelta(seconds=1)
        assert progress.review("ada", right, grade_formula("", "x"), "") is None  # unreadable: no review
        before = progress.schedule("ada")
        later = progress.review("ada", right, grade(right, right.answer), right.answer,
                                at=r1.due + timedelta(minutes=1))
        assert later.due > r1.due  # a second right answer pushes it further out
    with Progress(path) as reopened:
        after = reopened.schedule("ada")
        assert after[right.id.split("@")[0]] == later.due
        assert set(before) == set(after)
        stats = reopened.stats("ada")
        assert stats["reviews"] == 2 + (r2 is not None)
        assert reopened.due("ada", at=later.due + timedelta(days=365))  # everything comes back eventually
    with pytest.raises(BadLearner):
        Progress(path).learner("x" * 41)


def test_a_killed_process_loses_no_review(tmp_path):
    """A writer killed with SIGKILL between reviews leaves a consistent database with every finished review."""
    path = tmp_path / "practice.sqlite3"
    code = f"""
import sys
from rag.practice.exercises import build_exercises
from rag.practice.progress import Progress
from rag.practice.grading import Verdict
book = build_exercises()
p = Progress(__import__("pathlib").Path({str(path)!r}))
for i, ex in enumerate(list(book.exercises.values())[:100000]):
    p.review("bo", ex, Verdict(i % 2 == 0, "test", ""), "x")
    if i == 20:
        print("twenty", flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "twenty"
    time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    reviews = db.execute("SELECT COUNT(*) FROM reviews").fetchone()[0]
    cards = db.execute("SELECT COUNT(*) FROM cards").fetchone()[0]
    assert reviews >= 21 and cards == reviews  # each card landed with its review, in one transaction


def test_export_csv_and_anki(book, tmp_path):
    with Progress(tmp_path / "p.sqlite3") as progress:
        for ex in pick(book, progress, "cy", note="svd", count=3):
            if ex.kind != "why":
                progress.review("cy", ex, grade(ex, ex.answer), ex.answer)
        n = progress.export_csv("cy", tmp_path / "out.csv")
        lines = (tmp_path / "out.csv").read_text().splitlines()
        assert n >= 2 and len(lines) == n + 1 and lines[0].startswith("exercise_id,source,kind")
        m = progress.export_anki("cy", book.exercises, tmp_path / "anki.txt")
        anki = (tmp_path / "anki.txt").read_text().splitlines()
        assert anki[:3] == ["#separator:tab", "#html:true", "#tags column:3"]
        assert len(anki) == 3 + m and all(line.count("\t") == 2 for line in anki[3:])
        assert "$" not in "".join(anki[3:])  # math is MathJax \( \) and \[ \], as Anki writes it


MATHRAG = os.path.join(os.path.dirname(sys.executable), "mathrag")


def test_practice_cli(tmp_path):
    env = {**os.environ, "MATHRAG_HOME": str(tmp_path)}

    def run(*args):
        return run_mathrag("practice", "--learner", "dee", *args, env=env)

    quiz = run("quiz", "--note", "activation_functions", "--count", "5", "--reveal", "--json")
    assert quiz.returncode == 0, quiz.stderr
    shown = json.loads(quiz.stdout)
    formula = next(e for e in shown if e["kind"] == "formula")
    numeric = next(e for e in shown if e["kind"] == "numeric")
    ok = run("grade", numeric["id"], numeric["answer"], "--json")
    assert json.loads(ok.stdout)["correct"] is True
    bad = run("grade", formula["id"], "x + 12345")
    assert bad.returncode == 0 and bad.stdout.startswith("wrong (numeric spot-check)")
    unread = run("grade", formula["id"], r"\frac{1}{")
    assert unread.returncode == 2 and unread.stdout.startswith("not graded")
    unknown = run("grade", "no_such_note:cloze:1", "x")
    assert unknown.returncode == 2 and "no exercise 'no_such_note:cloze:1'" in unknown.stderr
    stats = json.loads(run("stats", "--json").stdout)
    assert stats["reviews"] == 2 and stats["correct"] == 1
    assert run("export", "anki", str(tmp_path / "a.txt")).returncode == 0
    assert (tmp_path / "a.txt").read_text().startswith("#separator:tab")
