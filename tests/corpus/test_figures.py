"""The notes' figures: every block draws, a changed block is drawn again, a failing one is named, and the
plotting code and the references stay out of what is retrieved."""

from pathlib import Path

from rag.chunking import chunk_note
from rag.corpus import load_corpus, parse_note
from rag.figures import ensure_drawn, load_manifest, note_figures
from tests.corpus.test_validation import write_note

PNG = b"\x89PNG\r\n\x1a\n"


def test_every_figure_block_of_the_corpus_draws():
    # Into the session's private home: the app's engine draws the same figures there, so each block runs
    # once per test session (a PNG exists only if its block ran without error in this session's fresh home).
    from rag.settings import get_settings

    notes = load_corpus()
    figures = [f for note in notes for f in note_figures(note)]
    assert {f.source for f in figures} == {n.source for n in notes}, "a note without a figure"
    home = get_settings().home
    rows, errors = ensure_drawn(notes, home)
    assert not errors, "\n".join(f"{file}: {error}" for file, error in errors.items())
    assert len(rows) == len(figures)
    for f in figures:
        data = (home / "figures" / f.file).read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000, f"{f.source}:{f.line} drew an empty picture"


def test_figures_are_drawn_once_redrawn_when_changed_and_failures_named(tmp_path):
    path = write_note(tmp_path / "notes")
    home = tmp_path / "home"
    rows, errors = ensure_drawn([parse_note(path, root=tmp_path)], home)
    assert not errors and len(rows) == 1
    (row,) = rows
    assert row["section"] == "Intuition" and row["caption"] == "The parabola x squared and its tangent at x = 3."
    first = home / "figures" / row["file"]
    stamp = first.stat().st_mtime_ns
    assert ensure_drawn([parse_note(path, root=tmp_path)], home)[0] == rows
    assert first.stat().st_mtime_ns == stamp, "an unchanged figure was drawn again"

    text = path.read_text(encoding="utf-8").replace('label="tangent at 3"', 'label="the tangent"')
    text = text.replace("## Worked example\n", "## Worked example\n\n```python figure\n# A figure whose code is"
                        " wrong.\nimport numpy as np\nnp.undefined_name()\n```\n\n")
    path.write_text(text, encoding="utf-8")
    rows, errors = ensure_drawn([parse_note(path, root=tmp_path)], home)
    assert len(rows) == 1 and rows[0]["file"] != row["file"], "the changed figure kept its old file"
    assert not first.exists(), "the stale picture was kept"
    (error,) = errors.values()
    assert "AttributeError" in error and "line" in error
    assert load_manifest(home) == rows


def test_plotting_code_and_references_are_not_retrieved():
    note = parse_note(Path("corpus/linear_algebra/svd.md"))
    assert note.figure_blocks
    text = "\n".join(c.text for c in chunk_note(note))
    assert "plt.subplots" not in text and "python figure" not in text
    assert "Eckart" in text
    assert not any(c.heading.endswith("References") for c in chunk_note(note))
