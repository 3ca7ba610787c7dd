"""Read and validate the math notes under ``corpus/``.

A note is a Markdown file ``corpus/<area>/<slug>.md`` that starts with YAML
front matter. This module turns each file into a :class:`Note`, and checks the
rules every note must follow (front matter schema, section layout, balanced
math delimiters, resolvable links, an executable ``python check`` block).

Everything downstream (chunking, the index, the knowledge graph, fine-tuning
data) reads notes through :func:`load_corpus`, so a note that breaks the rules
is reported here once, with its path, instead of failing somewhere deep inside.

Any folder of ordinary Markdown notes (an Obsidian vault) is read too: what front matter would say is taken
from the note itself, and ``[[wikilinks]]`` become links (:mod:`rag.vault`); the rules above are the project's
own notes' rules, checked by :func:`validate_note`, not conditions for being read.

Run ``python -m rag.corpus [paths...]`` to validate notes from the shell.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import yaml

from rag import vault

AREAS = (  # in the order a learner meets them (the graph's colours and learning paths follow it)
    "discrete_math",
    "linear_algebra",
    "calculus",
    "probability_statistics",
    "optimization",
    "information_theory",
    "classical_ml",
    "neural_networks",
    "transformers_genai",
    "generative_models",
    "reinforcement_learning",
    "ml_systems",
)

# The H2 sections every note has, in this order (other H2s may sit between).
REQUIRED_SECTIONS = (
    "Intuition",
    "Definition and derivation",
    "Worked example",
    "How it is used in ML",
    "Pitfalls and failure modes",
    "Numerical check",
    "See also",
    "References",
)
# Sections a figure may not sit in: the check, the links and the sources are not ideas to draw.
NO_FIGURE_SECTIONS = {"Numerical check", "See also", "References"}

REQUIRED_KEYS = ("title", "area", "tags", "prerequisites", "related_code", "summary", "definition")
OPTIONAL_KEYS = ("aliases", "definitions")
MIN_WORDS, MAX_WORDS = 400, 1500
MAX_NOTE_BYTES = 1_000_000  # a note is one concept; a file this large is a mistake (or not a note)
# Modules a check block may import: numpy and a few pure-Python helpers.
CHECK_IMPORTS = {"numpy", "math", "itertools", "functools", "collections", "fractions"}
FIGURE_IMPORTS = CHECK_IMPORTS | {"matplotlib", "mpl_toolkits"}  # ... and a figure block, matplotlib too

SLUG_RE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
FENCE_RE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
LINK_RE = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
HEADING_RE = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


class NoteError(ValueError):
    """A note that cannot be read at all; the message names the file."""


@dataclass
class CodeBlock:
    info: str  # the fence's info string, e.g. "python check"
    code: str
    line: int  # 1-based line of the opening fence, counted in the whole file


@dataclass
class Note:
    slug: str
    area: str
    title: str
    tags: list[str]
    prerequisites: list[str]
    related_code: list[str]
    summary: str
    aliases: list[str]
    body: str  # Markdown after the front matter
    path: Path  # absolute path on disk
    source: str  # path relative to the repository root, e.g. corpus/calculus/gradient.md
    body_line: int = 1  # line of the file where the body starts
    definition: str = ""  # one sentence a teacher would say to "What is <title>?", with its formula
    definitions: dict[str, str] = field(default_factory=dict)  # the same for other concepts the note defines
    meta: dict = field(default_factory=dict)

    @property
    def check_blocks(self) -> list[CodeBlock]:
        return [b for b in code_blocks(self.body, self.body_line) if b.info.split()[:2] == ["python", "check"]]

    @property
    def figure_blocks(self) -> list[CodeBlock]:
        return [b for b in code_blocks(self.body, self.body_line) if b.info.split()[:2] == ["python", "figure"]]

    @property
    def exercise_blocks(self) -> list[CodeBlock]:
        return [b for b in code_blocks(self.body, self.body_line) if b.info.split()[:2] == ["python", "exercise"]]

    @property
    def word_count(self) -> int:
        """Words of prose outside code, not counting the list of references."""
        return prose_word_count(self.body.split("\n## References", 1)[0])

    def section_at(self, line: int) -> tuple[str, str]:
        """(H2, H3) headings of the section that holds file line ``line`` ("" where there is none)."""
        h2 = h3 = ""
        for i, text in strip_code(self.body):
            if self.body_line + i - 1 > line:
                break
            m = HEADING_RE.match(text)
            if m and len(m.group(1)) == 2:
                h2, h3 = m.group(2), ""
            elif m and len(m.group(1)) == 3:
                h3 = m.group(2)
        return h2, h3


# --------------------------------------------------------------------------- parsing


def repo_root() -> Path:
    """The repository root: the folder that holds ``corpus/``."""
    return Path(__file__).resolve().parent.parent


def default_corpus_dir() -> Path:
    from rag.settings import get_settings

    return get_settings().corpus_dir


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def parse_note(path: Path, root: Path | None = None) -> Note:
    """Parse one note file; raise :class:`NoteError` naming the file if it cannot be read."""
    root = root or repo_root()
    source = _relative(path, root)
    lines = _read_note_text(path, source).splitlines()
    meta, end = _front_matter(lines, source)
    body = "\n".join(lines[end + 1 :]) + "\n"
    return Note(  # what front matter does not say is read from the note itself (rag.vault: any Markdown folder)
        slug=path.stem if SLUG_RE.match(path.stem) else vault.slug_of(path.stem),
        area=str(meta.get("area") or path.parent.name),  # corpus/<area>/<slug>.md (a vault: rag.vault)
        title=vault.title_of(body, meta, path.stem),
        tags=_str_list(meta, "tags", source),
        prerequisites=_str_list(meta, "prerequisites", source),
        related_code=_str_list(meta, "related_code", source),
        summary=str(meta.get("summary") or "").strip() or vault.summary_of(body),
        aliases=_str_list(meta, "aliases", source),
        definition=str(meta.get("definition") or "").strip(),
        definitions=_definitions(meta.get("definitions"), source),
        body=body,
        path=path.resolve(),
        source=source,
        body_line=end + 2,
        meta=meta,
    )


def _read_note_text(path: Path, source: str) -> str:
    """The note file's text, refusing files too large, unreadable, not UTF-8 or binary."""
    try:
        size = path.stat().st_size
        if size > MAX_NOTE_BYTES:
            raise NoteError(f"{source}: {size / 1e6:.1f} MB is larger than a note may be "
                            f"({MAX_NOTE_BYTES / 1e6:.0f} MB); split it into notes of one concept each")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NoteError(f"{source}: not valid UTF-8 text") from None
    except OSError as exc:
        raise NoteError(f"{source}: cannot read ({exc.strerror})") from None
    if "\x00" in text:
        raise NoteError(f"{source}: looks like a binary file (it contains NUL bytes), not a Markdown note")
    return text


def _front_matter(lines: list[str], source: str) -> tuple[dict, int]:
    """The YAML front matter as a mapping, and the index of the line that closes it ({} and -1 when the file has
    none: an ordinary Markdown note)."""
    if not lines or lines[0].strip() != "---":
        return {}, -1
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise NoteError(f"{source}: front matter is not closed by a '---' line") from None
    try:
        meta = yaml.safe_load("\n".join(lines[1:end])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # The mark counts from the first YAML line (0-based), which is line 2 of the file.
        where = f" at line {mark.line + 2}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise NoteError(f"{source}: invalid YAML in front matter{where}: {problem}") from None
    if not isinstance(meta, dict):
        raise NoteError(f"{source}: front matter must be a mapping of keys to values")
    return meta, end


def _str_list(meta: dict, key: str, source: str) -> list[str]:
    """A front-matter value that is a list of strings (a single string counts as a list of one)."""
    value = meta.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NoteError(f"{source}: front matter '{key}' must be a list of strings")
    return [v.strip() for v in value]


def _definitions(value: object, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise NoteError(f"{source}: front matter 'definitions' must map each term to one sentence")
    return {k.strip(): v.strip() for k, v in value.items()}


def definition_problem(sentence: str) -> str | None:
    """Why a front-matter definition is not one sentence with inline math, or None."""
    if not sentence or "\n" in sentence or not sentence.endswith(".") or sentence.count("$") % 2 or "$$" in sentence:
        return "must be one sentence ending with a period, with inline math only"
    if len(sentence) > 400:
        return f"is {len(sentence)} characters; say it in one sentence of at most 400"
    return None


def note_paths(corpus_dir: Path | None = None) -> list[Path]:
    """The Markdown files of the folder and its subfolders, hidden folders and README.md left out."""
    return vault.scan(corpus_dir or default_corpus_dir())[0]


def load_corpus(corpus_dir: Path | None = None, root: Path | None = None) -> list[Note]:
    """Parse every note; a note that cannot be parsed is skipped with a warning naming it.

    Skipped as well, each with its warning: a symbolic link that points outside the corpus
    folder (nothing outside ``corpus/`` is indexed or shown), a file over ``MAX_NOTE_BYTES``,
    and a binary file.
    """
    corpus_dir = corpus_dir or default_corpus_dir()
    root = root or corpus_dir.parent
    notes = []
    inside = corpus_dir.resolve()
    paths, left_out = vault.scan(corpus_dir)
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" and {len(left_out) - 5} more" if len(left_out) > 5 else "")
        warnings.warn(f"not read: {len(left_out)} hidden folder(s) or file(s) that are not Markdown notes "
                      f"({shown})", stacklevel=2)
    for path in paths:
        if not path.resolve().is_relative_to(inside):
            name = Path(os.path.relpath(path, root)).as_posix()
            warnings.warn(f"skipping note: {name}: a link to {path.resolve()}, outside {corpus_dir}", stacklevel=2)
            continue
        try:
            notes.append(parse_note(path, root))
        except NoteError as exc:
            warnings.warn(f"skipping note: {exc}", stacklevel=2)
    return vault.resolve_wikilinks(vault.unique_slugs(vault.folder_areas(notes, corpus_dir)))


# --------------------------------------------------------------------------- Markdown helpers


def code_blocks(body: str, first_line: int = 1) -> list[CodeBlock]:
    """Fenced code blocks of a Markdown text, with their info strings."""
    blocks, fence, info, start, buf = [], None, "", 0, []
    for i, line in enumerate(body.splitlines()):
        m = FENCE_RE.match(line)
        if fence is None:
            if m:
                fence, info, start, buf = m.group(1), m.group(2).strip(), i, []
        elif m and m.group(1).startswith(fence[0]) and len(m.group(1)) >= len(fence) and not m.group(2).strip():
            blocks.append(CodeBlock(info=info, code="\n".join(buf) + "\n", line=first_line + start))
            fence = None
        else:
            buf.append(line)
    return blocks


def strip_code(body: str) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, numbered from 1, with inline code blanked out."""
    out, fence = [], None
    for i, line in enumerate(body.splitlines(), start=1):
        m = FENCE_RE.match(line)
        if fence is None and m:
            fence = m.group(1)
            continue
        if fence is not None:
            if m and m.group(1).startswith(fence[0]) and not m.group(2).strip():
                fence = None
            continue
        out.append((i, re.sub(r"`[^`]*`", "", line)))
    return out


def prose_word_count(body: str) -> int:
    return sum(len(line.split()) for _, line in strip_code(body))


def headings(body: str) -> list[tuple[int, str]]:
    """(level, text) of every ATX heading outside code blocks."""
    result = []
    for _, line in strip_code(body):
        m = HEADING_RE.match(line)
        if m:
            result.append((len(m.group(1)), m.group(2)))
    return result


def math_problems(body: str, first_line: int = 1) -> list[str]:
    """Unbalanced ``$``/``$$`` delimiters and code fences that cut through display math."""
    problems = []
    in_display: int | None = None  # line where the open $$ block started
    fence: str | None = None
    paragraph_dollars, paragraph_start = 0, None

    def at(i: int) -> int:  # body line -> file line
        return first_line + i - 1

    def close_paragraph() -> None:
        nonlocal paragraph_dollars, paragraph_start
        if paragraph_dollars % 2:
            problems.append(f"line {at(paragraph_start)}: unbalanced inline '$' in this paragraph")
        paragraph_dollars, paragraph_start = 0, None

    for i, line in enumerate(body.splitlines(), start=1):
        m = FENCE_RE.match(line)
        if fence is not None:
            if m and m.group(1).startswith(fence[0]) and not m.group(2).strip():
                fence = None
            continue
        if m:
            if in_display is not None:
                problems.append(f"line {at(i)}: code fence inside display math opened at line {at(in_display)}")
            close_paragraph()
            fence = m.group(1)
            continue
        if not line.strip():
            if in_display is not None:
                problems.append(f"line {at(i)}: blank line inside display math opened at line {at(in_display)}")
            close_paragraph()
            continue
        text = re.sub(r"`[^`]*`", "", line).replace("\\$", "")
        for j, part in enumerate(text.split("$$")):
            if j > 0:
                in_display = None if in_display is not None else i
            if in_display is None:
                if paragraph_start is None:
                    paragraph_start = i
                paragraph_dollars += part.count("$")
    close_paragraph()
    if in_display is not None:
        problems.append(f"line {at(in_display)}: '$$' is never closed")
    if fence is not None:
        problems.append("a code fence is never closed")
    return problems


def links(body: str) -> list[str]:
    """Targets of Markdown links outside code."""
    return [m.group(2) for _, line in strip_code(body) for m in LINK_RE.finditer(line)]


# --------------------------------------------------------------------------- validation


def check_imports(code: str, allowed_modules: set[str] = CHECK_IMPORTS) -> list[str]:
    """Modules imported by a check (or figure) block that are not allowed (numpy and a few stdlib ones)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"syntax error at line {exc.lineno}: {exc.msg}"]
    bad = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        allowed = ", ".join(sorted(allowed_modules))
        bad += [f"imports '{n}' (allowed: {allowed})" for n in names if n.split(".")[0] not in allowed_modules]
    return bad


def validate_note(note: Note, root: Path | None = None) -> list[str]:
    """Every rule a single note breaks, as short messages (empty when the note is fine)."""
    root = root or repo_root()
    problems = _front_matter_problems(note, root)
    problems += _layout_problems(note)
    words = note.word_count
    if not MIN_WORDS <= words <= MAX_WORDS:
        problems.append(f"{words} words of prose; a note has {MIN_WORDS} to {MAX_WORDS}")
    problems += math_problems(note.body, note.body_line)
    problems += _link_problems(note)
    problems += _check_block_problems(note)
    problems += figure_block_problems(note)
    problems += exercise_block_problems(note)
    problems += _references_problems(note)
    return problems


def _front_matter_problems(note: Note, root: Path) -> list[str]:
    """The rules the front matter breaks: its keys, area, tags, summary, definitions and references."""
    problems = []
    meta = note.meta
    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(f"front matter is missing '{key}'")
    for key in meta:
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            problems.append(f"front matter has unknown key '{key}'")
    if not SLUG_RE.match(note.path.stem):
        problems.append(f"file name '{note.path.stem}' is not a snake_case slug")
    if note.area not in AREAS:
        problems.append(f"area '{note.area}' is not one of {', '.join(AREAS)}")
    elif note.path.parent.name != note.area:
        problems.append(f"area '{note.area}' does not match its folder '{note.path.parent.name}'")
    if not note.tags:
        problems.append("'tags' is empty")
    if not note.summary or "\n" in note.summary or not note.summary.endswith("."):
        problems.append("'summary' must be one sentence ending with a period")
    if "definition" in meta and (why := definition_problem(note.definition)):
        problems.append(f"'definition' {why}")
    for term, sentence in note.definitions.items():
        if why := definition_problem(sentence):
            problems.append(f"'definitions' of '{term}' {why}")
    if note.slug in note.prerequisites:
        problems.append("lists itself as a prerequisite")
    for rel in note.related_code:
        if not (root / rel).exists():
            problems.append(f"related_code path '{rel}' does not exist")
    return problems


def _layout_problems(note: Note) -> list[str]:
    """The rules the headings break: one H1 equal to the title, and the required sections in order."""
    problems = []
    heads = headings(note.body)
    h1 = [text for level, text in heads if level == 1]
    if h1 != [note.title]:
        problems.append(f"the note must have exactly one H1 heading equal to its title '{note.title}' (found {h1})")
    h2 = [text for level, text in heads if level == 2]
    positions = []
    for name in REQUIRED_SECTIONS:
        if name not in h2:
            problems.append(f"missing section '## {name}'")
        else:
            positions.append(h2.index(name))
    if positions != sorted(positions):
        problems.append(f"sections must appear in this order: {', '.join(REQUIRED_SECTIONS)}")
    return problems


def _link_problems(note: Note) -> list[str]:
    """Relative links whose target file does not exist (URLs and in-page anchors are not checked)."""
    problems = []
    for target in links(note.body):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        if not (note.path.parent / target.split("#")[0]).resolve().exists():
            problems.append(f"link target '{target}' does not exist")
    return problems


def _check_block_problems(note: Note) -> list[str]:
    """The rules the ``python check`` block breaks: exactly one, allowed imports only, and it asserts."""
    problems = []
    checks = note.check_blocks
    if len(checks) != 1:
        problems.append(f"needs exactly one ```python check block (found {len(checks)})")
    for block in checks:
        problems += [f"check block: {p}" for p in check_imports(block.code)]
        if "assert" not in block.code:
            problems.append("check block asserts nothing")
    return problems


FIGURE_CAPTION = re.compile(r"^#\s*(\S.{9,})$")  # the block's first line: "# What the figure shows."


def figure_block_problems(note: Note) -> list[str]:
    """The rules the ``python figure`` blocks break: at least one, a caption comment first, allowed imports,
    no saving or showing (the runner saves the figure), and not in the check, the links or the sources."""
    figures = note.figure_blocks
    problems = [] if figures else ["needs at least one ```python figure block"]
    for block in figures:
        where = f"figure block at line {block.line}"
        if not FIGURE_CAPTION.match(block.code.splitlines()[0] if block.code.strip() else ""):
            problems.append(f"{where}: its first line must be a '# caption' comment of at least 10 characters")
        problems += [f"{where}: {p}" for p in check_imports(block.code, FIGURE_IMPORTS)]
        if re.search(r"\b(?:savefig|show)\s*\(", block.code):
            problems.append(f"{where}: calls savefig or show; the runner saves the current figure")
        if note.section_at(block.line)[0] in NO_FIGURE_SECTIONS:
            problems.append(f"{where}: sits in '{note.section_at(block.line)[0]}'; put it where its idea is taught")
    return problems


EXERCISE_DEF = re.compile(r"^def exercise\(rng\):", re.M)


def exercise_block_problems(note: Note) -> list[str]:
    """The rules a ``python exercise`` block breaks (a note has at most one): a caption comment first, allowed
    imports, a top-level ``def exercise(rng):``, and a place in the worked example it varies."""
    blocks = note.exercise_blocks
    problems = [] if len(blocks) <= 1 else [f"has {len(blocks)} ```python exercise blocks; at most one"]
    for block in blocks:
        where = f"exercise block at line {block.line}"
        if not FIGURE_CAPTION.match(block.code.splitlines()[0] if block.code.strip() else ""):
            problems.append(f"{where}: its first line must be a '# caption' comment of at least 10 characters")
        problems += [f"{where}: {p}" for p in check_imports(block.code)]
        if not EXERCISE_DEF.search(block.code):
            problems.append(f"{where}: defines no top-level 'def exercise(rng):'")
        if note.section_at(block.line)[0] != "Worked example":
            problems.append(f"{where}: sits in '{note.section_at(block.line)[0]}'; put it in 'Worked example'")
    return problems


def _references_problems(note: Note) -> list[str]:
    """The ``## References`` section must list at least one source (a bullet)."""
    body = note.body.split("\n## References", 1)
    if len(body) < 2:
        return []  # the missing section is a layout problem
    items = [line for line in body[1].splitlines()[1:] if line.startswith(("- ", "* ", "1. "))]
    return [] if items else ["'## References' lists no source (one bullet per source)"]


def corpus_problems(notes: list[Note]) -> list[str]:
    """Rules that span notes: unique slugs, prerequisites that resolve and form no cycle."""
    problems = []
    by_slug: dict[str, Note] = {}
    for note in notes:
        if note.slug in by_slug:
            problems.append(f"{note.source}: slug '{note.slug}' is also used by {by_slug[note.slug].source}")
        by_slug[note.slug] = note
    for note in notes:
        for pre in note.prerequisites:
            if pre not in by_slug:
                problems.append(f"{note.source}: prerequisite '{pre}' is not a note")
    graph = {n.slug: [p for p in n.prerequisites if p in by_slug] for n in notes}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        problems.append("prerequisites form a cycle: " + " -> ".join(exc.args[1]))
    return problems


def run_check(note: Note, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Execute the note's check block in a fresh Python process."""
    (block,) = note.check_blocks
    # Pad with blank lines so tracebacks point at the line number in the note file.
    code = "\n" * block.line + block.code
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, cwd=note.path.parent
    )


def main(argv: list[str] | None = None) -> int:
    """Validate the given notes (or the whole corpus) and run their checks."""
    args = argv if argv is not None else sys.argv[1:]
    paths = [Path(a) for a in args] or note_paths()
    failed = 0
    notes = []
    for path in paths:
        try:
            note = parse_note(path)
        except NoteError as exc:
            print(f"FAIL {exc}")
            failed += 1
            continue
        notes.append(note)
        problems = validate_note(note)
        if len(note.check_blocks) == 1:
            result = run_check(note)
            if result.returncode:
                tail = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
                problems.append(f"check block failed: {tail}")
        status = "FAIL" if problems else "ok  "
        failed += bool(problems)
        print(f"{status} {note.source} ({note.word_count} words)")
        for p in problems:
            print(f"     - {p}")
    if not args:
        for p in corpus_problems(notes):
            print(f"FAIL {p}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
