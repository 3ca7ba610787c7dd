"""The Notes tab's Markdown: figure and exercise blocks replaced in place, the prose around them intact."""

from pathlib import Path

from app.figures_view import note_with_figures
from rag.corpus import load_corpus


def test_an_exercise_block_is_said_and_folded_away():
    note = next(n for n in load_corpus() if n.slug == "activation_functions")
    md = note_with_figures(note, [], Path("/nowhere"), lambda text: text)
    assert "```python exercise" not in md and "```python figure" not in md
    said = md.index("*Exercise: The sigmoid's slope at a fresh point")
    folded = md.index("<details><summary>The code that makes it</summary>", said)
    assert md.index("def exercise(rng):", folded) < md.index("</details>", folded)
    assert md.index("## How it is used in ML") > folded  # the next section follows, whole
    assert md.count("\n## ") == note.body.count("\n## ")
