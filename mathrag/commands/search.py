"""``mathrag search``: the best chunks for a query, in any retrieval mode."""

from __future__ import annotations

import argparse
import json

from mathrag.commands.options import add_json, add_search
from mathrag.retrievers import load_retriever


def cmd_search(args: argparse.Namespace) -> int:
    retriever = load_retriever([args.mode], progress=not args.json)
    options = {"mmr": args.mmr, "spread": True} if args.spread else {"mmr": args.mmr}
    hits = retriever.search(args.query, k=args.k, mode=args.mode, **options)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return 0
    for i, hit in enumerate(hits, start=1):
        print(f"[{i}] {hit.score:.4f}  {hit.source}  ({hit.heading})")
        preview = " ".join(hit.text.split())
        print(f"    {preview[:200]}{'...' if len(preview) > 200 else ''}")
    if not hits:
        print(hits.message or "no matching chunks")
    return 0


def register(sub) -> None:
    p = sub.add_parser("search", help="search the notes and print the best chunks",
                       description="Search the notes (dense, BM25, hybrid or through the knowledge graph) and "
                                   "print the best chunks.")
    p.add_argument("query", help="what to look for")
    add_search(p, "how many chunks")
    p.add_argument("--mmr", action="store_true", help="diversify the results (maximal marginal relevance)")
    p.add_argument("--spread", action="store_true", help="let notes take turns in the results (vector modes; the "
                                                         "graph modes always do)")
    add_json(p, "the hits")
    p.set_defaults(func=cmd_search)
