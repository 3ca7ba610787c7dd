"""``mathrag bench``: the benchmark suites, as ratios against references measured in the same run."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from mathrag.commands.options import add_json


def cmd_bench(args: argparse.Namespace) -> int:
    from bench.report import markdown
    from bench.run import rewrite_report, run_bench

    if args.stored:
        if args.suite or args.quick:
            raise ValueError("--stored runs nothing: leave out --suite and --quick")
        summary = rewrite_report()
    else:
        # With --json, stdout carries the JSON alone: what the suites print (servers starting, ...) goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            summary = run_bench(suites=args.suite, quick=args.quick, generator=args.generator)
    if args.update_readme:
        from bench.readme import headline_table, update_readme
        from rag.settings import REPO_ROOT, get_settings

        reports = get_settings().reports_dir
        summary["files"] += [str(f) for f in update_readme(REPO_ROOT / "README.md", headline_table(reports), reports)]
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(markdown(summary))
        print("written: " + ", ".join(summary["files"]))
    return 0


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks, as ratios against references measured in the same run",
                       description="Run benchmark suites and write a Markdown report with plots under "
                                   "MATHRAG_HOME/reports/.")
    p.add_argument("--suite", action="append", help="run only this suite (repeatable; default: all)")
    p.add_argument("--quick", action="store_true", help="a reduced run that finishes in a few minutes")
    p.add_argument("--generator", default="smollm2", help="generator to time (default smollm2)")
    add_json(p, "the summary")
    p.add_argument("--stored", action="store_true", help="run nothing: write the report again from the latest "
                   "stored run of each suite (with --update-readme: refresh the README from them)")
    p.add_argument("--update-readme", action="store_true", help="rewrite the README's headline table from the "
                   "latest run of each suite")
    p.set_defaults(func=cmd_bench)
