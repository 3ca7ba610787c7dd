"""Cut the notes into chunks for retrieval.

Each note is split at its headings with LangChain's Markdown splitter (the
heading path becomes metadata), then each section is packed into chunks of at
most ``chunk_size`` characters. Packing works on whole Markdown blocks: a
display-math block (``$$ ... $$``), a code fence or a table is never cut in
two; only an over-long prose paragraph is split further, with LangChain's
recursive character splitter.

A chunk's id is derived from its source path, its heading path and its
position inside that section, so it stays the same across runs as long as that
section's content does not move, and a citation keeps pointing at the same
place.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

from langchain_text_splitters import ExperimentalMarkdownSyntaxTextSplitter, RecursiveCharacterTextSplitter

from rag.corpus import FENCE_RE, Note

DEFAULT_CHUNK_SIZE = 900  # characters; all-MiniLM-L6-v2 reads at most 256 word pieces
HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
# Sections that only point elsewhere; the knowledge graph reads their links, retrieval skips them.
SKIP_SECTIONS = {"See also", "References"}
# Code that draws a figure or makes exercises: run, never retrieved.
UNRETRIEVED_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*python\s+(?:figure|exercise)\b")
IN_SHORT = "In short"  # the section made of a note's front-matter definitions


@dataclass
class Chunk:
    """A piece of a note, the unit that is embedded, searched and cited."""

    chunk_id: str
    text: str
    source: str  # repository-relative path, e.g. corpus/linear_algebra/svd.md
    heading: str  # heading path, e.g. "Singular Value Decomposition (SVD) > Worked example"
    title: str
    area: str
    tags: list[str] = field(default_factory=list)
    slug: str = ""

    def embedding_text(self) -> str:
        """What the embedder reads: the heading path gives the chunk its context."""
        return f"{self.heading}\n{self.text}"

    @property
    def vector_id(self) -> int:
        """A stable 63-bit integer id for FAISS, derived from ``chunk_id``."""
        return int.from_bytes(hashlib.sha1(self.chunk_id.encode()).digest()[:8], "big") >> 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Chunk:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def markdown_blocks(text: str) -> list[tuple[str, bool]]:
    """Split a section into (block, atomic) pairs.

    Atomic blocks (display math, code fences, tables) must stay whole; prose
    paragraphs (separated by blank lines) may be split further.
    """
    blocks: list[tuple[str, bool]] = []
    buf: list[str] = []
    kind = None  # None, "para", "code", "math", "table"
    fence = ""

    def flush() -> None:
        nonlocal buf, kind
        if buf and any(line.strip() for line in buf):
            blocks.append(("\n".join(buf).strip("\n"), kind in ("code", "math", "table")))
        buf, kind = [], None

    for line in text.splitlines():
        if kind == "code":
            buf.append(line)
            m = FENCE_RE.match(line)
            if m and m.group(1).startswith(fence[0]) and not m.group(2).strip():
                flush()
            continue
        if kind == "math":
            buf.append(line)
            if line.count("$$") % 2 == 1:
                flush()
            continue
        m = FENCE_RE.match(line)
        if m:
            flush()
            kind, fence, buf = "code", m.group(1), [line]
            continue
        stripped = line.strip()
        if stripped.startswith("$$") and line.count("$$") % 2 == 1:
            # A display block that opens on this line and closes on a later one.
            flush()
            kind, buf = "math", [line]
            continue
        if stripped.startswith("|"):
            if kind != "table":
                flush()
                kind = "table"
            buf.append(line)
            continue
        if not stripped:
            flush()
            continue
        if kind == "table":
            flush()
        kind = kind or "para"
        buf.append(line)
    flush()
    return blocks


def _pack(blocks: list[tuple[str, bool]], chunk_size: int) -> list[str]:
    """Greedily pack blocks into pieces of at most ``chunk_size`` characters."""
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=0, separators=["\n", ". ", "; ", ", ", " ", ""], keep_separator="end"
    )
    pieces: list[str] = []
    current = ""
    for block, atomic in blocks:
        parts = [block] if atomic or len(block) <= chunk_size else splitter.split_text(block)
        for part in parts:
            if current and len(current) + 2 + len(part) > chunk_size:
                pieces.append(current)
                current = ""
            current = f"{current}\n\n{part}" if current else part
    if current:
        pieces.append(current)
    return pieces


def chunk_note(note: Note, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[Chunk]:
    """All chunks of one note, in reading order: a summary chunk, the definitions ("In short"), the sections."""
    splitter = ExperimentalMarkdownSyntaxTextSplitter(headers_to_split_on=HEADERS, strip_headers=True)
    sections: list[tuple[tuple[str, ...], list[str]]] = []
    for doc in splitter.split_text(note.body):
        path = tuple(doc.metadata[key] for _, key in HEADERS if key in doc.metadata)
        if UNRETRIEVED_FENCE.match(doc.page_content):
            continue
        if sections and sections[-1][0] == path:
            sections[-1][1].append(doc.page_content)  # code blocks come back as separate documents
        else:
            sections.append((path, [doc.page_content]))

    def make(heading_path: tuple[str, ...], position: int, text: str, anchor: str) -> Chunk:
        return Chunk(
            chunk_id=f"{note.source}#{anchor}:{position}",
            text=text,
            source=note.source,
            heading=" > ".join(heading_path),
            title=note.title,
            area=note.area,
            tags=list(note.tags),
            slug=note.slug,
        )

    chunks = []
    if note.summary:
        chunks.append(make((note.title,), 0, note.summary, "summary"))
    short = [note.definition, *note.definitions.values()]
    if any(short):
        # The one-sentence definitions from the front matter: the direct answers to "What is ...?".
        blocks = [(s, False) for s in short if s]
        for position, piece in enumerate(_pack(blocks, chunk_size)):
            chunks.append(make((note.title, IN_SHORT), position, piece, "in-short"))
    seen: dict[str, int] = {}
    for path, parts in sections:
        text = "\n\n".join(p.strip("\n") for p in parts if p.strip())
        if not text.strip() or (len(path) > 1 and path[1] in SKIP_SECTIONS):
            continue
        if not path or path[0] != note.title:
            path = (note.title, *path)
        anchor = "/".join(_slugify(h) for h in path[1:]) or "top"
        # Two sections with the same heading path get distinct anchors.
        n = seen.get(anchor, 0)
        seen[anchor] = n + 1
        if n:
            anchor = f"{anchor}~{n}"
        for position, piece in enumerate(_pack(markdown_blocks(text), chunk_size)):
            chunks.append(make(path, position, piece, anchor))
    return chunks


def chunk_corpus(notes: list[Note], chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[Chunk]:
    return [c for note in notes for c in chunk_note(note, chunk_size)]
