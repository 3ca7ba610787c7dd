"""The vault suite on a small synthetic vault: every note read, its wikilinks resolved, the report written."""

import warnings

from bench.vault_suite import _ratios, markdown, prose_pool, synthetic_vault
from rag.corpus import load_corpus


def test_a_synthetic_vault_is_seeded_and_reads_like_a_real_one(tmp_path):
    pool = prose_pool()
    assert len(pool) > 500 and not any("```" in s for s in pool)
    a = synthetic_vault(tmp_path / "a", 60, pool)
    b = synthetic_vault(tmp_path / "b", 60, pool)
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*.md"))
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*.md")) and len(files) == 60
    assert all((a / f).read_text() == (b / f).read_text() for f in files)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        notes = load_corpus(a)
    assert len(notes) == 60 and len({n.slug for n in notes}) == 60
    assert sum("links to no note" in str(w.message) for w in said) == 2  # notes 0 and 50
    assert any("not read: 2" in str(w.message) for w in said)  # .obsidian/ and the attachment of note 0
    assert all("[[" not in n.body and n.summary for n in notes)


def test_the_report_and_the_ratio(tmp_path):
    result = {"notes": 1000, "chunks": 3000, "read_s": 1.0, "index_s": 60.0, "graph_s": 20.0, "total_s": 81.0,
              "encode_s": 45.0, "links_to_edges": 2900, "missing_links_warned": 20, "notes_per_s": 12.3,
              "index_vs_encode": 0.75}
    text = "\n".join(markdown(result))
    assert "| **from nothing to answerable** | **81.0 s** (12.3 notes/s) |" in text and "2,900 wikilink edges" in text
    (bar,) = _ratios(result)
    assert bar.value == 0.75 and bar.meets
