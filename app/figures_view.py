"""The notes' figures in the app: in place in the Notes tab, and under an answer that cites their section.

The figures are drawn by :mod:`rag.figures` into ``MATHRAG_HOME/figures/``; the server lets the browser read
that one folder (``allowed_paths``) and nothing else. A figure belongs to the section its block sits in: an
answer that cites that section (its H2, and its H3 where the figure has one) shows the figure, collapsed.
An answer that cites a note's "In short" definitions shows the figure of its Intuition, the picture of the
idea as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path

from rag.chunking import IN_SHORT
from rag.corpus import Note
from rag.figures import figures_dir

MAX_ANSWER_FIGURES = 2


def figure_url(home: Path, file: str) -> str:
    return f"/gradio_api/file={(figures_dir(home) / file).resolve()}"


def figure_markdown(home: Path, row: dict) -> str:
    """The picture as Markdown. Its alt text is plain words: brackets in a caption ("A = [[3, 0], [4, 5]]")
    would end the image syntax early."""
    alt = re.sub(r"[\[\]()]", " ", row["caption"]).strip()
    return f"![{alt}]({figure_url(home, row['file'])})"


def note_with_figures(note: Note, rows: list[dict], home: Path, escape) -> str:
    """The note's body as Markdown (``escape`` applied to the prose), each figure block replaced by its
    picture, its caption and, folded away, the code that draws it; an exercise block is said and folded away."""
    drawn = {(r["source"], r["line"]): r for r in rows}
    blocks = {b.line - note.body_line: b for b in note.figure_blocks}  # by the body line of the opening fence
    exercises = {b.line - note.body_line: b for b in note.exercise_blocks}
    lines, out, i = note.body.splitlines(), [], 0
    while i < len(lines):
        block = blocks.get(i)
        if i in exercises:  # the numbers of a practice exercise: said, and the code folded away
            code = exercises[i].code.rstrip("\n")
            caption = escape(code.splitlines()[0].lstrip("# "))
            out.append(f"*Exercise: {caption} Practise it in the Practice tab.*\n\n<details><summary>The code "
                       f"that makes it</summary>\n\n```python\n{code}\n```\n\n</details>")
            i += code.count("\n") + 3
            continue
        if block is None:
            out.append(escape(lines[i]))
            i += 1
            continue
        row = drawn.get((note.source, block.line))
        caption = escape(row["caption"]) if row else "a figure that is not drawn yet"
        picture = f"{figure_markdown(home, row)}\n\n" if row else ""
        code = block.code.rstrip("\n")
        out.append(f"{picture}*Figure: {caption}*\n\n<details><summary>The code that draws it</summary>\n\n"
                   f"```python\n{code}\n```\n\n</details>")
        i += block.code.count("\n") + 2  # the opening fence, the code, the closing fence
    return "\n".join(out) + "\n"


def figures_for_answer(citations, rows: list[dict]) -> list[dict]:
    """The figures (manifest rows) of the sections the answer cites, at most MAX_ANSWER_FIGURES, in citation
    order."""
    shown: list[dict] = []
    for c in citations:
        parts = c.heading.split(" > ")[1:]
        section, sub = (parts + ["", ""])[:2]
        if section == IN_SHORT:
            section, sub = "Intuition", ""
        for row in rows:
            if row["source"] == c.source and row["section"] == section and row["subsection"] in ("", sub) \
                    and row not in shown:
                shown.append(row)
    return shown[:MAX_ANSWER_FIGURES]
