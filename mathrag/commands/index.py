"""``mathrag index``: build or update the search index, and the knowledge graph built on it."""

from __future__ import annotations

import argparse
import json

from mathrag.commands.graph import graph_summary
from mathrag.commands.options import add_json
from rag.settings import INDEX_KINDS


def cmd_index(args: argparse.Namespace) -> int:
    from graphrag.store import ensure_graph
    from rag.corpus import load_corpus
    from rag.figures import ensure_drawn
    from rag.index import update_index
    from rag.settings import get_settings

    index, report = update_index(rebuild=args.rebuild, kind=args.kind, progress=not args.json)
    also = [graph_summary(*ensure_graph(index, rebuild=args.rebuild, progress=not args.json))]  # the graph follows
    settings = get_settings()  # ... and the notes' figures (only those whose code changed are drawn again)
    try:
        rows, errors = ensure_drawn(load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent),
                                    settings.home, progress=not args.json)
        also.append(f"{len(rows)} figures in {settings.home / 'figures'}"
                    + "".join(f"; {file} failed: {error}" for file, error in errors.items()))
    except OSError as exc:  # a read-only home still serves its stored index; the figures wait
        also.append(f"figures not drawn: {exc.strerror or exc} ({settings.home / 'figures'})")
    if args.json:
        print(json.dumps({**report.__dict__, "chunks": len(index), "kind": index.kind,
                          "path": str(index.path), "also": also}, indent=2))
    else:
        print(report.summary())
        print(f"{len(index)} chunks, {index.kind} FAISS index at {index.path}")
        for line in also:
            print(line)
    return 0


def register(sub) -> None:
    p = sub.add_parser("index", help="build or update the search index (only changed notes are re-embedded)",
                       description="Build the FAISS + BM25 index over the notes, or bring it up to date; the "
                                   "knowledge graph and the notes' figures follow it.")
    p.add_argument("--rebuild", action="store_true", help="re-embed every note instead of only changed ones")
    p.add_argument("--kind", default="auto", choices=INDEX_KINDS,
                   help="FAISS index type (default: auto = exact below 20,000 chunks)")
    add_json(p, "what was done")
    p.set_defaults(func=cmd_index)
