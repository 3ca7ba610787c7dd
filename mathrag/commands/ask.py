"""``mathrag ask``: answer a question from the notes; the answer streams, then its support and sources."""

from __future__ import annotations

import argparse
import json
import sys

from mathrag.commands.options import add_generation, add_json, add_search
from mathrag.retrievers import load_retriever
from rag.options import DEFAULT_GENERATOR, AskOptions


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answering import stream_answer

    options = AskOptions(k=args.k, mode=args.mode, generator=args.generator, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature)  # checked before the retriever loads
    if options.generator.startswith("smollm2+lora:"):
        from rag.generators import adapter_path

        adapter_path(options.generator)  # a missing adapter is said before anything loads
    final = None
    shown = 0
    retriever = load_retriever([options.mode], progress=not args.json)
    for final in stream_answer(args.question, options, retriever=retriever):
        if not args.json and not final.done:
            print(final.text[shown:], end="", flush=True)
            shown = len(final.text)
    assert final is not None
    if args.json:
        print(json.dumps(final.to_dict(), indent=2, ensure_ascii=False))
        return 0
    if shown:
        print()
    for notice in final.notices:
        print(f"note: {notice}", file=sys.stderr)
    support = final.support or {}
    if not shown:
        print(final.text)
    elif final.fallback or support.get("checked", 0) != support.get("supported", 0):
        print("\nChecked answer:")  # the support check changed what streamed: show the checked answer
        print(final.text)
    if final.support and final.covered:
        print(f"\nSupport: {final.support['summary']}")
    if final.citations:
        print("\nSources:")
        for c in final.citations:
            print(f"  [{c.number}] {c.title} > {c.heading.split(' > ', 1)[-1]}  ({c.source})")
    return 0


def register(sub) -> None:
    p = sub.add_parser("ask", help="answer a question from the notes, with citations",
                       description="Answer a question from the notes; the answer streams and cites its sources.")
    p.add_argument("question", help="the question")
    add_search(p, "how many chunks to give the model")
    p.add_argument("--generator", default=DEFAULT_GENERATOR,
                   help="composed (default: the notes' own sentences, composed to answer), smollm2, "
                        "smollm2+lora:<adapter>, scratch, extractive, hf:<model dir>, openai:<base_url>#<model>")
    add_generation(p)
    add_json(p, "one object with answer, citations and hits")
    p.set_defaults(func=cmd_ask)
