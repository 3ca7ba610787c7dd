"""``mathrag notes`` (list the notes, or validate them and run their checks) and ``mathrag info``."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from mathrag.commands.options import add_json
from rag import __version__
from rag import corpus as corpus_mod
from rag import figures as figures_mod
from rag.models import ModelNotFound, embedding_model_dir, generator_gguf_path
from rag.settings import get_settings


def cmd_notes(args: argparse.Namespace) -> int:
    settings = get_settings()
    missing = [p for p in args.paths if not Path(p).is_file()]
    if missing:
        raise ValueError(f"no such note: {missing[0]}")
    if args.check:  # the rules and the check blocks, then every figure block (drawn into a folder thrown away)
        failed = corpus_mod.main([str(p) for p in args.paths])
        return figures_mod.main([str(p) for p in args.paths]) or failed
    if args.figures:  # the whole corpus: the manifest lists every note's figures
        if args.paths:
            raise ValueError("--figures draws every note's figures; give no note paths (--check draws some)")
        notes = corpus_mod.load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
        rows, errors = figures_mod.ensure_drawn(notes, settings.home, progress=True)
        print(f"{len(rows)} figures in {figures_mod.figures_dir(settings.home)}")
        for file, error in errors.items():
            print(f"FAIL {file}: {error}")
        return 1 if errors else 0
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


def register(sub) -> None:
    p = sub.add_parser("notes", help="list the notes, or validate them and run their checks",
                       description="List the notes of the corpus, or validate them (--check).")
    p.add_argument("paths", nargs="*", help="note files (default: the whole corpus)")
    p.add_argument("--check", action="store_true",
                   help="validate front matter, sections, math and links; run the checks and the figure blocks")
    p.add_argument("--figures", action="store_true",
                   help="draw every note's figures into MATHRAG_HOME/figures (only changed ones again)")
    add_json(p, "the list")
    p.set_defaults(func=cmd_notes)


def register_info(sub) -> None:
    p = sub.add_parser("info", help="show versions, paths and the embedded models",
                       description="Show where the project reads and writes, and whether the models are installed.")
    add_json(p, "it")
    p.set_defaults(func=cmd_info)
