"""Your own notes: an ordinary Markdown folder, such as an Obsidian vault, read as a corpus.

The project's notes carry YAML front matter (title, area, summary, ...); a vault's usually carry none. Pointed at a
folder (``MATHRAG_CORPUS=~/vault`` or ``mathrag --corpus ~/vault ...``), mathrag reads every ``.md`` file in it and
its subfolders, and fills in what front matter would have said:

- the **title** is the front matter's, else the first heading, else the file's name;
- the **summary** is the front matter's, else the first paragraph of prose (cut at a sentence, 300 characters);
- the **area** is the front matter's, else the top subfolder the note sits in ("" at the top), so no layout of
  area folders is needed (:func:`folder_areas`);
- the **slug** is the file's name made an identifier (``Chain Rule.md`` -> ``chain_rule``), unique in the vault.

``[[wikilinks]]`` become Markdown links, so they become the graph's ``links_to`` edges like any link:
``[[Chain Rule]]`` -> ``[Chain Rule](Chain%20Rule.md)`` and ``[[Chain Rule|the rule]]`` -> ``[the rule](...)``,
the path relative to the linking note. A target is found as Obsidian finds it: by file name anywhere in the vault
(case does not matter), then by title or alias. A link to no note is left as its text, with a warning naming it.
Embedded attachments (``![[figure.png]]``) are dropped from the text. Hidden folders (``.obsidian``, ``.trash``)
and files that are not Markdown (images, PDFs) are not read; one warning says how many were left out.
Math (``$...$``, ``$$...$$``) and code fences are kept as written; wikilinks inside code stay as they are.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from rag.corpus import Note

WIKILINK = re.compile(r"(!?)\[\[([^\[\]|#^]*)(?:[#^][^\[\]|]*)?(?:\|([^\[\]]*))?\]\]")
FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
SUMMARY_CHARS = 300


def slug_of(name: str) -> str:
    """A file name as an identifier: lower case, runs of other characters as one ``_`` (``Chain Rule`` ->
    ``chain_rule``); an identifier already is its own slug."""
    slug = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return slug or "note"


def title_of(body: str, meta: dict, stem: str) -> str:
    """The front matter's title, else the first heading, else the file's name."""
    title = meta.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    from rag.corpus import headings

    found = headings(body)
    return found[0][1].strip() if found else stem.replace("_", " ").strip() or stem


def summary_of(body: str) -> str:
    """The first paragraph of prose: not a heading, code, display math, a list, a table or a quote."""
    from rag.corpus import strip_code

    paragraph: list[str] = []
    for _, line in strip_code(body) + [(0, "")]:
        text = line.strip()
        if text and not text.startswith(("#", "$$", "|", ">", "- ", "* ", "![", "---")):
            paragraph.append(text)
        elif paragraph:
            break
    summary = WIKILINK.sub(lambda m: m.group(3) or m.group(2), " ".join(paragraph)).strip()
    if len(summary) <= SUMMARY_CHARS:
        return summary
    cut = summary[:SUMMARY_CHARS]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 40 else cut.rsplit(" ", 1)[0] + " …"


def folder_areas(notes: list[Note], corpus_dir: Path) -> list[Note]:
    """Each note whose front matter names no area gets the top subfolder it sits in (``Calculus/x.md`` ->
    ``Calculus``), or "" at the top of the folder."""
    inside = corpus_dir.resolve()
    out = []
    for note in notes:
        if not note.meta.get("area"):
            parts = note.path.relative_to(inside).parts if note.path.is_relative_to(inside) else ()
            note = replace(note, area=parts[0] if len(parts) > 1 else "")
        out.append(note)
    return out


def scan(corpus_dir: Path) -> tuple[list[Path], list[str]]:
    """(the Markdown files to read, what was left out: hidden folders and attachments), both sorted."""
    notes, left_out = [], []
    for folder, dirs, files in os.walk(corpus_dir):
        hidden = sorted(d for d in dirs if d.startswith("."))
        left_out += [os.path.relpath(os.path.join(folder, d), corpus_dir) + "/" for d in hidden]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(folder) / name
            if name.lower().endswith(".md") and name.lower() != "readme.md" and not name.startswith("."):
                notes.append(path)
            elif not name.startswith("."):
                left_out.append(os.path.relpath(path, corpus_dir))
    return sorted(notes), sorted(left_out)


# --------------------------------------------------------------------------- wikilinks


def _targets(notes: list[Note]) -> dict[str, Note]:
    """Lower-cased names a wikilink may use -> the note: file names first, then titles and aliases."""
    found: dict[str, Note] = {}
    for key in ("stem", "title"):
        for note in notes:
            names = [note.path.stem] if key == "stem" else [note.title, *note.aliases]
            for name in names:
                found.setdefault(name.strip().lower(), note)
    return found


def _rewrite_line(line: str, note: Note, targets: dict[str, Note], missing: list[str]) -> str:
    def one(m: re.Match) -> str:
        embed, name, label = m.group(1), m.group(2).strip(), (m.group(3) or "").strip()
        target = targets.get(name.lower()) or targets.get(name.lower().removesuffix(".md"))
        if target is None:
            if embed or "." in Path(name).suffix:  # an embedded attachment: not text
                return ""
            missing.append(name)
            return label or name
        text = label or (name if not embed else target.title)
        path = os.path.relpath(target.path, note.path.parent)
        return f"[{text}]({quote(Path(path).as_posix())})"

    parts = re.split(r"(`[^`]*`)", line)  # inline code keeps its brackets
    return "".join(p if p.startswith("`") else WIKILINK.sub(one, p) for p in parts)


def resolve_wikilinks(notes: list[Note]) -> list[Note]:
    """The notes with their ``[[wikilinks]]`` written as Markdown links; a link to no note is its text, warned."""
    targets = _targets(notes)
    out = []
    for note in notes:
        if "[[" not in note.body:
            out.append(note)
            continue
        lines, fence, missing = [], None, []
        for line in note.body.split("\n"):
            m = FENCE.match(line)
            if m and (fence is None or m.group(1).startswith(fence[0])):
                fence = m.group(1) if fence is None else None
                lines.append(line)
                continue
            lines.append(line if fence else _rewrite_line(line, note, targets, missing))
        for name in dict.fromkeys(missing):
            warnings.warn(f"{note.source}: [[{name}]] links to no note in the folder; kept as text", stacklevel=2)
        out.append(replace(note, body="\n".join(lines)))
    return out


def unique_slugs(notes: list[Note]) -> list[Note]:
    """Two files of the same name in different folders get ``_2``, ``_3``... after the later one's slug."""
    seen: dict[str, int] = {}
    out = []
    for note in notes:
        n = seen[note.slug] = seen.get(note.slug, 0) + 1
        out.append(note if n == 1 else replace(note, slug=f"{note.slug}_{n}"))
    return out
