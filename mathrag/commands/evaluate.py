"""``mathrag eval``: retrieval per mode and answers per generator on the development questions."""

from __future__ import annotations

import argparse
import json

from graphrag.modes import GRAPH_MODES
from mathrag.commands.options import add_generation, add_json
from mathrag.retrievers import ALL_MODES, load_retriever
from rag.options import DEFAULT_GENERATOR, AskOptions
from rag.settings import MODES

EVAL_MODES = (*MODES, "hybrid+spread", *GRAPH_MODES)  # every mode, and hybrid with notes taking turns


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.evaluation import markdown_report, run_eval

    modes = tuple(args.mode or EVAL_MODES)
    options = AskOptions(k=args.k, mode=args.answer_mode, max_new_tokens=args.max_new_tokens,
                         temperature=args.temperature)  # checked before the retriever loads
    retriever = load_retriever((*modes, options.mode), progress=not args.json)
    summary = run_eval(generators=tuple(args.generator or [DEFAULT_GENERATOR]), options=options, limit=args.limit,
                       modes=modes, retriever=retriever, progress=not args.json)
    if args.json:
        slim = {**summary, "retrieval": {m: {k: v for k, v in r.items() if k != "misses@5"}
                                         for m, r in summary["retrieval"].items()},
                "answers": [{k: v for k, v in a.items() if k not in ("examples", "gold_misses")}
                            for a in summary["answers"]]}
        print(json.dumps(slim, indent=2))
    else:
        print(markdown_report(summary))
        print("written: " + ", ".join(summary["files"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="measure retrieval and answers on the development questions",
                       description="Recall@k, MRR, nDCG per retrieval mode; for answers, gold-statement recall, "
                                   "supported sentences, direct openings, refusals, replacements and latency. "
                                   "Writes JSON, Markdown and a PNG under MATHRAG_HOME/reports/.")
    p.add_argument("--generator", action="append", help="generator(s) to evaluate answers with "
                   "(repeatable; default composed)")
    p.add_argument("--limit", type=int, default=None, help="answer only this many questions per generator")
    p.add_argument("--k", type=int, default=5, help="chunks each answer is given (default 5)")
    p.add_argument("--answer-mode", default="hybrid", choices=ALL_MODES,
                   help="the retrieval mode answers are asked with (default hybrid)")
    add_generation(p)
    p.add_argument("--mode", action="append", choices=[*ALL_MODES, "hybrid+spread"],
                   help="retrieval mode(s) to measure (repeatable; default: all)")
    add_json(p, "the summary")
    p.set_defaults(func=cmd_eval)
