"""Chunking: Markdown-aware, never cuts math, code or tables, stable ids."""

import re

import pytest

from rag.chunking import DEFAULT_CHUNK_SIZE, chunk_corpus, chunk_note, markdown_blocks
from rag.corpus import load_corpus, parse_note
from rag.settings import REPO_ROOT


@pytest.fixture(scope="module")
def notes():
    return load_corpus()


@pytest.fixture(scope="module")
def chunks(notes):
    return chunk_corpus(notes)


def test_every_note_is_chunked_with_metadata(notes, chunks):
    assert {c.source for c in chunks} == {n.source for n in notes}
    by_source = {n.source: n for n in notes}
    for c in chunks:
        note = by_source[c.source]
        assert c.title == note.title and c.area == note.area and c.tags == note.tags
        assert c.heading.split(" > ")[0] == note.title
        assert c.chunk_id.startswith(c.source + "#")
        assert c.text.strip()


def test_chunk_ids_are_unique_and_stable(notes, chunks):
    ids = [c.chunk_id for c in chunks]
    assert len(ids) == len(set(ids))
    assert len({c.vector_id for c in chunks}) == len(chunks)
    assert [c.chunk_id for c in chunk_corpus(notes)] == ids


def test_math_code_and_tables_are_never_cut(chunks):
    for c in chunks:
        assert c.text.count("$$") % 2 == 0, f"{c.chunk_id} cuts a $$ block"
        fences = [line for line in c.text.splitlines() if re.match(r"^\s*```", line)]
        assert len(fences) % 2 == 0, f"{c.chunk_id} cuts a code fence"


def test_tables_stay_whole(notes):
    with_tables = [n for n in notes if re.search(r"^\|.*\|\s*$", n.body, re.M)]
    assert with_tables, "the corpus has tables; this test needs one"
    for note in with_tables:
        tables = re.findall(r"(?:^\|.*\n)+", note.body, re.M)
        texts = [c.text for c in chunk_note(note)]
        for table in tables:
            assert any(table.strip() in t for t in texts), f"a table of {note.source} was split"


def test_chunks_respect_the_size_bound_except_atomic_blocks(chunks):
    for c in chunks:
        if len(c.text) > DEFAULT_CHUNK_SIZE:
            # Only a single atomic block (math, code, table) may exceed the bound.
            blocks = markdown_blocks(c.text)
            assert len(blocks) == 1 and blocks[0][1], f"{c.chunk_id} is {len(c.text)} chars"


def test_see_also_is_not_indexed(chunks):
    assert not any("See also" in c.heading for c in chunks)


def test_heading_path_and_summary_chunk():
    note = parse_note(REPO_ROOT / "corpus/neural_networks/activation_functions.md")
    chunks = chunk_note(note)
    assert chunks[0].chunk_id.endswith("#summary:0") and chunks[0].text == note.summary
    tanh = [c for c in chunks if c.heading.endswith("> Tanh")]
    assert tanh and tanh[0].heading == f"{note.title} > Definition and derivation > Tanh"
    assert "1-\\tanh^{2}(x)" in tanh[0].text


def test_blocks_keep_display_math_code_and_tables_atomic():
    text = ("Intro line.\n\n$$\na = b\n\nstill math? no\n$$\n\n```python\nx = 1\n\ny = 2\n```\n\n"
            "| a | b |\n|---|---|\n| 1 | 2 |\nAfter.")
    blocks = markdown_blocks(text)
    kinds = [(b.split("\n")[0], atomic) for b, atomic in blocks]
    assert kinds[0] == ("Intro line.", False)
    assert blocks[2][0].startswith("```python") and blocks[2][0].endswith("```") and blocks[2][1]
    assert blocks[3][0].startswith("| a | b |") and blocks[3][1]
    assert blocks[-1] == ("After.", False)
