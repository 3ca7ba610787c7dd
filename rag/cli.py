"""The ``mathrag`` command line.

Subcommands are added as the capabilities land; each has ``--help``, and the
ones that report take ``--json``. Errors the user can fix are printed as one
line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter
from importlib.metadata import entry_points
from pathlib import Path

from rag import __version__, scratch_cli
from rag import corpus as corpus_mod
from rag.models import ModelNotFound, embedding_model_dir, generator_gguf_path
from rag.plugins import after_index_hooks, all_modes, load_retriever
from rag.settings import INDEX_KINDS, MODES, get_settings


class UserError(Exception):
    """A problem with the user's input or setup, reported as one line."""


def cmd_notes(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.paths:
        missing = [p for p in args.paths if not Path(p).is_file()]
        if missing:
            raise UserError(f"no such note: {missing[0]}")
    if args.check:
        return corpus_mod.main([str(p) for p in args.paths])
    paths = [Path(p) for p in args.paths] or corpus_mod.note_paths(settings.corpus_dir)
    notes, errors = [], []
    for path in paths:
        try:
            notes.append(corpus_mod.parse_note(path))
        except corpus_mod.NoteError as exc:
            errors.append(str(exc))
    if args.json:
        rows = [
            {"slug": n.slug, "area": n.area, "title": n.title, "source": n.source, "words": n.word_count,
             "prerequisites": n.prerequisites, "summary": n.summary}
            for n in notes
        ]
        print(json.dumps({"notes": rows, "errors": errors}, indent=2))
    else:
        for note in notes:
            print(f"{note.source:<60} {note.title}")
        areas = Counter(n.area for n in notes)
        print(f"\n{len(notes)} notes in {len(areas)} areas: " + ", ".join(f"{a} {c}" for a, c in sorted(areas.items())))
        for err in errors:
            print(f"skipped: {err}", file=sys.stderr)
    return 1 if errors else 0


def cmd_info(args: argparse.Namespace) -> int:
    settings = get_settings()

    def locate(fn) -> str:
        try:
            return str(fn())
        except ModelNotFound as exc:
            return f"missing ({exc})"

    info = {
        "version": __version__,
        "home": str(settings.home),
        "corpus_dir": str(settings.corpus_dir),
        "notes": len(corpus_mod.note_paths(settings.corpus_dir)),
        "embedding_model": locate(embedding_model_dir),
        "generator_gguf": locate(generator_gguf_path),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from rag.index import update_index

    index, report = update_index(rebuild=args.rebuild, kind=args.kind, progress=not args.json)
    # what is built on the index (the knowledge graph) follows it
    also = [hook(index, rebuild=args.rebuild, progress=not args.json) for hook in after_index_hooks()]
    if args.json:
        print(json.dumps({**report.__dict__, "chunks": len(index), "kind": index.kind,
                          "path": str(index.path), "also": also}, indent=2))
    else:
        print(report.summary())
        print(f"{len(index)} chunks, {index.kind} FAISS index at {index.path}")
        for line in also:
            print(line)
    return 0


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
        print(getattr(retriever, "last_message", "") or "no matching chunks")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from rag.answering import stream_answer

    final = None
    shown = 0
    retriever = load_retriever([args.mode], progress=not args.json)
    for final in stream_answer(args.question, retriever=retriever, k=args.k, mode=args.mode, generator=args.generator,
                               max_new_tokens=args.max_new_tokens, temperature=args.temperature):
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
    streamed = final.text if not shown else None
    if shown and (final.fallback or (final.support or {}).get("checked", 0) != (final.support or {}).get(
            "supported", 0)):  # the support check changed what streamed: show the checked answer
        print("\nChecked answer:")
        streamed = final.text
    if streamed is not None:
        print(streamed)
    if final.support and final.covered:
        print(f"\nSupport: {final.support['summary']}")
    if final.citations:
        print("\nSources:")
        for c in final.citations:
            print(f"  [{c.number}] {c.title} > {c.heading.split(' > ', 1)[-1]}  ({c.source})")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rag.answering import DEFAULT_GENERATOR
    from rag.evaluation import run_eval

    modes = tuple(args.mode) if args.mode else None  # None: every mode, eval_modes()
    summary = run_eval(generators=tuple(args.generator or [DEFAULT_GENERATOR]), limit=args.limit, modes=modes,
                       progress=not args.json)
    if args.json:
        slim = {**summary, "retrieval": {m: {k: v for k, v in r.items() if k != "misses@5"}
                                         for m, r in summary["retrieval"].items()},
                "answers": [{k: v for k, v in a.items() if k not in ("examples", "gold_misses")}
                            for a in summary["answers"]]}
        print(json.dumps(slim, indent=2))
    else:
        from rag.evaluation import markdown_report

        print(markdown_report(summary))
        print("written: " + ", ".join(summary["files"]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from rag.bench import markdown, rewrite_report, run_bench

    if args.stored:
        if args.suite or args.quick:
            raise ValueError("--stored runs nothing: leave out --suite and --quick")
        summary = rewrite_report()
    else:
        # With --json, stdout carries the JSON alone: what the suites print (servers starting, ...) goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            summary = run_bench(suites=args.suite, quick=args.quick, generator=args.generator)
    if args.update_readme:
        from rag.bench import headline_table, update_readme
        from rag.settings import REPO_ROOT, get_settings

        reports = get_settings().reports_dir
        summary["files"] += [str(f) for f in update_readme(REPO_ROOT / "README.md", headline_table(reports), reports)]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(markdown(summary))
        print("written: " + ", ".join(summary["files"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathrag",
        description="Chat with math-for-ML notes offline, and open every layer underneath.",
    )
    parser.add_argument("--version", action="version", version=f"mathrag {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("notes", help="list the notes, or validate them and run their checks",
                       description="List the notes of the corpus, or validate them (--check).")
    p.add_argument("paths", nargs="*", help="note files (default: the whole corpus)")
    p.add_argument("--check", action="store_true", help="validate front matter, sections, math and links; run checks")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_notes)

    p = sub.add_parser("index", help="build or update the search index (only changed notes are re-embedded)",
                       description="Build the FAISS + BM25 index over the notes, or bring it up to date.")
    p.add_argument("--rebuild", action="store_true", help="re-embed every note instead of only changed ones")
    p.add_argument("--kind", default="auto", choices=INDEX_KINDS,
                   help="FAISS index type (default: auto = exact below 20,000 chunks)")
    p.add_argument("--json", action="store_true", help="print what was done as JSON")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search the notes and print the best chunks",
                       description="Search the notes (dense, BM25 or hybrid) and print the best chunks.")
    p.add_argument("query", help="what to look for")
    p.add_argument("--k", type=int, default=5, help="how many chunks (default 5)")
    p.add_argument("--mode", default="hybrid", choices=all_modes(MODES), help="retrieval mode (default hybrid)")
    p.add_argument("--mmr", action="store_true", help="diversify the results (maximal marginal relevance)")
    p.add_argument("--spread", action="store_true", help="let notes take turns in the results (vector modes; the "
                                                         "graph modes always do)")
    p.add_argument("--json", action="store_true", help="print the hits as JSON")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("ask", help="answer a question from the notes, with citations",
                       description="Answer a question from the notes; the answer streams and cites its sources.")
    p.add_argument("question", help="the question")
    p.add_argument("--k", type=int, default=5, help="how many chunks to give the model (default 5)")
    p.add_argument("--mode", default="hybrid", choices=all_modes(MODES), help="retrieval mode (default hybrid)")
    p.add_argument("--generator", default="composed",
                   help="composed (default: the notes' own sentences, composed to answer), smollm2, "
                        "smollm2+lora:<adapter>, scratch, extractive, hf:<model dir>, openai:<base_url>#<model>")
    p.add_argument("--max-new-tokens", type=int, default=256, help="answer length limit in tokens (default 256)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 for greedy decoding (default)")
    p.add_argument("--json", action="store_true", help="print one JSON object with answer, citations and hits")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("eval", help="measure retrieval and answers on the development questions",
                       description="Recall@k, MRR, nDCG per retrieval mode; for answers, gold-statement recall, "
                                   "supported sentences, direct openings, refusals, replacements and latency. "
                                   "Writes JSON, Markdown and a PNG under "
                                   "MATHRAG_HOME/reports/.")
    p.add_argument("--generator", action="append", help="generator(s) to evaluate answers with "
                   "(repeatable; default composed)")
    p.add_argument("--limit", type=int, default=None, help="answer only this many questions per generator")
    p.add_argument("--mode", action="append", choices=[*all_modes(MODES), "hybrid+spread"],
                   help="retrieval mode(s) to measure (repeatable; default: all)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="benchmarks, as ratios against references measured in the same run",
                       description="Run benchmark suites and write a Markdown report with plots under "
                                   "MATHRAG_HOME/reports/.")
    p.add_argument("--suite", action="append", help="run only this suite (repeatable; default: all)")
    p.add_argument("--quick", action="store_true", help="a reduced run that finishes in a few minutes")
    p.add_argument("--generator", default="smollm2", help="generator to time (default smollm2)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--stored", action="store_true", help="run nothing: write the report again from the latest "
                   "stored run of each suite (with --update-readme: refresh the README from them)")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's headline table from the "
                   "latest run of each suite")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("info", help="show versions, paths and the embedded models",
                       description="Show where the project reads and writes, and whether the models are installed.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_info)
    scratch_cli.register(sub)

    # Commands of the packages built on rag (the chat app, the graph, fine-tuning) plug in through entry
    # points, so this module never imports them (imports point one way: app -> graphrag -> rag).
    for entry in sorted(entry_points(group="mathrag.commands"), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from rag.generators import GeneratorError
    from rag.text import QuestionError

    try:
        return args.func(args)
    except (UserError, QuestionError, GeneratorError, ModelNotFound, ValueError) as exc:
        print(f"mathrag: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmathrag: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (e.g. `mathrag ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
