"""Benchmark suite ``vault``: your own notes, a thousand of them, indexed from nothing.

A learner points mathrag at an Obsidian vault (``mathrag --corpus ~/vault chat``); how long until it answers?
This suite writes a seeded synthetic vault shaped like a real one and builds everything from an empty home,
with the progress bars a user sees:

- 1,000 notes (100 with ``--quick``) in ten subfolders, no front matter on most, a heading on nine in ten;
  paragraphs of real prose and math drawn from the project's notes; two to four ``[[wikilinks]]`` each (some
  ``[[note|alias]]``, one in fifty to a note that does not exist), an embedded attachment in one in a hundred,
  an ``.obsidian`` folder;
- stages timed: reading the folder and resolving the wikilinks, the index (chunking, embedding, FAISS, BM25),
  the knowledge graph (concepts, edges, communities);
- reference, measured in the same run: the same chunks embedded alone, with the same model and batch size. No
  index can be built faster than its chunks are embedded, so ``index vs raw encode`` (chunks/s over chunks/s)
  says what the rest of indexing costs on top.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import warnings
from pathlib import Path

from bench.framework import Ratio, headline, ratios, report, suite
from rag.settings import Settings

NOTES, QUICK_NOTES = 1000, 100
FOLDERS = 10
INDEX_VS_ENCODE = 0.5  # the same floor the rag suite holds the project's own notes to


def prose_pool() -> list[str]:
    """Sentences of the project's notes (prose and inline math, no code): the vault's text."""
    from rag.compose import prose_sentences
    from rag.corpus import load_corpus, strip_code

    pool = []
    for note in load_corpus():
        lines = [line for _, line in strip_code(note.body) if line.strip() and not line.lstrip().startswith(
            ("#", "$$", "|", "-", "*", "```", "!"))]
        pool += [s for s in prose_sentences(" ".join(lines)) if 40 <= len(s) <= 300 and "](" not in s]
    return pool


def synthetic_vault(folder: Path, n: int, pool: list[str], seed: int = 0) -> Path:
    """Write ``n`` seeded notes shaped like an Obsidian vault's under ``folder``; returns it."""
    rng = random.Random(seed)
    names = [f"Idea {i:04d} {rng.choice(pool).split()[0].strip('$,.:;').title()}" for i in range(n)]
    (folder / ".obsidian").mkdir(parents=True, exist_ok=True)
    (folder / ".obsidian" / "app.json").write_text(json.dumps({"legacyEditor": False}))
    (folder / "attachments").mkdir(exist_ok=True)
    for i, name in enumerate(names):
        links = [f"[[{rng.choice(names)}]]" for _ in range(rng.randint(2, 4))]
        if i % 25 == 0:
            links[0] = f"[[{rng.choice(names)}|this idea]]"
        if i % 50 == 0:
            links.append("[[An idea never written]]")
        paragraphs = [" ".join(rng.sample(pool, rng.randint(2, 4))) for _ in range(rng.randint(3, 6))]
        for link in links:
            p = rng.randrange(len(paragraphs))
            paragraphs[p] += f" See {link}."
        if i % 100 == 0:
            (folder / "attachments" / f"figure-{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n")
            paragraphs.append(f"![[figure-{i}.png]]")
        head = f"# {name}\n\n" if i % 10 else ""
        front = "---\ntags: [synthetic]\n---\n" if i % 5 == 0 else ""
        path = folder / f"Area {i % FOLDERS}" / f"{name}.md"
        path.parent.mkdir(exist_ok=True)
        path.write_text(front + head + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return folder


@suite("vault")
def bench_vault(settings: Settings, quick: bool = False) -> dict:
    from graphrag.store import build_and_save
    from rag.corpus import load_corpus
    from rag.index import update_index
    from rag.models import load_embedder

    n = QUICK_NOTES if quick else NOTES
    with tempfile.TemporaryDirectory() as tmp:
        vault = synthetic_vault(Path(tmp) / "vault", n, prose_pool())
        private = Settings(home=Path(tmp) / "home", corpus_dir=vault, embedder=settings.embedder)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always")
            start = time.perf_counter()
            notes = load_corpus(vault)
            read_s = time.perf_counter() - start
            start = time.perf_counter()
            index, _ = update_index(private, progress=True)
            index_s = time.perf_counter() - start
        start = time.perf_counter()
        data, _ = build_and_save(index, private, progress=True)
        graph_s = time.perf_counter() - start
        texts = [c.text for c in index.chunks]
        start = time.perf_counter()
        load_embedder(private).encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
        encode_s = time.perf_counter() - start
    links = sum(1 for _, _, k in data.graph.edges(keys=True) if k == "links_to")
    missing = sum("links to no note" in str(w.message) for w in said)
    return {"notes": len(notes), "chunks": len(texts), "read_s": read_s, "index_s": index_s, "graph_s": graph_s,
            "total_s": read_s + index_s + graph_s, "encode_s": encode_s, "links_to_edges": links,
            "missing_links_warned": missing, "notes_per_s": len(notes) / (read_s + index_s + graph_s),
            "index_vs_encode": (len(texts) / index_s) / (len(texts) / encode_s), "quick": quick}


@report("vault")
def markdown(r: dict) -> list[str]:
    return ["## vault", "",
            f"A synthetic Obsidian-style vault of {r['notes']:,} notes ({r['chunks']:,} chunks, "
            f"{r['links_to_edges']:,} wikilink edges, {r['missing_links_warned']} links to missing notes warned), "
            "indexed from nothing:", "",
            "| stage | time |", "|---|---|",
            f"| read the folder, resolve the wikilinks | {r['read_s']:.1f} s |",
            f"| index: chunk, embed, FAISS, BM25 | {r['index_s']:.1f} s |",
            f"| knowledge graph | {r['graph_s']:.1f} s |",
            f"| **from nothing to answerable** | **{r['total_s']:.1f} s** ({r['notes_per_s']:.1f} notes/s) |", "",
            f"Index build vs the same chunks embedded alone ({r['encode_s']:.1f} s): {r['index_vs_encode']:.2f}x "
            f"the raw encoder's chunks/s (target >= {INDEX_VS_ENCODE}x)."]


@headline("vault")
def _headline(r: dict) -> list[tuple[str, str, str]]:
    return [(f"a {r['notes']:,}-note vault from nothing to answerable", f"{r['total_s']:.0f} s "
             f"(index {r['index_vs_encode']:.2f}x raw encode)", f">= {INDEX_VS_ENCODE}x")]


@ratios("vault")
def _ratios(r: dict) -> list[Ratio]:
    return [Ratio("vault index build vs raw encode", r["index_vs_encode"], INDEX_VS_ENCODE, True,
                  f"{r['chunks'] / r['index_s']:.0f} vs {r['chunks'] / r['encode_s']:.0f} chunks/s")]
