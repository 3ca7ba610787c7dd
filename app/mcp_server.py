"""The notes as an MCP server: any MCP client (Claude Desktop, an editor's assistant) can search them, ask them,
find a learning path and read a note, over stdio.

    mathrag mcp            # the client starts this command; it speaks MCP on stdin/stdout

Tools (each answers from the local notes; nothing leaves the machine):

- ``search_notes(query, k=5, mode="hybrid")``: the best passages, each with its note, heading, text and score;
- ``ask(question)``: the cited answer the app gives, with its citations and the support check's figures;
- ``learning_path(concept)``: the notes to study before a concept, prerequisites first;
- ``read_note(source, section="")``: a note (by path or slug), or one of its sections, as Markdown.

The index and the graph load on the first call that needs them, so the client's handshake is immediate.
Client configuration (Claude Desktop's ``claude_desktop_config.json``, and most clients take the same)::

    {"mcpServers": {"mathrag": {"command": "/path/to/mathrag/.venv/bin/mathrag", "args": ["mcp"]}}}
"""

from __future__ import annotations

import re
import threading

from mcp.server.fastmcp import FastMCP
from typing_extensions import TypedDict  # pydantic reads its fields on Python 3.11

from graphrag import GRAPH_MODES
from rag.corpus import Note, load_corpus
from rag.settings import MODES, get_settings

INSTRUCTIONS = ("Math-for-ML notes, searched and answered locally. Use search_notes to find passages, ask for a "
                "cited answer, learning_path for what to study first, and read_note to read a note or a section.")


class Hit(TypedDict):
    source: str  # the note's path, e.g. corpus/calculus/chain_rule.md
    heading: str  # "Note title > Section > Subsection"
    text: str
    score: float
    chunk_id: str


class Citation(TypedDict):
    number: int  # the [n] in the answer
    source: str
    heading: str
    title: str  # the note's title


class Answer(TypedDict):
    answer: str  # Markdown with $...$ math and [n] citations
    answered: bool  # False when the notes do not cover the question (the answer says so)
    asks: str  # what the question asks for: definition, formula, why, how, compare, example, failure
    generator: str  # what wrote it: composed (the notes' own sentences), smollm2, ...
    citations: list[Citation]
    support: str  # "3 of 3 sentences supported by the passages they cite."


class Step(TypedDict):
    title: str
    area: str
    source: str
    summary: str


class Path(TypedDict):
    concept: str
    steps: list[Step]  # prerequisites first, the concept's own note last
    cycles: list[list[str]]


class Hits(TypedDict):
    hits: list[Hit]


class Library:
    """The retriever (with the graph) and the notes, loaded once, on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._retriever = None
        self._notes: list[Note] | None = None

    @property
    def retriever(self):
        with self._lock:
            if self._retriever is None:
                from graphrag.retriever import GraphRetriever

                self._retriever = GraphRetriever.load(progress=False)
            return self._retriever

    @property
    def notes(self) -> list[Note]:
        with self._lock:
            if self._notes is None:
                settings = get_settings()
                self._notes = load_corpus(settings.corpus_dir, root=settings.corpus_dir.parent)
            return self._notes

    def note(self, name: str) -> Note:
        found = [n for n in self.notes if name in (n.source, n.slug, n.title) or n.source.endswith("/" + name)]
        if not found:
            raise ValueError(f"no note '{name}': give its path (corpus/calculus/chain_rule.md) or slug (chain_rule)")
        return found[0]


def search_notes(library: Library, query: str, k: int = 5, mode: str = "hybrid") -> Hits:
    modes = (*MODES, *GRAPH_MODES)
    if mode not in modes:
        raise ValueError(f"unknown mode '{mode}': one of {', '.join(modes)}")
    hits = library.retriever.search(query, k=k, mode=mode)  # checks k, with a clear message
    return {"hits": [{"source": h.source, "heading": h.heading, "text": h.text, "score": round(float(h.score), 4),
                      "chunk_id": h.chunk_id} for h in hits]}


def ask(library: Library, question: str) -> Answer:
    from app.engine import answer_record
    from rag.answering import answer

    reply = answer(question, retriever=library.retriever)
    return {"answer": reply.text, **answer_record(reply)}


def learning_path(library: Library, concept: str) -> Path:
    from graphrag.paths import UnknownConcept
    from graphrag.paths import learning_path as path_to

    g = library.retriever.data.graph
    try:
        path = path_to(g, concept)
    except UnknownConcept as exc:
        raise ValueError(str(exc)) from None
    return {"concept": g.nodes[path.target]["name"], "cycles": path.cycles,
            "steps": [{"title": s.title, "area": s.area, "source": s.source, "summary": s.summary}
                      for s in path.steps]}


def read_note(library: Library, source: str, section: str = "") -> str:
    note = library.note(source)
    if not section:
        return f"# {note.title}\n\n{note.body}"
    parts = re.split(r"(?m)^(#{2,3} .+)$", note.body)
    for i in range(1, len(parts), 2):
        if parts[i].lstrip("# ").strip().lower() == section.strip().lower():
            level = parts[i].split(" ")[0]
            text = [parts[i], parts[i + 1]]
            for j in range(i + 2, len(parts), 2):  # an H2 goes on through its H3 subsections
                if len(parts[j].split(" ")[0]) <= len(level):
                    break
                text += [parts[j], parts[j + 1]]
            return "".join(text).strip()
    names = [parts[i].lstrip("# ").strip() for i in range(1, len(parts), 2)]
    raise ValueError(f"'{note.slug}' has no section '{section}'; it has: {', '.join(names)}")


def build_server(library: Library | None = None) -> FastMCP:
    """The MCP server with its four tools (see the module docstring)."""
    library = library or Library()
    server = FastMCP("mathrag", instructions=INSTRUCTIONS, log_level="WARNING")

    @server.tool(name="search_notes")
    def _search(query: str, k: int = 5, mode: str = "hybrid") -> Hits:
        """Search the math notes. Returns the k best passages: source (note path), heading, text, score.
        mode: dense, bm25, hybrid (default) or a graph mode (graph-local, graph-global, graph-hybrid)."""
        return search_notes(library, query, k, mode)

    @server.tool(name="ask")
    def _ask(question: str) -> Answer:
        """Answer a question from the notes, citing them: the answer text with [n] citations, each citation's
        note and section, and how many sentences the support check found supported."""
        return ask(library, question)

    @server.tool(name="learning_path")
    def _path(concept: str) -> Path:
        """The notes to study before a concept (e.g. 'LoRA', 'attention', 'SVD'), prerequisites first."""
        return learning_path(library, concept)

    @server.tool(name="read_note")
    def _read(source: str, section: str = "") -> str:
        """A note as Markdown, by path (corpus/calculus/chain_rule.md) or slug (chain_rule); with section
        ('Definition and derivation', 'Worked example', or a subsection's title), only that section."""
        return read_note(library, source, section)

    return server
