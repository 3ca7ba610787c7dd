"""The "Practice" tab: exercises from the notes, answered in the browser, graded, scheduled, steered by the graph.

Pick a note (or "What's due"), answer with math that renders as you type, see the verdict, which grader judged,
and the solution with its citation; "Study next" says which prerequisite to work on and why, and the charts show
progress and the mastery map. Progress is the same SQLite store the CLI uses (``MATHRAG_HOME/practice.sqlite3``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from graphrag.study import mastery_figure, prerequisite_digraph, study_next
from rag.corpus import Note
from rag.practice.exercises import ExerciseBook, build_exercises
from rag.practice.progress import BadLearner, Progress, practice_db
from rag.practice.quiz import UnknownExercise, encode_texts, grade, instance, pick
from rag.settings import Settings

DUE = "__due__"
ROUND = 10  # exercises in one round
KIND_HELP = {"formula": "LaTeX or plain math: `s*(1-s), s = sigma(x)`, `\\frac{e^{-x}}{(1+e^{-x})^2}`",
             "numeric": "a number: `0.1875`, `3/16`", "cloze": "the missing word or words",
             "next-step": "the letter of the option", "why": "the reason, in a sentence"}


@dataclass
class PracticeDesk:
    """What the tab needs: the exercises (built once), the progress store, the prerequisite graph."""

    notes: list[Note]
    settings: Settings
    _book: ExerciseBook | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def book(self) -> ExerciseBook:
        with self._lock:
            if self._book is None:
                self._book = build_exercises(self.notes)
            return self._book

    @property
    def db(self) -> Path:
        return practice_db(self.settings)

    def note_choices(self) -> list[tuple[str, str]]:
        return [("What's due", DUE), *sorted((n.title, n.slug) for n in self.notes)]

    def start(self, learner: str, note: str):
        """A new round: (queue, current id, the first exercise shown, cleared verdict and answer)."""
        try:
            with Progress(self.db) as progress:
                chosen = pick(self.book, progress, progress.learner(learner),
                              note=None if note in (None, "", DUE) else note, count=ROUND)
        except (BadLearner, ValueError) as exc:
            return [], "", f"**{exc}**", "", ""
        if not chosen:
            return [], "", "Nothing is due. Pick a note to practise.", "", ""
        ids = [e.id for e in chosen]
        return ids[1:], ids[0], self.show(ids[0]), "", ""

    def show(self, exercise_id: str) -> str:
        ex = instance(self.book, exercise_id)
        return (f"**{ex.kind}** · {ex.cite} · <small>`{ex.id}`</small>\n\n{ex.prompt}\n\n"
                f"<small>Answer with {KIND_HELP[ex.kind]}.</small>")

    def answer(self, learner: str, exercise_id: str, answer: str):
        """(verdict, study next, progress chart, mastery map) after an answer."""
        return (self.check(learner, exercise_id, answer), *self.progress_view(learner))

    def check(self, learner: str, exercise_id: str, answer: str) -> str:
        if not exercise_id:
            return "Start a round first: pick a note and press **Start**."
        try:
            ex = instance(self.book, exercise_id)
        except UnknownExercise as exc:
            return f"**{exc}**"
        verdict = grade(ex, answer, encode_texts if ex.kind == "why" else None)
        if not verdict.judged:
            return f"**Not graded.** {verdict.message}"
        with Progress(self.db) as progress:
            review = progress.review(learner, ex, verdict, answer, seed=ex.seed)
        mark = "**Right**" if verdict.correct else "**Not right**"
        return (f"{mark} (graded by {verdict.grader}). {verdict.message}\n\n**Solution.** {ex.solution}\n\n"
                f"<small>From *{ex.cite}* (`{ex.source}`). Next review: {review.due:%Y-%m-%d %H:%M} UTC.</small>")

    def next(self, queue: list[str]):
        if not queue:
            return [], "", "Round done. Press **Start** for another, or look at *Study next*.", "", ""
        return queue[1:], queue[0], self.show(queue[0]), "", ""

    def progress_view(self, learner: str):
        """(study next, progress chart, mastery map) for the learner."""
        with Progress(self.db) as progress:
            grades = progress.recent_grades(learner)
            history = progress.history(learner)
        graph = prerequisite_digraph(self.notes)
        suggestions = study_next(graph, grades)
        text = ("**Study next**\n\n" + "\n".join(f"- {s.reason}" for s in suggestions) if suggestions
                else "**Study next**: nothing looks weak yet; keep practising.")
        return text, progress_figure(history), mastery_figure(graph, grades)


def preview(answer: str) -> str:
    """The answer as it will be read: math rendered (words are shown as they are)."""
    text = answer.strip()
    if not text:
        return ""
    if re.fullmatch(r"[A-Za-z ,.'-]+", text) and len(text.split()) <= 12 and not re.search(r"\b[a-z]\b", text):
        return text
    return f"$${text}$$" if "$" not in text else text


def progress_figure(history: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    right = [0]
    for row in history:
        right.append(right[-1] + row["correct"])
    ax.plot(range(len(right)), range(len(right)), color="#bbbbbb", label="answered")
    ax.plot(range(len(right)), right, color="#3aa55d", label="right")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("answers")
    ax.set_ylabel("count")
    ax.set_title("Progress")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def practice_tab(desk: PracticeDesk, learner: gr.Textbox) -> None:
    """Build the tab and wire it (inside a ``gr.Tabs``); ``learner`` is the app's learner box, above the tabs."""
    with gr.Tab("Practice", id="practice"):
        with gr.Row():
            note = gr.Dropdown(desk.note_choices(), value=DUE, label="Practise", scale=3, elem_id="practice-note")
            start = gr.Button("Start", variant="primary", scale=1, elem_id="practice-start")
        queue, current = gr.State([]), gr.State("")
        prompt = gr.Markdown(latex_delimiters=_latex(), elem_id="practice-prompt")
        answer = gr.Textbox(label="Your answer (Enter checks it)", lines=1, max_lines=4, elem_id="practice-answer")
        shown = gr.Markdown(latex_delimiters=_latex(), elem_id="practice-preview")
        with gr.Row():
            check = gr.Button("Check", variant="primary", elem_id="practice-check")
            nxt = gr.Button("Next", elem_id="practice-next")
        verdict = gr.Markdown(latex_delimiters=_latex(), elem_id="practice-verdict")
        study = gr.Markdown(elem_id="practice-study")
        with gr.Row():
            chart, mastery = gr.Plot(label="Progress"), gr.Plot(label="Mastery map")
    views = [study, chart, mastery]
    start.click(desk.start, [learner, note], [queue, current, prompt, verdict, answer], api_visibility="private")
    answer.change(preview, answer, shown, queue=False, api_visibility="private")
    for event in (check.click, answer.submit):
        event(desk.answer, [learner, current, answer], [verdict, *views], api_visibility="private")
    nxt.click(desk.next, queue, [queue, current, prompt, verdict, answer], api_visibility="private")
    learner.submit(desk.progress_view, learner, views, api_visibility="private")


def _latex() -> list[dict]:
    return [{"left": "$$", "right": "$$", "display": True}, {"left": "$", "right": "$", "display": False}]
