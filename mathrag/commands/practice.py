"""``mathrag practice``: exercises from the notes, graded here, scheduled by spaced repetition.

    mathrag practice quiz --note chain_rule        # new and due exercises of a note, with their ids
    mathrag practice grade ID "s*(1-s), s = sigma(x)"
    mathrag practice due | stats | export csv out.csv | export anki out.txt | exercises

Progress is kept per learner (``--learner``, default ``$MATHRAG_LEARNER`` or ``me``) in
``MATHRAG_HOME/practice.sqlite3``. ``quiz --reveal`` prints the solutions too (for teachers, and tests).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from pathlib import Path


def _book():
    from rag.practice.exercises import build_exercises

    return build_exercises()


def _progress():
    from rag.practice.progress import Progress

    return Progress.open()


def _shown(ex, reveal: bool) -> dict:
    out = {"id": ex.id, "kind": ex.kind, "note": ex.source, "prompt": ex.prompt, "cite": ex.cite}
    if ex.kind == "next-step":
        out["choices"] = ex.choices
    if reveal:
        out.update(solution=ex.solution, answer=ex.answer)
    return out


def cmd_quiz(args: argparse.Namespace) -> int:
    from rag.practice.quiz import pick

    book = _book()
    with _progress() as progress:
        learner = progress.learner(args.learner)
        chosen = pick(book, progress, learner, note=args.note, count=args.count)
    shown = [_shown(ex, args.reveal) for ex in chosen]
    if args.json:
        print(json.dumps(shown, indent=2, ensure_ascii=False))
        return 0
    if not shown:
        print("Nothing is due. Start a note with: mathrag practice quiz --note NOTE")
    for n, ex in enumerate(shown, 1):
        print(f"[{n}] {ex['kind']} · {ex['cite']}\n    id: {ex['id']}\n\n{ex['prompt']}\n")
        if args.reveal:
            print(f"    answer: {ex['answer']}\n    solution: {ex['solution']}\n")
    if shown:
        print('Answer with: mathrag practice grade ID "ANSWER"')
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from rag.practice.quiz import encode_texts, grade, instance

    book = _book()
    ex = instance(book, args.id)
    verdict = grade(ex, args.answer, encode_texts if ex.kind == "why" else None)
    with _progress() as progress:
        review = progress.review(args.learner, ex, verdict, args.answer, seed=ex.seed)
    out = {"id": ex.id, "correct": verdict.correct, "grader": verdict.grader, "message": verdict.message,
           "solution": ex.solution, "cite": ex.cite, "due": review.due.isoformat() if review else None}
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    mark = {True: "right", False: "wrong", None: "not graded"}[verdict.correct]
    print(f"{mark} ({verdict.grader}): {verdict.message}")
    print(f"\nSolution: {ex.solution}\n  from {ex.cite} ({ex.source})")
    if review:
        print(f"\nNext review: {review.due:%Y-%m-%d %H:%M} UTC")
    return 0 if verdict.judged else 2


def cmd_due(args: argparse.Namespace) -> int:
    with _progress() as progress:
        due = progress.due(args.learner)
    if args.json:
        print(json.dumps([{"id": i, "due": d.isoformat()} for i, d in due], indent=2))
        return 0
    print(f"{len(due)} exercise(s) due for {args.learner}")
    for i, d in due:
        print(f"  {i}  (due {d:%Y-%m-%d %H:%M} UTC)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _progress() as progress:
        stats = progress.stats(args.learner)
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    acc = "-" if stats["accuracy"] is None else f"{stats['accuracy']:.0%}"
    print(f"{stats['learner']}: {stats['reviews']} answers, {stats['correct']} right ({acc}); "
          f"{stats['cards']} cards, {stats['due_now']} due now")
    for kind, k in stats["by_kind"].items():
        print(f"  {kind:10s} {k['correct']}/{k['reviews']}")
    for source, m in stats["mastery"].items():
        print(f"  {m:4.0%}  {source}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    with _progress() as progress:
        if args.format == "csv":
            n = progress.export_csv(args.learner, Path(args.out))
        else:
            n = progress.export_anki(args.learner, _book().exercises, Path(args.out))
    print(f"wrote {n} {'reviews' if args.format == 'csv' else 'cards'} to {args.out}")
    return 0


def cmd_exercises(args: argparse.Namespace) -> int:
    book = _book()
    found = book.of_note(args.note) if args.note else list(book.exercises.values())
    kinds = Counter(e.kind for e in found)
    per_note = Counter(e.source for e in found)
    if args.json:
        print(json.dumps({"exercises": len(found), "notes": len(per_note), "by_kind": dict(kinds),
                          "list": [_shown(e, False) for e in found] if args.note else None}, indent=2))
        return 0
    print(f"{len(found)} exercises in {len(per_note)} notes: " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    if args.note:
        for e in found:
            print(f"  {e.id:45s} {e.prompt.splitlines()[0][:70]}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Measure the exercise generator; write MATHRAG_HOME/reports/practice_check.{json,md}."""
    from rag.artifacts import write_atomic
    from rag.practice.check import evaluate, report_markdown
    from rag.settings import get_settings

    result = evaluate()
    reports = get_settings().reports_dir
    for name, text in (("practice_check.json", json.dumps(result, indent=2)),
                       ("practice_check.md", report_markdown(result))):
        write_atomic(reports / name, text)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report_markdown(result))
    return 0 if result["solutions_graded_right"] == 1.0 else 1


def register(sub) -> None:
    p = sub.add_parser("practice", help="exercises from the notes, graded, scheduled by spaced repetition",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--learner", default=os.environ.get("MATHRAG_LEARNER", "me"),
                   help="whose progress (default $MATHRAG_LEARNER or 'me')")
    actions = p.add_subparsers(dest="practice_command", metavar="ACTION", required=True)
    q = actions.add_parser("quiz", help="exercises to answer now: due ones, then new ones of --note")
    q.add_argument("--note", help="a note's slug or path, e.g. chain_rule")
    q.add_argument("--count", type=int, default=5, help="how many (default 5)")
    q.add_argument("--reveal", action="store_true", help="print the answers and solutions too")
    q.add_argument("--json", action="store_true", help="print as JSON")
    q.set_defaults(func=cmd_quiz)
    g = actions.add_parser("grade", help="grade an answer, record it, and show the solution")
    g.add_argument("id", help="the exercise id that quiz printed")
    g.add_argument("answer", help="your answer: LaTeX or plain math, a number, words, or a letter")
    g.add_argument("--json", action="store_true", help="print as JSON")
    g.set_defaults(func=cmd_grade)
    for name, func, text in (("due", cmd_due, "exercises due for review"),
                             ("stats", cmd_stats, "answers, accuracy, mastery per note")):
        a = actions.add_parser(name, help=text)
        a.add_argument("--json", action="store_true", help="print as JSON")
        a.set_defaults(func=func)
    e = actions.add_parser("export", help="write progress as CSV (reviews) or Anki text (cards)")
    e.add_argument("format", choices=["csv", "anki"])
    e.add_argument("out", help="output file")
    e.set_defaults(func=cmd_export)
    c = actions.add_parser("check", help="measure the exercise generator (solutions right, wrong answers wrong)")
    c.add_argument("--json", action="store_true", help="print as JSON")
    c.set_defaults(func=cmd_check)
    x = actions.add_parser("exercises", help="how many exercises of each kind there are (or one note's)")
    x.add_argument("--note", help="a note's slug or path")
    x.add_argument("--json", action="store_true", help="print as JSON")
    x.set_defaults(func=cmd_exercises)
