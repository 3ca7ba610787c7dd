"""The ``mathrag`` command line: one parser, one subcommand per module of :mod:`mathrag.commands`.

Each subcommand has ``--help``, and the ones that report take ``--json``. Errors
the user can fix are printed as one line on stderr with exit status 2, never as
a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mathrag.commands import (
    ask,
    bench,
    chat,
    evaluate,
    finetune,
    graph,
    index,
    mcp,
    notes,
    practice,
    scratch,
    search,
    serve,
)
from rag import __version__
from rag.models import ModelNotFound

# In the order ``mathrag --help`` lists them: the notes, search and answers, measurement, the layers underneath.
REGISTER = (notes.register, index.register, search.register, ask.register, evaluate.register, bench.register,
            notes.register_info, scratch.register, chat.register, finetune.register, graph.register,
            practice.register, mcp.register, serve.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mathrag",
        description="Chat with math-for-ML notes offline, and open every layer underneath.",
    )
    parser.add_argument("--version", action="version", version=f"mathrag {__version__}")
    parser.add_argument("--corpus", metavar="DIR",
                        help="read the notes from this folder (any Markdown folder, an Obsidian vault too) instead "
                             "of the project's corpus/; the same as setting MATHRAG_CORPUS")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in REGISTER:
        register(sub)
    return parser


def use_corpus(folder: str) -> None:
    """Point this run at another notes folder (``--corpus``): every command reads ``MATHRAG_CORPUS``."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        raise ValueError(f"--corpus {folder}: no such folder")
    os.environ["MATHRAG_CORPUS"] = str(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from rag.generators import GeneratorError
    from rag.text import QuestionError

    try:
        if args.corpus:
            use_corpus(args.corpus)
        return args.func(args)
    except (QuestionError, GeneratorError, ModelNotFound, ValueError) as exc:
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
